import { stringify as yamlStringify } from 'yaml';
import type { VersionSelector } from '../../backends/backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';

/** One value a file needs: a backend document, optionally narrowed to a JSON field. */
export interface ValueRef {
  /** The binding's name of the backend it is read from; absent means the default backend. */
  readonly backend?: string;
  readonly key: string;
  readonly version: VersionSelector;
  /** Dot-separated JSON field path inside the document; the whole document when absent. */
  readonly property?: string;
}

export const fileFormats = ['json', 'dotenv', 'properties', 'yaml'] as const;
export type FileFormat = (typeof fileFormats)[number];

/** A file of a binding, before values are known. */
export type FileTemplate =
  | {
      readonly kind: 'single';
      readonly path: string;
      readonly mode: number;
      readonly ref: ValueRef;
      /** Served when `ref` cannot be (see the binding's `from` / `fallback`). */
      readonly fallback?: ValueRef;
    }
  | {
      readonly kind: 'formatted';
      readonly path: string;
      readonly mode: number;
      readonly format: FileFormat;
      readonly items: readonly { readonly name: string; readonly ref: ValueRef }[];
    };

/** A file with its content: plain data, so a file set can cross a process boundary. */
export interface RenderedFile {
  readonly path: string;
  readonly mode: number;
  readonly content: SecretValue;
}

/** A stable identity for a value reference, used to deduplicate reads and to look values up. */
export function valueRefId(ref: ValueRef): string {
  const version =
    ref.version.kind === 'latest' ? 'latest' : ref.version.kind === 'id' ? `id:${ref.version.id}` : `stage:${ref.version.stage}`;
  const id = [ref.key, version, ref.property ?? ''];
  // The default backend keeps the ids it always had; a named one is part of the identity.
  return JSON.stringify(ref.backend === undefined || ref.backend === defaultBackend ? id : [...id, ref.backend]);
}

/** The binding's name of its `backendRef`. */
export const defaultBackend = 'default';

/** Every distinct value the templates need, in first-seen order (fallbacks included). */
export function valueRefsOf(templates: readonly FileTemplate[]): ValueRef[] {
  const seen = new Map<string, ValueRef>();
  for (const template of templates) {
    const refs =
      template.kind === 'single'
        ? template.fallback === undefined
          ? [template.ref]
          : [template.ref, template.fallback]
        : template.items.map((item) => item.ref);
    for (const ref of refs) if (!seen.has(valueRefId(ref))) seen.set(valueRefId(ref), ref);
  }
  return [...seen.values()];
}

/**
 * Renders the files of a binding from resolved values. `valueOf` must return the value for every
 * reference of {@link valueRefsOf}; rendering is pure and deterministic, so equal inputs give an
 * equal content hash.
 */
export function renderFiles(templates: readonly FileTemplate[], valueOf: (ref: ValueRef) => SecretValue): RenderedFile[] {
  return templates.map((template) => {
    if (template.kind === 'single') {
      return { path: template.path, mode: template.mode, content: valueOf(template.ref) };
    }
    const entries = template.items.map((item) => [item.name, valueOf(item.ref).revealText()] as const);
    return { path: template.path, mode: template.mode, content: SecretValue.fromString(formatEntries(template.format, entries)) };
  });
}

function formatEntries(format: FileFormat, entries: readonly (readonly [string, string])[]): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(Object.fromEntries(entries), null, 2)}\n`;
    case 'yaml':
      return yamlStringify(Object.fromEntries(entries));
    case 'dotenv':
      return entries.map(([name, value]) => `${name}=${dotenvQuote(value)}\n`).join('');
    case 'properties':
      return entries.map(([name, value]) => `${propertiesEscape(name, true)}=${propertiesEscape(value, false)}\n`).join('');
  }
}

/** Double-quoted dotenv value, escaping what dotenv parsers (docker, python-dotenv, dotenv) unescape. */
function dotenvQuote(value: string): string {
  const escaped = value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\$/g, '\\$');
  return `"${escaped}"`;
}

/** java.util.Properties escaping (keys also escape spaces, `=` and `:`), non-ASCII as \uXXXX. */
function propertiesEscape(text: string, isKey: boolean): string {
  let out = '';
  let index = -1;
  for (const char of text) {
    index++;
    const code = char.codePointAt(0) ?? 0;
    if (char === '\\') out += '\\\\';
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else if (char === '\f') out += '\\f';
    else if (char === '=' || char === ':' || char === '#' || char === '!') out += `\\${char}`;
    else if (char === ' ' && (isKey || index === 0)) out += '\\ ';
    else if (code < 0x20 || code > 0x7e) {
      for (const unit of char.split('')) out += `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`;
    } else out += char;
  }
  return out;
}
