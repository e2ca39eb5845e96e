import { describe, expect, it } from '@jest/globals';
import { AuthFailedError, InvalidConfigError, NotFoundError, ThrottledError, UnavailableError } from '../backend.port.ts';
import { mapVaultError } from './vault.errors.ts';

function apiError(statusCode: number, errors: string[] = []): Error {
  return Object.assign(new Error(errors[0] ?? `Status ${statusCode}`), { response: { statusCode, body: { errors } } });
}

describe('mapVaultError', () => {
  it.each([
    [404, [], 'read', NotFoundError],
    [403, ['permission denied'], 'read', AuthFailedError],
    [401, [], 'read', AuthFailedError],
    [400, ['invalid role ID'], 'login', AuthFailedError],
    [400, ['bad version'], 'read', InvalidConfigError],
    [404, ['no handler for route "nope/data/x". route entry not found.'], 'read', InvalidConfigError],
    [412, ['required index state not present'], 'read', UnavailableError],
    [500, ['internal error'], 'read', UnavailableError],
    [503, ['Vault is sealed'], 'read', UnavailableError],
  ] as const)('HTTP %i %j during %s → %p', (status, errors, operation, kind) => {
    expect(mapVaultError(apiError(status, [...errors]), { operation })).toBeInstanceOf(kind);
  });

  it('keeps Vault’s first error line, scrubbed of the credentials it was sent and of token-like strings', () => {
    const error = apiError(400, ['1 error occurred:\n\t* invalid secret id 3f1c-secret-id-value for hvs.CAESIJ0123456789abcdefghij\n\n']);
    const mapped = mapVaultError(error, { operation: 'login', credentials: ['3f1c-secret-id-value'] });
    expect(mapped).toBeInstanceOf(AuthFailedError);
    expect(mapped.message).toContain('invalid secret id');
    expect(mapped.message).not.toContain('3f1c-secret-id-value');
    expect(mapped.message).not.toContain('hvs.CAESIJ');
    expect(mapped.message).not.toContain('\n');
    expect(mapped.cause).toBeUndefined();
  });

  it('names the path, never a value', () => {
    expect(mapVaultError(apiError(404), { operation: 'read', path: 'app/db' }).message).toBe('Vault read of "app/db": not found');
  });

  it('reports network and TLS failures as Unavailable, with a hint for TLS', () => {
    const refused = mapVaultError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8200'), { code: 'ECONNREFUSED' }), { operation: 'read' });
    expect(refused).toBeInstanceOf(UnavailableError);
    expect(refused.message).toContain('ECONNREFUSED');
    const tls = mapVaultError(Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' }), { operation: 'login' });
    expect(tls).toBeInstanceOf(UnavailableError);
    expect(tls.message).toMatch(/TLS verification failed .*caBundle/);
  });

  it('reports an aborted call as a timeout, whatever socket error the abort caused', () => {
    const mapped = mapVaultError(Object.assign(new Error('The operation was aborted'), { code: 'ABORT_ERR' }), {
      operation: 'read',
      signal: AbortSignal.abort(new DOMException('timeout', 'TimeoutError')),
    });
    expect(mapped).toBeInstanceOf(UnavailableError);
    expect(mapped.message).toBe('Vault read timed out');
  });

  it('passes the transport’s ThrottledError (with its retry-after) through', () => {
    const throttled = new ThrottledError('Vault rate limit reached (HTTP 429)', 2000);
    expect(mapVaultError(throttled, { operation: 'read' })).toBe(throttled);
  });
});
