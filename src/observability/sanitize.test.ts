import { describe, expect, it } from '@jest/globals';
import { sanitizeError, scrubText } from './sanitize.ts';
import { NotFoundError, ThrottledError } from '../backends/backend.port.ts';

describe('scrubText', () => {
  it.each([
    ['Authorization: Bearer abc123.def', 'Authorization: [REDACTED]'],
    ['header Basic dXNlcjpwYXNz was refused', 'header Basic [REDACTED] was refused'],
    ['Basic authentication failed', 'Basic authentication failed'],
    ['GET https://vault:8200/v1/secret/data/app?version=3&token=abc failed', 'GET https://vault:8200/v1/secret/data/app?[REDACTED] failed'],
    ['connect https://admin:s3cr3t@vault.example:8200/v1 refused', 'connect https://[REDACTED]@vault.example:8200/v1 refused'],
    ['body {"password":"p@ss","user":"u"}', 'body {"password":"[REDACTED]","user":"u"}'],
    ['client_secret=abc&grant_type=x', 'client_secret=[REDACTED]&grant_type=x'],
    ['token hvs.CAESIJ3mZk1Lx2y9v8w7Q6r5s4t3 expired', 'token [REDACTED] expired'],
    ['key AKIAIOSFODNN7EXAMPLE denied', 'key [REDACTED] denied'],
    ['-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----', '[REDACTED]'],
    ['secret app/db not found', 'secret app/db not found'],
  ])('%s', (input, expected) => {
    expect(scrubText(input)).toBe(expected);
  });
});

describe('sanitizeError', () => {
  it('keeps name, scrubbed message and code of an axios-style error, nothing else', () => {
    const err = Object.assign(new Error('Request to https://u:p@vault:8200/v1/x?token=t failed'), {
      name: 'AxiosError',
      code: 'ECONNRESET',
      config: { headers: { 'X-Vault-Token': 'hvs.secret' } },
      request: { body: 'role=r&jwt=eyJ' },
      response: { data: 'top secret body' },
    });
    const out = sanitizeError(err);
    expect(out).toEqual({ name: 'AxiosError', message: 'Request to https://[REDACTED]@vault:8200/v1/x?[REDACTED] failed', code: 'ECONNRESET' });
    expect(JSON.stringify(out)).not.toMatch(/hvs\.secret|top secret body|role=r/);
  });

  it('drops AWS SDK metadata and raw responses', () => {
    const err = Object.assign(new Error("Secrets Manager can't find the specified secret."), {
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 400, requestId: 'r' },
      $response: { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/...' }, body: 'x' },
      $fault: 'client',
    });
    expect(sanitizeError(err)).toEqual({ name: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." });
  });

  it('keeps our backend error kind and a sanitized cause chain', () => {
    const err = new ThrottledError('rate exceeded', 2000);
    (err as { cause?: unknown }).cause = new Error('HTTP 429 with Authorization: Bearer zzzzzzzz');
    expect(sanitizeError(err)).toEqual({
      name: 'ThrottledError',
      message: 'rate exceeded',
      kind: 'Throttled',
      cause: { name: 'Error', message: 'HTTP 429 with Authorization: [REDACTED]' },
    });
    expect(sanitizeError(new NotFoundError('no such secret'))).toMatchObject({ kind: 'NotFound' });
  });

  it('never stringifies thrown non-errors', () => {
    expect(sanitizeError({ password: 'x', toString: () => 'x' })).toEqual({ name: 'Error', message: 'a non-Error value was thrown (object)' });
    expect(sanitizeError('plain Bearer abcdefgh')).toEqual({ name: 'Error', message: 'plain Bearer [REDACTED]' });
    expect(sanitizeError(undefined)).toEqual({ name: 'Error', message: 'a non-Error value was thrown (undefined)' });
  });

  it('clips very long messages (SDKs that embed whole bodies)', () => {
    expect(sanitizeError(new Error('x'.repeat(5000))).message.length).toBeLessThanOrEqual(1025);
  });

  it('refuses odd names and codes', () => {
    const err = Object.assign(new Error('m'), { name: 'Bad name with spaces and {json}', code: { nested: true } });
    expect(sanitizeError(err)).toEqual({ name: 'Error', message: 'm' });
  });
});
