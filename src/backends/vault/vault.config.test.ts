import { describe, expect, it } from '@jest/globals';
import { InvalidConfigError } from '../backend.port.ts';
import { testCaBundle } from '../provider.test-fixtures.ts';
import { parseVaultConfig } from './vault.config.ts';

const token = { token: { secretRef: { name: 'vault', key: 'token' } } };

describe('parseVaultConfig', () => {
  it('applies the CRD defaults', () => {
    expect(parseVaultConfig({ address: 'https://vault.example.com:8200/', auth: token })).toEqual({
      address: 'https://vault.example.com:8200',
      mount: 'secret',
      kvVersion: 2,
      namespace: undefined,
      caPem: undefined,
      auth: { method: 'token', secretRef: { name: 'vault', key: 'token' } },
    });
  });

  it('reads every auth method', () => {
    expect(
      parseVaultConfig({ address: 'http://127.0.0.1:8200', auth: { kubernetes: { role: 'app', serviceAccountRef: { name: 'reader' }, audience: 'vault' } } }).auth,
    ).toEqual({ method: 'kubernetes', role: 'app', mountPath: 'kubernetes', serviceAccountName: 'reader', audiences: ['vault'], loginAddress: 'http://127.0.0.1:8200' });
    expect(parseVaultConfig({ address: 'https://v/', auth: { kubernetes: { role: 'app', mountPath: 'k8s/prod', serviceAccountRef: { name: 'r' }, audience: 'openbao' } } }).auth).toEqual({
      method: 'kubernetes',
      role: 'app',
      mountPath: 'k8s/prod',
      serviceAccountName: 'r',
      audiences: ['openbao'],
      loginAddress: 'https://v',
    });
    expect(parseVaultConfig({ address: 'http://v', auth: { appRole: { roleId: 'id', secretRef: { name: 's', key: 'k' } } } }).auth).toEqual({
      method: 'appRole',
      roleId: 'id',
      mountPath: 'approle',
      secretRef: { name: 's', key: 'k' },
    });
  });

  it('takes KV v1, a namespace and a CA bundle', () => {
    const config = parseVaultConfig({ address: 'https://v', mount: 'team/kv', kvVersion: 1, namespace: 'team-a', caBundle: testCaBundle, auth: token });
    expect(config.kvVersion).toBe(1);
    expect(config.mount).toBe('team/kv');
    expect(config.namespace).toBe('team-a');
    expect(config.caPem).toContain('BEGIN CERTIFICATE');
  });

  it.each([
    [{ auth: token }, /address/],
    [{ address: 'ftp://v', auth: token }, /address/],
    [{ address: 'http://v', auth: {} }, /exactly one of kubernetes, appRole, token/],
    [{ address: 'http://v', auth: { ...token, appRole: { roleId: 'x', secretRef: { name: 's', key: 'k' } } } }, /exactly one/],
    [{ address: 'http://v', kvVersion: 3, auth: token }, /kvVersion/],
    [{ address: 'http://v', mount: '/secret/', auth: token }, /mount/],
    [{ address: 'http://v', mount: 'a/../b', auth: token }, /mount/],
    [{ address: 'http://v', caBundle: '-----BEGIN CERTIFICATE-----', auth: token }, /vault\.caBundle: not base64/],
    [{ address: 'http://v', auth: { kubernetes: { role: 'r' } } }, /serviceAccountRef/],
    // ADR 0150: an empty or missing audience would mean the API server's own.
    [{ address: 'https://v', auth: { kubernetes: { role: 'r', serviceAccountRef: { name: 'r' } } } }, /audience/],
    [{ address: 'https://v', auth: { kubernetes: { role: 'r', serviceAccountRef: { name: 'r' }, audience: '' } } }, /an explicit audience is required/],
    [{ address: 'http://v', auth: token, unknownField: 1 }, /unknownField/],
    ['not an object', /vault:/],
  ])('refuses %j with a message naming the field', (spec, message) => {
    expect(() => parseVaultConfig(spec)).toThrow(InvalidConfigError);
    expect(() => parseVaultConfig(spec)).toThrow(message);
  });
});
