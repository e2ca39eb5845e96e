import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessRecord } from './process.ts';
import type { WorldNetwork } from './world-network.ts';

/**
 * The running test world, as plain data: written by `harness up` / jest's global setup to
 * `<dir>/world.json`, read by tests (the path is in SECRET_BINDER_WORLD) and by `harness down`.
 */
export interface WorldState {
  /** Temp directory holding certificates, data dirs and logs of this world. */
  readonly dir: string;
  readonly logDir: string;
  readonly kube: KubeEndpoint;
  readonly openbao?: OpenBaoEndpoint;
  readonly moto?: MotoEndpoint;
  /** PostgreSQL for OpenBao's database secrets engine (mounted at `database/`, connection `world`). */
  readonly postgres?: PostgresEndpoint;
  /**
   * The world's Azure Key Vault server: Lowkey Vault when its jar is installed, else the Key
   * Vault double (test/harness/keyvault-double/, ADR 0070). `kind` says which, `reason` why.
   */
  readonly azureKeyVault?: AzureKeyVaultEndpoint;
  /** Set only when the Azure Key Vault server is Lowkey Vault (same as `azureKeyVault` then). */
  readonly lowkeyVault?: LowkeyVaultEndpoint;
  /** Service range, ClusterIPs, the sink its ranges are routed to, the egress guard (ADR 0180). */
  readonly network?: WorldNetwork;
  /** Every process started for this world, in start order; `down` stops them in reverse. */
  readonly processes: readonly ProcessRecord[];
}

export interface KubeEndpoint {
  /** Admin kubeconfig (client certificate in group system:masters). */
  readonly kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly caPem: string;
  readonly serviceAccountIssuer: string;
}

export interface OpenBaoEndpoint {
  /** http://127.0.0.1:<port> */
  readonly address: string;
  readonly rootToken: string;
  /** KV v2 mount, `secret`. */
  readonly kvMount: string;
  /** Mount path of the kubernetes auth method, `kubernetes`. */
  readonly kubernetesAuthMount: string;
  /** JSON-lines log of the `file/` audit device (values HMACed by OpenBao); tests count reads in it. */
  readonly auditLogPath: string;
}

export interface PostgresEndpoint {
  /** 127.0.0.1 */
  readonly host: string;
  readonly port: number;
  /** Logs in from loopback without a password (trust); every other role needs its password. */
  readonly superuser: string;
  readonly database: string;
}

export interface MotoEndpoint {
  /** http://127.0.0.1:<port> */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface LowkeyVaultEndpoint {
  /** https://<host>:<port> of the default vault; TLS verified against caPem. */
  readonly vaultUrl: string;
  /** The CA (or self-signed certificate) that verifies the vault's serving certificate. */
  readonly caPem: string;
  /** Lowkey Vault's managed-identity style token endpoint, if started. */
  readonly tokenEndpoint?: string;
}

/**
 * The Key Vault double: a Key Vault secrets API and a Microsoft Entra–like token endpoint on one
 * HTTPS port, with fixed test identities (none of these strings is a real credential).
 */
export interface KeyVaultDoubleEndpoint {
  /** https://127.0.0.1:<port>; TLS verified against caPem (the double's own CA). */
  readonly vaultUrl: string;
  readonly caPem: string;
  /** `authorityHost` for @azure/identity credentials (use with `disableInstanceDiscovery: true`). */
  readonly authorityHost: string;
  readonly tenantId: string;
  /** An app registration with every secret permission, authenticating with `clientSecret`. */
  readonly clientId: string;
  readonly clientSecret: string;
  /** An app registration that authenticates but has no secret permission (403 on every call). */
  readonly deniedClient: { readonly clientId: string; readonly clientSecret: string };
  /**
   * An app registration trusting the world's service-account tokens (workload identity): any
   * subject of `issuer` with audience `audience`. Absent when the double runs without a cluster.
   */
  readonly workloadIdentity?: { readonly clientId: string; readonly issuer: string; readonly audience: string };
  /** IMDS-like managed identity: `GET <endpoint>?api-version=2018-02-01&resource=...` with `Metadata: true`. */
  readonly managedIdentity: { readonly clientId: string; readonly endpoint: string };
  /** Test control API: `<controlUrl>/stats`, `/faults`, `/tokens/revoke`. */
  readonly controlUrl: string;
}

export type AzureKeyVaultEndpoint =
  | ({ readonly kind: 'lowkey'; readonly reason: string } & LowkeyVaultEndpoint)
  | ({ readonly kind: 'double'; readonly reason: string } & KeyVaultDoubleEndpoint);

export const worldEnvVar = 'SECRET_BINDER_WORLD';

/** The world this test process runs against (set up by jest's global setup). */
export function currentWorld(): WorldState {
  const path = process.env[worldEnvVar];
  if (path === undefined || path === '') {
    throw new Error(`${worldEnvVar} is not set: run the tests through jest (global setup) or \`npm run harness -- up\``);
  }
  return readWorldState(path);
}

/** `<dir>/world.json`: where a world's state is kept. */
export function worldStatePath(dir: string): string {
  return join(dir, 'world.json');
}

/** Reads a world.json written by `writeWorldState`. */
export function readWorldState(path: string): WorldState {
  return JSON.parse(readFileSync(path, 'utf8')) as WorldState;
}

/** Writes `<state.dir>/world.json` atomically (readers never see half a file); returns its path. */
export function writeWorldState(state: WorldState): string {
  const path = worldStatePath(state.dir);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  renameSync(temporary, path);
  return path;
}
