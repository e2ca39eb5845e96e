import { describe, expect, it } from '@jest/globals';
import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import { InvalidConfigError } from '../../backends/backend.port.ts';
import { refuseBorrowedIdentity } from './backend-pool.ts';

const backend = (kind: AnyBackend['kind'], spec: Record<string, unknown>): AnyBackend =>
  ({ apiVersion: 'secretbinder.dev/v1alpha1', kind, metadata: { name: 'b', namespace: 'team' }, spec: { access: [], ...spec } }) as unknown as AnyBackend;

describe('borrowed controller identities', () => {
  it('are refused in a namespaced SecretBackend', () => {
    expect(() => { refuseBorrowedIdentity(backend('SecretBackend', { awsSecretsManager: { region: 'x', auth: { defaultChain: {} } } })); }).toThrow(InvalidConfigError);
    expect(() => { refuseBorrowedIdentity(backend('SecretBackend', { azureKeyVault: { vaultUrl: 'https://v', auth: { managedIdentity: {} } } })); }).toThrow(/ClusterSecretBackend/);
  });

  it('are allowed in a ClusterSecretBackend, and other auth methods everywhere', () => {
    expect(() => { refuseBorrowedIdentity(backend('ClusterSecretBackend', { awsSecretsManager: { region: 'x', auth: { defaultChain: {} } } })); }).not.toThrow();
    expect(() => { refuseBorrowedIdentity(backend('SecretBackend', { awsSecretsManager: { region: 'x', auth: { staticKeys: {} } } })); }).not.toThrow();
  });
});
