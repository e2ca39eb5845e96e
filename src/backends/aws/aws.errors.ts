import {
  AuthFailedError,
  BackendError,
  InvalidConfigError,
  NotFoundError,
  ThrottledError,
  UnavailableError,
} from '../backend.port.ts';
import { abortError, scrubMessage, networkErrorCodes } from '../provider.support.ts';

/**
 * Maps an AWS SDK error (a service exception, a credential-provider error, a network error) to a
 * port error. Only the error's name, its HTTP status and the first paragraph of the service's
 * message are used — never `$response`, the request, or the signature diagnostics AWS appends
 * (a SignatureDoesNotMatch message carries the canonical request, i.e. the headers).
 */

export interface AwsErrorContext {
  readonly operation: string;
  /** Secret name or ARN involved, if any. */
  readonly key?: string;
  readonly signal?: AbortSignal;
  /** Credentials in use, removed verbatim from messages. */
  readonly credentials?: readonly string[];
}

const notFound = new Set(['ResourceNotFoundException', 'ResourceNotFound', 'SecretHasNoValueException']);
const authFailed = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'IncompleteSignatureException',
  'InvalidClientTokenId',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidIdentityToken',
  'InvalidIdentityTokenException',
  'IDPRejectedClaim',
  'IDPRejectedClaimException',
  'NotAuthorized',
  'AuthFailure',
  'CredentialsProviderError',
  'DecryptionFailure',
  'KMSAccessDeniedException',
]);
const throttled = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'ProvisionedThroughputExceededException',
  'SlowDown',
]);
const invalidConfig = new Set(['InvalidParameterException', 'ValidationException', 'InvalidParameterValue', 'InvalidNextTokenException']);
const networkCodes = new Set([...networkErrorCodes]);

export function mapAwsError(err: unknown, context: AwsErrorContext): BackendError {
  if (context.signal?.aborted === true) return abortError(context.signal, `AWS ${context.operation}`);
  if (err instanceof BackendError) return err;
  const what = `AWS ${context.operation}${context.key === undefined ? '' : ` of "${context.key.slice(0, 512)}"`}`;
  const name = errorName(err);
  const status = httpStatus(err);
  // The SDK could not parse the error body (a proxy's or an emulator's HTML/XML page).
  const unparsed = name === 'SyntaxError' || /Deserialization error/i.test(err instanceof Error ? err.message : '');
  const detail = unparsed ? 'error response not readable' : firstParagraph(err, context.credentials ?? []);
  const said = unparsed ? `HTTP ${status ?? '?'}, ${detail}` : `${name}${detail === '' ? '' : `: ${detail}`}`;

  if (name === 'AbortError') return new UnavailableError(`${what} was aborted`);
  if (notFound.has(name)) return new NotFoundError(`${what}: not found (${said})`);
  // Reading a secret scheduled for deletion: for us it is gone.
  if (name === 'InvalidRequestException' && /deleted|deletion/i.test(detail)) return new NotFoundError(`${what}: marked for deletion`);
  if (authFailed.has(name) || status === 401 || status === 403) return new AuthFailedError(`${what} denied (${said})`);
  if (throttled.has(name) || status === 429) return new ThrottledError(`${what} throttled (${said})`, retryAfterMs(err));
  if (invalidConfig.has(name) || name === 'InvalidRequestException') return new InvalidConfigError(`${what} rejected (${said})`);
  const code = errorCode(err);
  if (code !== undefined && networkCodes.has(code)) return new UnavailableError(`${what}: cannot reach the endpoint (${code})`);
  if (name === 'TimeoutError' || name === 'RequestTimeout') return new UnavailableError(`${what} timed out`);
  return new UnavailableError(`${what} failed (${status === undefined ? said : `HTTP ${status}, ${said}`})`);
}

function errorName(err: unknown): string {
  if (!(err instanceof Error)) return 'Error';
  const name = err.name;
  return /^[A-Za-z0-9_.:-]{1,80}$/.test(name) ? name : 'Error';
}

function httpStatus(err: unknown): number | undefined {
  const status: unknown = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function errorCode(err: unknown): string | undefined {
  const code: unknown = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{2,64}$/.test(code) ? code : undefined;
}

/** A Retry-After header, if the service (or a proxy) sent one. Only that header is read. */
function retryAfterMs(err: unknown): number | undefined {
  const headers: unknown = (err as { $response?: { headers?: unknown } } | null)?.$response?.headers;
  if (typeof headers !== 'object' || headers === null) return undefined;
  const value: unknown = (headers as Record<string, unknown>)['retry-after'];
  if (typeof value !== 'string') return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The service's message up to the first blank line (AWS appends request diagnostics after one). */
function firstParagraph(err: unknown, credentials: readonly string[]): string {
  if (!(err instanceof Error) || typeof err.message !== 'string') return '';
  const head = err.message.split(/\r?\n\s*\r?\n/)[0] ?? '';
  const cut = head.split(/The Canonical String|The String-to-Sign/i)[0] ?? '';
  return scrubMessage(cut, credentials, 240);
}
