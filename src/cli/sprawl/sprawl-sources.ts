import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadAll } from 'js-yaml';
import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
import { CliError, exitCodes } from '../cli-errors.ts';
import { workloadKinds, type ClusterReader, type KubeObject } from '../cluster-reader.ts';
import { backendSecretRefs, scannedKinds, type ScanInput } from './sprawl.ts';

/**
 * Where `audit sprawl` gets its objects: manifest files on disk (plain YAML, JSON, `helm
 * template` output, `kind: List`), or the cluster (Pods and their owners; Secrets as metadata only).
 */

function manifestFiles(path: string): string[] {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new CliError(`${path}: no such file or directory`, exitCodes.usage);
  }
  if (stat.isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => (e.isDirectory() ? manifestFiles(join(path, e.name)) : /\.(ya?ml|json)$/.test(e.name) ? [join(path, e.name)] : []));
}

/**
 * The documents of a manifest text, split as kubectl splits them (a line that is `---` alone), each
 * with the line it starts on.
 */
function splitDocuments(text: string): { readonly text: string; readonly firstLine: number }[] {
  const lines = text.split('\n');
  const documents: { text: string; firstLine: number }[] = [];
  let start = 0;
  for (let i = 0; i <= lines.length; i++) {
    if (i === lines.length || /^---\s*$/.test(lines[i] ?? '')) {
      documents.push({ text: lines.slice(start, i).join('\n'), firstLine: start + 1 });
      start = i + 1;
    }
  }
  return documents;
}

/**
 * The objects of one manifest text, each with a line finder into `file`. Documents are read with
 * js-yaml (fast: 10,000 pods in a few seconds); the `yaml` library's positions are computed only
 * for a document that has a finding to place.
 */
export function parseManifests(text: string, file: string): ScanInput[] {
  const inputs: ScanInput[] = [];
  for (const chunk of splitDocuments(text)) {
    let values: unknown[];
    try {
      // loadAll: a chunk with only comments (helm's `# Source:` lines) is no document, not an error.
      values = loadAll(chunk.text);
    } catch (error) {
      const mark = (error as { mark?: { line?: number } }).mark;
      const reason = (error as { reason?: string }).reason ?? (error instanceof Error ? error.message : String(error));
      throw new CliError(`${file}:${String(chunk.firstLine + (mark?.line ?? 0))}: invalid YAML: ${reason}`, exitCodes.usage);
    }
    const value = values[0];
    if (value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    let located: { doc: Document.Parsed; lineCounter: LineCounter } | undefined;
    const lineAt = (prefix: readonly (string | number)[]) => (path: readonly (string | number)[]): number | undefined => {
      if (located === undefined) {
        const lineCounter = new LineCounter();
        located = { doc: parseDocument(chunk.text, { lineCounter, version: '1.1' }), lineCounter };
      }
      for (let n = path.length; n >= 0; n--) {
        const node: unknown = located.doc.getIn([...prefix, ...path.slice(0, n)], true);
        if (isNode(node) && node.range !== undefined && node.range !== null) return chunk.firstLine - 1 + located.lineCounter.linePos(node.range[0]).line;
      }
      return undefined;
    };
    const object = value as KubeObject & { items?: unknown[] };
    if (object.kind === 'List' || (object.kind?.endsWith('List') === true && Array.isArray(object.items))) {
      for (const [i, item] of (object.items ?? []).entries()) {
        if (item !== null && typeof item === 'object') inputs.push({ object: item, file, lineOf: lineAt(['items', i]) });
      }
    } else {
      inputs.push({ object, file, lineOf: lineAt([]) });
    }
  }
  return inputs.filter((i) => scannedKinds.includes(i.object.kind ?? ''));
}

/** Every manifest under `paths` (`-` is stdin), file names relative to `cwd`. */
export function loadManifestFiles(paths: readonly string[], cwd: string, stdin: () => string): ScanInput[] {
  return paths.flatMap((path) => {
    if (path === '-') return parseManifests(stdin(), '<stdin>');
    return manifestFiles(path).flatMap((file) => parseManifests(readFileSync(file, 'utf8'), relative(cwd, file) || file));
  });
}

export interface ClusterObjects {
  readonly inputs: ScanInput[];
  /** Secret names the namespace's secret-binder backends refer to. */
  readonly externalReferences: Map<string, Set<string>>;
  /** Whether Secrets could be listed (metadata only); false when the caller may not. */
  readonly secretsRead: boolean;
}

/** Pods, their owners, backends and (if allowed) Secret metadata, from one namespace or all. */
export async function loadClusterObjects(reader: ClusterReader, namespace: string | undefined, note: (text: string) => void): Promise<ClusterObjects> {
  const inputs: ScanInput[] = [];
  const tag = (kind: string) => (o: KubeObject): ScanInput => ({ object: { ...o, kind } });
  inputs.push(...(await reader.listPods(namespace)).map((p) => tag('Pod')(p as KubeObject)));
  for (const kind of Object.keys(workloadKinds) as (keyof typeof workloadKinds)[]) inputs.push(...(await reader.listWorkloads(kind, namespace)).map(tag(kind)));
  const externalReferences = new Map<string, Set<string>>();
  for (const backend of await reader.listBackends(namespace)) {
    const ns = backend.metadata?.namespace;
    if (ns === undefined) continue;
    const set = externalReferences.get(ns) ?? new Set<string>();
    for (const name of backendSecretRefs(backend.spec)) set.add(name);
    externalReferences.set(ns, set);
  }
  let secretsRead = true;
  try {
    inputs.push(...(await reader.listSecretMetadata(namespace)).map(tag('Secret')));
  } catch (error) {
    if (!(error instanceof CliError) || error.exitCode !== exitCodes.forbidden) throw error;
    secretsRead = false;
    note('warning: no right to list Secrets here: the UnreferencedSecret rule (SBS007) did not run\n');
  }
  return { inputs, externalReferences, secretsRead };
}
