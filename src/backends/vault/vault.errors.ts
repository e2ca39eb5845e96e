import {
  AuthFailedError,
  BackendError,
  InvalidConfigError,
  NotFoundError,
  UnavailableError,
} from '../backend.port.ts';
import { abortError, scrubMessage, networkErrorCodes, tlsErrorCodes } from '../provider.support.ts';

/**
 * Maps whatever node-vault or the transport threw to a port error. The message keeps Vault's own
 * first error line (scrubbed of anything token-like and of the credentials we know we sent) and
 * never the request, its headers or the response body. No `cause` is attached: an axios/http
 * error object carries the request, and callers log errors whole.
 */

export type VaultOperation = 'login' | 'token lookup' | 'token renewal' | 'read' | 'metadata read' | 'lease issue' | 'lease renewal' | 'lease revocation' | 'lease record' | 'certificate signing' | 'certificate revocation';

export interface VaultErrorContext {
  readonly operation: VaultOperation;
  /** The secret path involved, if any (a path, never a value). */
  readonly path?: string;
  /** The caller's signal: an abort is reported as a timeout/abort, not as the socket error it causes. */
  readonly signal?: AbortSignal;
  /** Credentials sent with the request (token, JWT, secret id): removed from any message verbatim. */
  readonly credentials?: readonly string[];
}

const networkCodes = new Set([...networkErrorCodes, 'UND_ERR_SOCKET']);

/** OpenSSL / Node verification failures: the server's certificate does not chain to caBundle. */
const tlsCodes = new Set([...tlsErrorCodes, 'ERR_SSL_WRONG_VERSION_NUMBER']);

export function mapVaultError(err: unknown, context: VaultErrorContext): BackendError {
  if (context.signal?.aborted === true) return abortError(context.signal, `Vault ${context.operation}`);
  if (err instanceof BackendError) return err;
  const what = `Vault ${context.operation}${context.path === undefined ? '' : ` of "${context.path}"`}`;

  const status = responseStatus(err);
  if (status !== undefined) {
    const detail = vaultMessage(err, context.credentials ?? []);
    const said = detail === '' ? `HTTP ${status}` : `HTTP ${status}: ${detail}`;
    if (context.operation === 'login' && (status === 400 || status === 401 || status === 403)) {
      return new AuthFailedError(`${what} refused (${said})`);
    }
    if (status === 401 || status === 403) return new AuthFailedError(`${what} denied (${said})`);
    if (status === 404) {
      if (/no handler for route/i.test(detail)) {
        return new InvalidConfigError(`${what}: no such mount or route (${said}); check mount and kvVersion`);
      }
      return new NotFoundError(`${what}: not found`);
    }
    if (status === 400 || status === 405) return new InvalidConfigError(`${what} rejected (${said})`);
    return new UnavailableError(`${what} failed (${said})`);
  }

  const code = errorCode(err);
  if (code !== undefined && tlsCodes.has(code)) {
    return new UnavailableError(`${what}: TLS verification failed (${code}); check address and caBundle`);
  }
  if (code !== undefined && networkCodes.has(code)) return new UnavailableError(`${what}: cannot reach Vault (${code})`);
  const message = err instanceof Error ? scrubMessage(err.message, context.credentials ?? []) : '';
  return new UnavailableError(`${what} failed${code === undefined ? '' : ` (${code})`}${message === '' ? '' : `: ${message}`}`);
}

/** node-vault's ApiResponseError: `{ response: { statusCode, body } }`. */
function responseStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const response: unknown = (err as { response?: unknown }).response;
  if (typeof response !== 'object' || response === null) return undefined;
  const status: unknown = (response as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Vault's `errors[]` from the response body (node-vault copies errors[0] to the message). */
function vaultMessage(err: unknown, credentials: readonly string[]): string {
  const body: unknown = (err as { response?: { body?: unknown } }).response?.body;
  const errors: unknown = typeof body === 'object' && body !== null ? (body as { errors?: unknown }).errors : undefined;
  const first = Array.isArray(errors) ? (errors as unknown[]).find((e) => typeof e === 'string' && e.trim() !== '') : undefined;
  return typeof first === 'string' ? scrubMessage(first.replace(/\d+ errors? occurred:|\*/g, ' '), credentials) : '';
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,64}$/.test(code) ? code : undefined;
}

