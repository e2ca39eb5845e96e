import { X509Certificate } from 'node:crypto';
import type { z } from 'zod';
import {
  AuthFailedError,
  CredentialsNotFoundError,
  BackendError,
  InvalidConfigError,
  UnavailableError,
} from './backend.port.ts';
import { scrubText } from '../observability/sanitize.ts';

/**
 * Small pieces every provider (vault, aws, azure) needs the same way: config-error wording,
 * caBundle decoding, abort handling, mapping failures of the {@link BackendContext} callbacks,
 * and the message scrubber. Providers import this file; it imports no provider.
 */

/** zod issues as one line fit for a status condition: `path.to.field: message; ...`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/**
 * A CRD `caBundle` (`format: byte`, so base64 of PEM) as PEM text; every certificate in it must
 * parse. Throws {@link InvalidConfigError} naming `field`.
 */
export function decodeCaBundle(encoded: string, field: string): string {
  const compact = encoded.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw new InvalidConfigError(`${field}: not base64`);
  const pem = Buffer.from(compact, 'base64').toString('utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new InvalidConfigError(`${field}: holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      throw new InvalidConfigError(`${field}: holds a certificate that does not parse`);
    }
  }
  return blocks.join('\n');
}

/** An aborted call (the caller's timeout or shutdown), reported as retryable unavailability. */
export function abortError(signal: AbortSignal, what: string): UnavailableError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof DOMException && reason.name === 'TimeoutError';
  return new UnavailableError(`${what} ${timedOut ? 'timed out' : 'was aborted'}`);
}

/** Throws {@link abortError} if the signal has fired. */
export function throwIfAborted(signal: AbortSignal, what: string): void {
  if (signal.aborted) throw abortError(signal, what);
}

/**
 * Waits for `work` but gives up when `signal` fires. For shared work (a login several callers
 * wait on) that must not be cancelled by one impatient caller: the work goes on, this caller
 * stops waiting.
 */
export function raceWithSignal<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortError(signal, what));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * A failure of `readOperatorSecret` / `requestServiceAccountToken`, as a port error. A missing or
 * forbidden Secret / service account is a credential problem (CredentialsNotFound, an AuthFailed:
 * not retried); a 401 (our own API identity refused) is AuthFailed; anything else (API server
 * down) is Unavailable. The message of an error that carries an HTTP exchange
 * (`body`, `headers`) is not used — it can embed the response.
 */
export function mapContextError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  const status = httpStatus(err);
  if (status === 403 || status === 404) return new CredentialsNotFoundError(`${what}: HTTP ${status}`);
  if (status === 401) return new AuthFailedError(`${what}: HTTP ${status}`);
  if (status !== undefined) return new UnavailableError(`${what}: HTTP ${status}`);
  const carriesExchange = typeof err === 'object' && err !== null && ('body' in err || 'headers' in err);
  const message = err instanceof Error && !carriesExchange ? scrubMessage(err.message, []) : '';
  // A plain Error from the adapter (e.g. `Secret x has no key "y"`) names a credential problem.
  if (message !== '' && /has no key|not found/i.test(message)) return new CredentialsNotFoundError(`${what}: ${message}`);
  return new UnavailableError(`${what}${message === '' ? '' : `: ${message}`}`);
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  for (const key of ['code', 'statusCode', 'status'] as const) {
    const v: unknown = (err as Record<string, unknown>)[key];
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
  }
  return undefined;
}

/**
 * One short line fit for a status condition: the credentials we know we sent removed verbatim,
 * then anything token-like scrubbed, whitespace folded, length capped.
 */
export function scrubMessage(text: string, credentials: readonly string[], maxLength = 300): string {
  let out = text;
  for (const credential of credentials) {
    if (credential.length >= 4) out = out.split(credential).join('[REDACTED]');
  }
  out = scrubText(out).replace(/\s+/g, ' ').trim();
  return out.length > maxLength ? `${out.slice(0, maxLength)}…` : out;
}

/** Runs `task` over `items` with at most `limit` in flight; results in input order. */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Socket-level error codes every provider maps to Unavailable (the store could not be reached). */
export const networkErrorCodes: readonly string[] = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED'];

/** TLS verification failures: a configuration problem (wrong caBundle or host), never retried blindly. */
export const tlsErrorCodes: readonly string[] = ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'ERR_TLS_CERT_ALTNAME_INVALID'];
