import { backendErrorKinds, type BackendErrorKind } from '../backends/backend.port.ts';

/**
 * Scrubbing of free text and errors before they reach a log line, a status condition or an Event.
 * SDK errors carry request configs, headers (X-Vault-Token, Authorization), response bodies and
 * signed URLs; only a name, a scrubbed message, a kind and a short code survive
 * {@link sanitizeError}. ADR 0050 lists the rules.
 */

export const REDACTED = '[REDACTED]';

/** The most characters of a message we keep; SDK messages that embed whole bodies get cut. */
const maxMessageLength = 1024;
const maxCauseDepth = 3;

// Each rule replaces what looks like a credential; they run in order: URLs first (a whole
// `?token=...` query goes), then key=value pairs (so `Authorization: Bearer x` goes as a whole),
// then bare tokens.
const encodedChars = String.raw`A-Za-z0-9\-._~+/=`;
const textRules: readonly (readonly [RegExp, string | ((...groups: string[]) => string)])[] = [
  // URL userinfo: scheme://user:password@host
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@?#]+@/gi, (_m, scheme) => `${scheme}${REDACTED}@`],
  // URL query strings and fragments (SAS tokens, presigned AWS URLs, ?token=...).
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s?#"'<>]*)[?#][^\s"'<>]*/gi, (_m, base) => `${base}?${REDACTED}`],
  // key=value / "key": "value" / key: value where the key names a credential; a quoted value
  // keeps its quotes, an `Authorization: <scheme> <credential>` value goes whole.
  [
    /(["']?)([A-Za-z0-9_-]*(?:token|password|passwd|pwd|secret|authorization|api[_-]?key|access[_-]?key|private[_-]?key|credential|cookie|jwt|signature|secret[_-]?id)[A-Za-z0-9_-]*)\1(\s*[:=]\s*)("[^"]*"|'[^']*'|(?:(?:Bearer|Basic|Negotiate|Digest|AWS4-HMAC-SHA256)\s+)?[^\s,;&}\]]+)/gi,
    (_m, q, key, sep, value) => {
      const quote = value.startsWith('"') || value.startsWith("'") ? value.charAt(0) : '';
      return `${q}${key}${q}${sep}${quote}${REDACTED}${quote}`;
    },
  ],
  // Authorization schemes without a header name in front. `Bearer x` is always a token; for the
  // other schemes the credential must look encoded (a digit, one of +/=._-, or an upper-case
  // letter after the first), so prose such as "Basic authentication failed" stays readable.
  [new RegExp(String.raw`\b(Bearer)\s+[${encodedChars}]{4,}`, 'gi'), (_m, scheme) => `${scheme} ${REDACTED}`],
  [
    new RegExp(
      String.raw`\b(Basic|Negotiate|Digest)\s+(?=[${encodedChars}]*[0-9+/=._~-]|[${encodedChars}][${encodedChars}]*[A-Z])[${encodedChars}]{8,}`,
      'g',
    ),
    (_m, scheme) => `${scheme} ${REDACTED}`,
  ],
  // JWTs (three base64url segments, the first a JSON header starting with {" → eyJ).
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, REDACTED],
  // Vault / OpenBao tokens (hvs./hvb./hvr. and the legacy s./b./r. forms).
  [/\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}/g, REDACTED],
  // AWS access key ids.
  [/\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b/g, REDACTED],
  // PEM blocks (private keys, certificates with keys).
  [/-----BEGIN [A-Z ]+-----[\s\S]*?(?:-----END [A-Z ]+-----|$)/g, REDACTED],
];

/** Replaces credentials that free text may carry (tokens, JWTs, URL userinfo and queries, key=value). */
export function scrubText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of textRules) {
    // String.replace with a function or a string; the cast keeps one call site for both forms.
    out = out.replace(pattern, replacement as (substring: string, ...args: string[]) => string);
  }
  return out;
}

/** What may be said about an error anywhere: no bodies, headers, configs or stack of the SDK. */
export interface SanitizedError {
  readonly name: string;
  readonly message: string;
  /** Our backend error kind, when the error is (or claims to be) one. */
  readonly kind?: BackendErrorKind;
  /** A short machine code from the SDK or the OS (e.g. `ECONNREFUSED`, `ResourceNotFoundException`). */
  readonly code?: string;
  /** The sanitized cause chain, a few levels deep. */
  readonly cause?: SanitizedError;
}

/**
 * Reduces anything thrown to a name, a scrubbed message, a kind and a code. Never reads an
 * error's other properties (AxiosError.config/request/response, AWS `$metadata`/`$response`,
 * Azure `request`/`response`), so nothing they hold can leak.
 */
export function sanitizeError(err: unknown): SanitizedError {
  return sanitizeAtDepth(err, 0);
}

function sanitizeAtDepth(err: unknown, depth: number): SanitizedError {
  if (err instanceof Error) {
    const name = safeName(err.name) ?? 'Error';
    const message = clip(scrubText(typeof err.message === 'string' ? err.message : ''));
    const kind = readKind(err);
    const code = readCode(err);
    const cause =
      depth < maxCauseDepth && err.cause !== undefined && err.cause !== null
        ? sanitizeAtDepth(err.cause, depth + 1)
        : undefined;
    return {
      name,
      message,
      ...(kind !== undefined ? { kind } : {}),
      ...(code !== undefined ? { code } : {}),
      ...(cause !== undefined ? { cause } : {}),
    };
  }
  if (typeof err === 'string') return { name: 'Error', message: clip(scrubText(err)) };
  // Objects thrown as errors are never stringified: they are exactly the bags of config and
  // response data we must not print.
  return { name: 'Error', message: `a non-Error value was thrown (${err === null ? 'null' : typeof err})` };
}

/** The stack frames of an error (the `at ...` lines), without its first line (which holds the message). */
export function stackFrames(err: Error): string | undefined {
  if (typeof err.stack !== 'string') return undefined;
  const frames = err.stack
    .split('\n')
    .filter((line) => /^\s+at\s/.test(line))
    .map((line) => scrubText(line.trim()));
  return frames.length > 0 ? frames.join('\n') : undefined;
}

function clip(text: string): string {
  return text.length > maxMessageLength ? `${text.slice(0, maxMessageLength)}…` : text;
}

function safeName(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_$.:-]{1,80}$/.test(value) ? value : undefined;
}

function readKind(err: Error): BackendErrorKind | undefined {
  const kind: unknown = (err as { kind?: unknown }).kind;
  return typeof kind === 'string' && (backendErrorKinds as readonly string[]).includes(kind)
    ? (kind as BackendErrorKind)
    : undefined;
}

function readCode(err: Error): string | undefined {
  const code: unknown = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(code)) return code;
  if (typeof code === 'number' && Number.isInteger(code)) return String(code);
  return undefined;
}
