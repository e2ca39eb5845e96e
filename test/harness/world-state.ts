import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessRecord } from './process.ts';

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
  readonly lowkeyVault?: LowkeyVaultEndpoint;
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
