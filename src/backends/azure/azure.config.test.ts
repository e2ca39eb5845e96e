import { describe, expect, it } from '@jest/globals';
import { InvalidConfigError } from '../backend.port.ts';
import { testCaBundle } from '../provider.test-fixtures.ts';
import { parseAzureConfig } from './azure.config.ts';

const vaultUrl = 'https://my-vault.vault.azure.net/';

describe('parseAzureConfig', () => {
  it('reads workload identity with the CRD defaults', () => {
    expect(parseAzureConfig({ vaultUrl, auth: { workloadIdentity: { tenantId: 't', clientId: 'c', serviceAccountRef: { name: 'reader' } } } })).toEqual({
      vaultUrl: 'https://my-vault.vault.azure.net',
      serviceVersion: undefined,
      caPem: undefined,
      auth: { method: 'workloadIdentity', tenantId: 't', clientId: 'c', serviceAccountName: 'reader', audience: 'api://AzureADTokenExchange', authorityHost: undefined },
    });
  });

  it('reads client secret, managed identity, the service version and a CA bundle', () => {
    const config = parseAzureConfig({
      vaultUrl,
      serviceVersion: '7.5',
      caBundle: testCaBundle,
      auth: { clientSecret: { tenantId: 't', clientId: 'c', secretRef: { name: 's', key: 'k' }, authorityHost: 'https://login.microsoftonline.us' } },
    });
    expect(config.serviceVersion).toBe('7.5');
    expect(config.caPem).toContain('BEGIN CERTIFICATE');
    expect(config.auth).toEqual({ method: 'clientSecret', tenantId: 't', clientId: 'c', secretRef: { name: 's', key: 'k' }, authorityHost: 'https://login.microsoftonline.us' });
    expect(parseAzureConfig({ vaultUrl, auth: { managedIdentity: {} } }).auth).toEqual({ method: 'managedIdentity', clientId: undefined });
    expect(parseAzureConfig({ vaultUrl, auth: { managedIdentity: { clientId: 'uai' } } }).auth).toEqual({ method: 'managedIdentity', clientId: 'uai' });
  });

  it.each([
    [{ vaultUrl: 'http://my-vault.vault.azure.net', auth: { managedIdentity: {} } }, /vaultUrl/],
    [{ vaultUrl, auth: {} }, /exactly one of workloadIdentity, clientSecret, managedIdentity/],
    [{ vaultUrl, serviceVersion: 'latest', auth: { managedIdentity: {} } }, /serviceVersion/],
    [{ vaultUrl, caBundle: 'bm90IGEgY2VydA==', auth: { managedIdentity: {} } }, /azureKeyVault\.caBundle: holds no PEM certificate/],
    [{ vaultUrl, auth: { clientSecret: { tenantId: 't', clientId: 'c', secretRef: { name: 's' } } } }, /key/],
    [{ vaultUrl, auth: { workloadIdentity: { tenantId: 't', clientId: 'c', serviceAccountRef: { name: 'r' }, authorityHost: 'http://x' } } }, /authorityHost/],
    [{ vaultUrl, auth: { clientSecret: { tenantId: 'a b', clientId: 'c', secretRef: { name: 's', key: 'k' } } } }, /tenantId: must be a tenant id/],
    [{ vaultUrl, auth: { workloadIdentity: { tenantId: 't/../x', clientId: 'c', serviceAccountRef: { name: 'r' } } } }, /tenantId: must be a tenant id/],
  ])('refuses %j', (spec, message) => {
    expect(() => parseAzureConfig(spec)).toThrow(InvalidConfigError);
    expect(() => parseAzureConfig(spec)).toThrow(message);
  });
});
