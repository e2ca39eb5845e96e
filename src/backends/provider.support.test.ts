import { describe, expect, it } from '@jest/globals';
import { AuthFailedError, CredentialsNotFoundError, InvalidConfigError, NotFoundError, UnavailableError } from './backend.port.ts';
import {
  abortError,
  decodeCaBundle,
  mapContextError,
  mapWithConcurrency,
  raceWithSignal,
  scrubMessage,
} from './provider.support.ts';
import { testCertificatePem } from './provider.test-fixtures.ts';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('decodeCaBundle', () => {
  it('decodes base64 PEM, keeping every certificate and dropping anything else', () => {
    const bundle = `# comment\n${testCertificatePem}\n${testCertificatePem}\n`;
    const pem = decodeCaBundle(b64(bundle), 'x.caBundle');
    expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(pem).not.toContain('# comment');
  });

  it('refuses what is not base64, holds no certificate, or holds a broken one, naming the field', () => {
    expect(() => decodeCaBundle(testCertificatePem, 'vault.caBundle')).toThrow(/vault\.caBundle: not base64/);
    expect(() => decodeCaBundle(b64('hello'), 'vault.caBundle')).toThrow(/holds no PEM certificate/);
    const broken = testCertificatePem.replace('MIIBmDCCAT2g', 'MIIBmDCCAT2h').replace(/o1MwUTAd/, 'AAAAAAAA');
    expect(() => decodeCaBundle(b64(broken), 'vault.caBundle')).toThrow(InvalidConfigError);
  });
});

describe('raceWithSignal', () => {
  it('passes the result or the error of the work through', async () => {
    await expect(raceWithSignal(Promise.resolve(1), AbortSignal.timeout(1000), 'x')).resolves.toBe(1);
    await expect(raceWithSignal(Promise.reject(new NotFoundError('gone')), AbortSignal.timeout(1000), 'x')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('stops waiting when the signal fires, saying whether it timed out', async () => {
    const never = new Promise<number>(() => undefined);
    await expect(raceWithSignal(never, AbortSignal.timeout(20), 'Vault login')).rejects.toThrow('Vault login timed out');
    const controller = new AbortController();
    controller.abort();
    await expect(raceWithSignal(never, controller.signal, 'Vault login')).rejects.toThrow('Vault login was aborted');
  });
});

describe('abortError', () => {
  it('is a retryable Unavailable', () => {
    const controller = new AbortController();
    controller.abort();
    const error = abortError(controller.signal, 'AWS fetch');
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.retryable).toBe(true);
  });
});

describe('mapContextError', () => {
  it('passes port errors through', () => {
    const error = new UnavailableError('down');
    expect(mapContextError(error, 'x')).toBe(error);
  });

  it('treats a missing or forbidden Secret / service account as CredentialsNotFound (an AuthFailed), other HTTP failures as Unavailable', () => {
    for (const code of [403, 404]) expect(mapContextError(Object.assign(new Error('boom'), { code }), 'read')).toBeInstanceOf(CredentialsNotFoundError);
    expect(mapContextError(Object.assign(new Error('boom'), { code: 401 }), 'read')).not.toBeInstanceOf(CredentialsNotFoundError);
    expect(mapContextError(Object.assign(new Error('boom'), { code: 401 }), 'read')).toBeInstanceOf(AuthFailedError);
    expect(mapContextError(Object.assign(new Error('boom'), { code: 500 }), 'read')).toBeInstanceOf(UnavailableError);
    expect(mapContextError(new Error('Secret ns/x has no key "y"'), 'read')).toBeInstanceOf(CredentialsNotFoundError);
    expect(mapContextError(new Error('socket hang up'), 'read')).toBeInstanceOf(UnavailableError);
  });

  it('never uses the message of an error that carries an HTTP exchange', () => {
    const error = Object.assign(new Error('HTTP-Code: 500 Body: {"data":{"password":"cGFzcw=="}}'), { body: '...', headers: {} });
    const mapped = mapContextError(error, 'cannot read Secret s');
    expect(mapped.message).toBe('cannot read Secret s');
  });
});

describe('scrubMessage', () => {
  it('removes known credentials verbatim, token-looking strings, and folds to one capped line', () => {
    const text = `login failed for secret-id 7c1d-raw-credential\n  with Bearer abc.def.ghi and ${'x'.repeat(400)}`;
    const out = scrubMessage(text, ['7c1d-raw-credential']);
    expect(out).not.toContain('7c1d-raw-credential');
    expect(out).not.toContain('abc.def.ghi');
    expect(out).not.toContain('\n');
    expect(out.length).toBeLessThanOrEqual(301);
  });
});

describe('mapWithConcurrency', () => {
  it('keeps input order and never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapWithConcurrency([5, 1, 4, 2, 3], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, n));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });
});
