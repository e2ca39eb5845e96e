import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopProcess, type ProcessRecord } from '../harness/process.ts';
import {
  currentWorld,
  worldEnvVar,
  type AzureKeyVaultEndpoint,
  type MotoEndpoint,
  type OpenBaoEndpoint,
} from '../harness/world-state.ts';

/**
 * The backend servers the conformance suite talks to: those of the test world (jest's global
 * setup, or `npm run harness -- up`, names it in SECRET_BINDER_WORLD), or — when the suite runs
 * without a world — a server started here for this file and stopped by `stop()`.
 */

interface Endpoints {
  readonly openbao: OpenBaoEndpoint;
  readonly moto: MotoEndpoint;
  /** Lowkey Vault where installed, else the harness's Key Vault protocol double (ADR 0070). */
  readonly azureKeyVault: AzureKeyVaultEndpoint;
}

export async function backendServer<K extends keyof Endpoints>(
  name: K,
): Promise<{ readonly endpoint: Endpoints[K]; stop(): Promise<void> }> {
  const named = process.env[worldEnvVar];
  if (named !== undefined && named !== '') {
    const endpoint = currentWorld()[name];
    if (endpoint === undefined) {
      throw new Error(`the test world has no ${name} (was it left out by SECRET_BINDER_WORLD_BACKENDS, or not installed?)`);
    }
    return { endpoint: endpoint as Endpoints[K], stop: () => Promise.resolve() };
  }
  const started = await startOwn(name);
  return { endpoint: started.endpoint, stop: () => stopProcess(started.record) };
}

/** Starts one more server of a kind, in its own temp dir (e.g. a moto with authentication on). */
export async function startOwn<K extends keyof Endpoints>(name: K): Promise<{ record: ProcessRecord; endpoint: Endpoints[K] }> {
  const dir = mkdtempSync(join(tmpdir(), `sb-conformance-${name}-`));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);
  if (name === 'openbao') {
    const { startOpenBao } = await import('../harness/openbao.ts');
    return (await startOpenBao({ dir, logDir })) as { record: ProcessRecord; endpoint: Endpoints[K] };
  }
  if (name === 'moto') {
    const { startMoto } = await import('../harness/moto.ts');
    return (await startMoto({ dir, logDir })) as { record: ProcessRecord; endpoint: Endpoints[K] };
  }
  const { startAzureKeyVault } = await import('../harness/keyvault-double.ts');
  return (await startAzureKeyVault({ dir, logDir })) as { record: ProcessRecord; endpoint: Endpoints[K] };
}

/**
 * Which Azure Key Vault server the suite will talk to, known before any test runs (capabilities
 * are declared at collection time): the world's, or the one {@link startOwn} would start.
 */
export async function azureKeyVaultKind(): Promise<AzureKeyVaultEndpoint['kind']> {
  const named = process.env[worldEnvVar];
  const fromWorld = named !== undefined && named !== '' ? currentWorld().azureKeyVault?.kind : undefined;
  if (fromWorld !== undefined) return fromWorld;
  const { chooseAzureKeyVaultServer } = await import('../harness/keyvault-double.ts');
  return chooseAzureKeyVaultServer().kind;
}
