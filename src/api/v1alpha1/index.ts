/**
 * The secretbinder.dev/v1alpha1 API: resource coordinates, the types generated from `crds/`, and
 * the condition helpers. Import from here rather than from the generated files.
 */
import type { ClusterSecretBackend, ClusterSecretBackendSpec } from './cluster-secret-backend.generated.ts';
import type {
  SecretBackend,
  SecretBackendAwsSecretsManager,
  SecretBackendAzureKeyVault,
  SecretBackendConjur,
  SecretBackendFake,
  SecretBackendSpec,
  SecretBackendVault,
} from './secret-backend.generated.ts';

export type * from './cluster-secret-backend.generated.ts';
export type * from './secret-backend.generated.ts';
export type * from './secret-binding.generated.ts';
export * from './conditions.ts';

export const group = 'secretbinder.dev';
export const version = 'v1alpha1';
export const apiVersion = `${group}/${version}`;

/** How to address each resource through the API (a test keeps this in step with `crds/`). */
export const resources = {
  ClusterSecretBackend: {
    kind: 'ClusterSecretBackend',
    listKind: 'ClusterSecretBackendList',
    plural: 'clustersecretbackends',
    namespaced: false,
  },
  SecretBackend: { kind: 'SecretBackend', listKind: 'SecretBackendList', plural: 'secretbackends', namespaced: true },
  SecretBinding: { kind: 'SecretBinding', listKind: 'SecretBindingList', plural: 'secretbindings', namespaced: true },
} as const;
export type ResourceKind = keyof typeof resources;

/** Either backend kind; both share the provider blocks, refresh interval and rate budget. */
export type AnyBackend = SecretBackend | ClusterSecretBackend;
export type AnyBackendSpec = SecretBackendSpec | ClusterSecretBackendSpec;
export type BackendKind = AnyBackend['kind'];

/**
 * The provider blocks, identical in both backend kinds (a type test checks that), named once for
 * the providers' config parsers.
 */
export type VaultProviderSpec = SecretBackendVault;
export type AwsSecretsManagerProviderSpec = SecretBackendAwsSecretsManager;
export type AzureKeyVaultProviderSpec = SecretBackendAzureKeyVault;
export type ConjurProviderSpec = SecretBackendConjur;
export type FakeProviderSpec = SecretBackendFake;

/** Defaults the CRD schemas apply, for code that builds or reads objects without the API server. */
export const defaults = {
  refreshInterval: '5m',
  rateLimit: { qps: 10, burst: 20, maxConcurrency: 4 },
  fileMode: 0o440,
  rotation: { strategy: 'Refresh', debounce: '30s' },
  onBackendUnavailable: { policy: 'ServeLastKnownGood' },
  minRefreshIntervalSeconds: 10,
} as const;
