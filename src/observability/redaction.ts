import { SecretValue } from './secret-value.ts';
import { REDACTED, sanitizeError, scrubText, stackFrames } from './sanitize.ts';

/**
 * Structural redaction of anything about to be logged: SecretValues, fields whose names say
 * "credential", strings that look like tokens, raw bytes and errors. Used by the logger's format
 * (ADR 0050); the audit channel keeps its identifiers verbatim and checks types instead.
 */

// Field names are compared after lower-casing and removing `-`, `_` and `.`.
const credentialNames = new Set([
  'token',
  'tokens',
  'password',
  'passwd',
  'pwd',
  'passphrase',
  'secret',
  'secrets',
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'credential',
  'credentials',
  'jwt',
  'apikey',
  'privatekey',
  'secretid',
  'clientassertion',
  'sessiontoken',
  'signature',
  'xvaulttoken',
]);
const credentialSuffixes = [
  'token',
  'tokens',
  'password',
  'secret',
  'secretkey',
  'accesskey',
  'accesskeyid',
  'apikey',
  'privatekey',
  'credential',
  'credentials',
  'jwt',
  'secretid',
  'passphrase',
];

/** Whether a field of this name carries a credential (case-insensitive; `secretAccessKey`, `x-vault-token`...). */
export function isCredentialFieldName(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_.]/g, '');
  if (credentialNames.has(n)) return true;
  if (n.startsWith('jwt')) return true;
  return credentialSuffixes.some((suffix) => n.endsWith(suffix));
}

const maxDepth = 8;
const maxArrayItems = 100;

/**
 * A redacted deep copy, safe to serialize: SecretValue → `[REDACTED]`, credential-named fields →
 * `[REDACTED]`, strings scrubbed of tokens, errors → their sanitized form, bytes → a size, cycles
 * and excessive depth cut. Symbol-keyed properties are dropped (callers keep their own).
 */
export function redactDeep(value: unknown): unknown {
  return redactAt(value, 0, new WeakSet<object>());
}

function redactAt(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (value instanceof SecretValue) return REDACTED;
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object') {
    // Functions and symbols have no place in a log line; bigint does not survive JSON.
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    if (typeof value === 'bigint') return value.toString();
    return value;
  }
  if (value instanceof Error) {
    const frames = stackFrames(value);
    return { ...sanitizeError(value), ...(frames !== undefined ? { stack: frames } : {}) };
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
  if (seen.has(value)) return '[Circular]';
  if (depth >= maxDepth) return '[Truncated]';
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const items: unknown[] = value.slice(0, maxArrayItems).map((item) => redactAt(item, depth + 1, seen));
      if (value.length > maxArrayItems) items.push(`[${value.length - maxArrayItems} more]`);
      return items;
    }
    if (value instanceof Map) {
      return redactEntries([...value.entries()].map(([k, v]) => [String(k), v] as const), depth, seen);
    }
    if (value instanceof Set) return redactAt([...value], depth, seen);
    return redactEntries(Object.entries(value), depth, seen);
  } finally {
    seen.delete(value);
  }
}

function redactEntries(
  entries: readonly (readonly [string, unknown])[],
  depth: number,
  seen: WeakSet<object>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of entries) {
    // A credential-named field is dropped whatever its type: an object under `credentials` is as
    // secret as a string under `password`. Null/undefined/boolean say nothing and are kept.
    out[key] = isCredentialFieldName(key) && v !== undefined && v !== null && typeof v !== 'boolean'
      ? REDACTED
      : redactAt(v, depth + 1, seen);
  }
  return out;
}
