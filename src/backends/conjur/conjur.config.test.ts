import { describe, expect, it } from '@jest/globals';
import { InvalidConfigError } from '../backend.port.ts';
import { testCaBundle } from '../provider.test-fixtures.ts';
import { parseConjurConfig } from './conjur.config.ts';

const applianceUrl = 'https://conjur.example.com/';

describe('parseConjurConfig', () => {
  it('reads authn-jwt with the CRD default audience, and the API key as its fallback', () => {
    const config = parseConjurConfig({
      applianceUrl,
      account: 'myorg',
      caBundle: testCaBundle,
      auth: { jwt: { serviceId: 'k8s', serviceAccountRef: { name: 'reader' } }, apiKey: { login: 'host/app', secretRef: { name: 's', key: 'k' } } },
    });
    expect(config.applianceUrl).toBe('https://conjur.example.com');
    expect(config.caPem).toContain('BEGIN CERTIFICATE');
    expect(config.jwt).toEqual({ serviceId: 'k8s', hostId: undefined, serviceAccountName: 'reader', audience: 'conjur' });
    expect(config.apiKey).toEqual({ login: 'host/app', secretRef: { name: 's', key: 'k' } });
    expect(parseConjurConfig({ applianceUrl, account: 'a', auth: { apiKey: { login: 'host/app', secretRef: { name: 's', key: 'k' } } } }).jwt).toBeUndefined();
  });

  it.each([
    [{ applianceUrl: 'http://conjur.example.com', account: 'a', auth: { apiKey: { login: 'l', secretRef: { name: 's', key: 'k' } } } }, /applianceUrl/],
    [{ applianceUrl, account: 'a', auth: {} }, /at least one of jwt, apiKey/],
    [{ applianceUrl, account: '', auth: { apiKey: { login: 'l', secretRef: { name: 's', key: 'k' } } } }, /account/],
    [{ applianceUrl, account: 'a', auth: { jwt: { serviceId: 'k8s' } } }, /serviceAccountRef/],
    [{ applianceUrl, account: 'a', caBundle: 'bm90IGEgY2VydA==', auth: { apiKey: { login: 'l', secretRef: { name: 's', key: 'k' } } } }, /conjur\.caBundle: holds no PEM certificate/],
  ])('refuses %j', (spec, message) => {
    expect(() => parseConjurConfig(spec)).toThrow(InvalidConfigError);
    expect(() => parseConjurConfig(spec)).toThrow(message);
  });
});
