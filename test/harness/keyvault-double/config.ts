/**
 * Configuration of the Key Vault double, as plain data: written as JSON by
 * `startKeyVaultDouble` (test/harness/keyvault-double.ts) and read by `server.ts` at start, so a
 * restart from the recorded process spec serves the same tenant, clients and certificate.
 */

/** Key Vault secret permissions (access-policy names) the double enforces per client. */
export const secretPermissions = ['get', 'list', 'set', 'delete', 'recover', 'purge'] as const;
export type SecretPermission = (typeof secretPermissions)[number];

/** Trust for workload identity federation: assertions (JWTs) minted by one issuer. */
export interface FederatedCredentialConfig {
  /** Expected `iss` of the assertion (the Kubernetes service-account issuer). */
  readonly issuer: string;
  /** PEM public key (SPKI) that signs the assertions (the apiserver's service-account key). */
  readonly publicKeyPath: string;
  /** Expected `aud`, `api://AzureADTokenExchange` as in Entra. */
  readonly audience: string;
  /** Exact `sub` required (e.g. `system:serviceaccount:ns:name`); absent: any subject. */
  readonly subject?: string;
}

/** One app registration (or managed identity) of the double's tenant. */
export interface ClientConfig {
  readonly clientId: string;
  /** Accepted `client_secret`; absent: the client cannot authenticate with a secret. */
  readonly clientSecret?: string;
  readonly federated?: FederatedCredentialConfig;
  /** Served by the IMDS-like endpoint (managed identity). */
  readonly managedIdentity?: boolean;
  /** Secret permissions on the vault; a client without `get` gets 403 on reads. */
  readonly permissions: readonly SecretPermission[];
}

export interface KeyVaultDoubleConfig {
  /** Port on 127.0.0.1 (vault, token endpoint, IMDS-like endpoint and control API share it). */
  readonly port: number;
  readonly certPath: string;
  readonly keyPath: string;
  /** The single tenant the double's token endpoint serves. */
  readonly tenantId: string;
  readonly clients: readonly ClientConfig[];
  /** Lifetime of issued access tokens. */
  readonly tokenLifetimeSeconds: number;
  /** Secrets and issued tokens are kept here (JSON, written after changes), so a restart keeps them. */
  readonly statePath: string;
}

/** The Key Vault resource: the challenge names it, tokens are issued for `<resource>/.default`. */
export const keyVaultResource = 'https://vault.azure.net';

/** Audience of federated assertions, as Entra expects by default. */
export const federatedTokenAudience = 'api://AzureADTokenExchange';

/**
 * Data-plane api-versions the double accepts: the 7.x line and the date-named versions of
 * @azure/keyvault-secrets 4.12 (its default is the newest).
 */
export const supportedApiVersions = ['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01', '2026-04-01'] as const;
