import { describe, expect, it } from '@jest/globals';
import { AuthenticationError, CredentialUnavailableError } from '@azure/identity';
import { AuthFailedError, InvalidConfigError, NotFoundError, ThrottledError, UnavailableError } from '../backend.port.ts';
import { mapAzureError } from './azure.errors.ts';

/** Key Vault's RestError, as @azure/core-rest-pipeline builds it (duck-typed by the mapper). */
function restError(statusCode: number | undefined, code: string | undefined, message: string, headers: Record<string, string> = {}): Error {
  return Object.assign(new Error(message), {
    name: 'RestError',
    statusCode,
    code,
    response: { status: statusCode, headers: { get: (name: string) => headers[name] } },
    request: { headers: { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln' } },
  });
}

describe('mapAzureError', () => {
  it.each([
    [404, 'SecretNotFound', NotFoundError],
    [401, 'Unauthorized', AuthFailedError],
    [403, 'Forbidden', AuthFailedError],
    [400, 'BadParameter', InvalidConfigError],
    [500, 'InternalServerError', UnavailableError],
    [503, 'ServiceUnavailable', UnavailableError],
  ] as const)('Key Vault HTTP %i %s → %p', (status, code, kind) => {
    expect(mapAzureError(restError(status, code, 'message'), { operation: 'get', key: 'db' })).toBeInstanceOf(kind);
  });

  it('treats a disabled secret as not found, not as a credential problem', () => {
    const error = restError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.');
    expect(mapAzureError(error, { operation: 'get' })).toBeInstanceOf(NotFoundError);
  });

  it('maps throttling with its Retry-After', () => {
    const mapped = mapAzureError(restError(429, 'Throttled', 'Too many requests', { 'retry-after': '7' }), { operation: 'get' });
    expect(mapped).toBeInstanceOf(ThrottledError);
    expect((mapped as ThrottledError).retryAfterMs).toBe(7000);
  });

  it('maps Entra failures: a rejected credential is AuthFailed, an Entra outage Unavailable, without the secret', () => {
    const rejected = new AuthenticationError(401, {
      error: 'invalid_client',
      error_description: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'c'.\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2026-01-01",
    });
    const mapped = mapAzureError(rejected, { operation: 'get', credentials: ['Wq8Q~client-secret-value'] });
    expect(mapped).toBeInstanceOf(AuthFailedError);
    expect(mapped.message).toContain('AADSTS7000215');
    expect(mapped.message).not.toContain('Trace ID');
    expect(mapAzureError(new AuthenticationError(503, { error: 'temporarily_unavailable', error_description: 'try later' }), { operation: 'get' })).toBeInstanceOf(UnavailableError);
    expect(mapAzureError(new CredentialUnavailableError('ManagedIdentityCredential: no managed identity endpoint'), { operation: 'get' })).toBeInstanceOf(AuthFailedError);
  });

  it('passes through the port error of our own context callbacks, wrapped by the credential', () => {
    const ours = new UnavailableError('cannot obtain a token for service account ns/sa: HTTP 500');
    const wrapped = new CredentialUnavailableError('ClientAssertionCredential: getAssertion failed', { cause: ours });
    expect(mapAzureError(wrapped, { operation: 'get' })).toBe(ours);
  });

  it('reports network and TLS failures as Unavailable, never echoing request headers', () => {
    const refused = mapAzureError(restError(undefined, 'ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:8443'), { operation: 'get' });
    expect(refused).toBeInstanceOf(UnavailableError);
    expect(refused.message).toContain('ECONNREFUSED');
    const tls = mapAzureError(restError(undefined, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), { operation: 'get' });
    expect(tls.message).toMatch(/TLS verification failed .*caBundle/);
    expect(tls.message).not.toContain('eyJ');
  });

  it('reports an abort as a timeout when the signal timed out', () => {
    const mapped = mapAzureError(Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' }), {
      operation: 'get',
      signal: AbortSignal.abort(new DOMException('t', 'TimeoutError')),
    });
    expect(mapped.message).toBe('Azure Key Vault get timed out');
  });
});
