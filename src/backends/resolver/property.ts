import type { FetchedSecret } from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';

/**
 * Field selection in a fetched document. Documents are fetched and cached whole; a file that
 * names a `property` gets one field of a JSON document (ADR 0056):
 *
 * - `/a/b/0` — a JSON Pointer (RFC 6901);
 * - `a.b.0` — a dotted path, unless the document has a top-level field named exactly `a.b.0`,
 *   which wins (so keys with dots need no escaping).
 *
 * A string field gives its text; any other JSON value gives its JSON text. Errors name the key
 * and the property, never a value.
 */

export const propertyErrorKinds = ['NotJson', 'PropertyNotFound'] as const;
export type PropertyErrorKind = (typeof propertyErrorKinds)[number];

export class PropertyError extends Error {
  readonly kind: PropertyErrorKind;
  /** The document will not grow the field by asking again; a new version might. */
  readonly retryable = false;
  override readonly name = 'PropertyError';

  constructor(kind: PropertyErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** The whole document, or the selected field of it. */
export function extractProperty(secret: FetchedSecret, property: string | undefined): SecretValue {
  if (property === undefined || property === '') return secret.value;
  const key = secret.ref.key;
  if (secret.encoding === 'binary') {
    throw new PropertyError('NotJson', `secret ${key} is binary; property ${property} cannot be selected`);
  }
  let document: unknown;
  try {
    document = JSON.parse(secret.value.revealText());
  } catch {
    throw new PropertyError('NotJson', `secret ${key} is not a JSON document; property ${property} cannot be selected`);
  }
  if (typeof document !== 'object' || document === null) {
    throw new PropertyError('NotJson', `secret ${key} is a JSON ${document === null ? 'null' : typeof document}, not an object; property ${property} cannot be selected`);
  }
  const selected = select(document, property);
  if (selected === undefined) throw new PropertyError('PropertyNotFound', `secret ${key} has no property ${property}`);
  return SecretValue.fromString(typeof selected === 'string' ? selected : JSON.stringify(selected));
}

function select(document: object, property: string): unknown {
  if (property.startsWith('/')) {
    const tokens = property
      .slice(1)
      .split('/')
      .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    return walk(document, tokens);
  }
  if (!Array.isArray(document) && Object.hasOwn(document, property)) return (document as Record<string, unknown>)[property];
  return walk(document, property.split('.'));
}

function walk(document: unknown, tokens: readonly string[]): unknown {
  let node: unknown = document;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      node = node[Number(token)];
    } else if (typeof node === 'object' && node !== null && Object.hasOwn(node, token)) {
      node = (node as Record<string, unknown>)[token];
    } else {
      return undefined;
    }
  }
  return node;
}
