import {
  AuthFailedError,
  BackendError,
  InvalidConfigError,
  NotFoundError,
  ThrottledError,
  UnavailableError,
} from '../backend.port.ts';
import { abortError, scrubMessage, networkErrorCodes, tlsErrorCodes } from '../provider.support.ts';

/**
 * Maps an Azure SDK error — a RestError from Key Vault, an AuthenticationError /
 * CredentialUnavailableError from @azure/identity, a network error — to a port error. Only the
 * error's name, code, HTTP status and the first line of its message are used; never its
 * `request` / `response` (which hold headers). ADR 0064.
 */

export interface AzureErrorContext {
  readonly operation: string;
  /** Secret name involved, if any. */
  readonly key?: string;
  readonly signal?: AbortSignal;
  /** Credentials in use, removed verbatim from messages. */
  readonly credentials?: readonly string[];
}

const networkCodes = new Set([...networkErrorCodes, 'REQUEST_SEND_ERROR']);
const tlsCodes = new Set([...tlsErrorCodes]);
const credentialErrors = new Set([
  'AuthenticationError',
  'AggregateAuthenticationError',
  'CredentialUnavailableError',
  'AuthenticationRequiredError',
]);

export function mapAzureError(err: unknown, context: AzureErrorContext): BackendError {
  if (context.signal?.aborted === true) return abortError(context.signal, `Azure Key Vault ${context.operation}`);
  if (err instanceof BackendError) return err;
  const what = `Azure Key Vault ${context.operation}${context.key === undefined ? '' : ` of "${context.key.slice(0, 200)}"`}`;
  const name = errorName(err);
  const status = numberField(err, 'statusCode');
  const code = stringField(err, 'code');
  const detail = entraDetail(err, context.credentials ?? []) ?? firstLine(err, context.credentials ?? []);
  const said = [code ?? name, detail].filter((s) => s !== '').join(': ');

  if (name === 'AbortError') return new UnavailableError(`${what} was aborted`);
  // The credential wraps errors of our own context callbacks (TokenRequest, Secret reads).
  const wrapped = causeChain(err).find((c): c is BackendError => c instanceof BackendError);
  if (wrapped !== undefined) return wrapped;
  if (credentialErrors.has(name)) {
    // Entra answered 5xx or could not be reached: worth retrying; anything else is a credential problem.
    if (status !== undefined && status >= 500) return new UnavailableError(`Entra ID token request failed (HTTP ${status}, ${said})`);
    return new AuthFailedError(`Entra ID token request failed (${said})`);
  }
  if (status === 404) return new NotFoundError(`${what}: not found`);
  if (status === 403 && /disabled/i.test(detail)) return new NotFoundError(`${what}: the secret (version) is disabled`);
  if (status === 401 || status === 403) return new AuthFailedError(`${what} denied (HTTP ${status}, ${said})`);
  if (status === 429) return new ThrottledError(`${what} throttled (HTTP 429)`, retryAfterMs(err));
  if (status === 400) return new InvalidConfigError(`${what} rejected (HTTP 400, ${said})`);
  if (status !== undefined) return new UnavailableError(`${what} failed (HTTP ${status}, ${said})`);
  const causeCode = code ?? causeChain(err).map((c) => stringField(c, 'code')).find((c) => c !== undefined);
  if (causeCode !== undefined && tlsCodes.has(causeCode)) {
    return new UnavailableError(`${what}: TLS verification failed (${causeCode}); check vaultUrl and caBundle`);
  }
  if (causeCode !== undefined && networkCodes.has(causeCode)) return new UnavailableError(`${what}: cannot reach the vault (${causeCode})`);
  return new UnavailableError(`${what} failed (${said})`);
}

function errorName(err: unknown): string {
  if (!(err instanceof Error)) return 'Error';
  return /^[A-Za-z0-9_.:-]{1,80}$/.test(err.name) ? err.name : 'Error';
}

function numberField(err: unknown, field: string): number | undefined {
  const v: unknown = typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[field] : undefined;
  return typeof v === 'number' ? v : undefined;
}

function stringField(err: unknown, field: string): string | undefined {
  const v: unknown = typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[field] : undefined;
  return typeof v === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(v) ? v : undefined;
}

function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = err instanceof Error ? err.cause : undefined;
  while (current !== undefined && current !== null && chain.length < 4) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}

/** Retry-After from the response headers (only that header is read). */
function retryAfterMs(err: unknown): number | undefined {
  const headers: unknown = (err as { response?: { headers?: unknown } } | null)?.response?.headers;
  const get = (headers as { get?: unknown } | null)?.get;
  const value: unknown = typeof get === 'function' ? (get as (name: string) => unknown).call(headers, 'retry-after') : undefined;
  if (typeof value !== 'string') return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** An AuthenticationError's `error: description` (its message puts the description after a header). */
function entraDetail(err: unknown, credentials: readonly string[]): string | undefined {
  const response: unknown = (err as { errorResponse?: unknown } | null)?.errorResponse;
  if (typeof response !== 'object' || response === null) return undefined;
  const { error, errorDescription } = response as { error?: unknown; errorDescription?: unknown };
  if (typeof errorDescription !== 'string' || errorDescription.trim() === '') return undefined;
  const line = errorDescription.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
  return scrubMessage(`${typeof error === 'string' ? `${error}: ` : ''}${line}`, credentials, 240);
}

/** First line of the message; Entra appends trace/correlation ids and troubleshooting links after it. */
function firstLine(err: unknown, credentials: readonly string[]): string {
  if (!(err instanceof Error) || typeof err.message !== 'string') return '';
  const line = err.message.split(/\r?\n/).find((l) => l.trim() !== '') ?? '';
  return scrubMessage(line.replace(/\s*Trace ID:.*$/i, ''), credentials, 240);
}
