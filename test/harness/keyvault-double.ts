import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSelfManagedTls } from '../../src/tls/self-managed-tls.ts';
import { freePorts, lowkeyVaultFiles, pinnedSetting } from './backend-tools.ts';
import type { ClientConfig, KeyVaultDoubleConfig } from './keyvault-double/config.ts';
import { federatedTokenAudience } from './keyvault-double/config.ts';
import { startLowkeyVault } from './lowkey-vault.ts';
import { startProcess, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import type { AzureKeyVaultEndpoint, KeyVaultDoubleEndpoint } from './world-state.ts';

/**
 * Starts the Key Vault double (test/harness/keyvault-double/server.ts, ADR 0070) as its own Node
 * process on 127.0.0.1, with a serving certificate from its own CA, and picks the world's Azure
 * Key Vault server: Lowkey Vault when its jar is installed, else the double.
 */

/** Fixed test identities of the double's tenant: test strings, not credentials. */
export const keyVaultDoubleIdentities = {
  tenantId: '5ec2e7b1-d000-4000-8000-000000000001',
  client: { clientId: '5ec2e7b1-d000-4000-8000-0000000000c1', clientSecret: 'secret-binder-test-client-secret' },
  deniedClient: { clientId: '5ec2e7b1-d000-4000-8000-0000000000d1', clientSecret: 'secret-binder-test-denied-secret' },
  workloadClientId: '5ec2e7b1-d000-4000-8000-0000000000f1',
  managedIdentityClientId: '5ec2e7b1-d000-4000-8000-0000000000a1',
} as const;

export interface KeyVaultDoubleOptions {
  readonly dir: string;
  readonly logDir: string;
  readonly maxLifetimeSeconds?: number;
  /** Trust the cluster's service-account tokens for the workload identity client. */
  readonly federation?: { readonly issuer: string; readonly publicKeyPath: string };
  /** Lifetime of issued access tokens (default one hour, as Entra). */
  readonly tokenLifetimeSeconds?: number;
}

/** A CA of its own and a serving certificate for localhost, 127.0.0.1 and ::1, as files. */
async function createServingCertificate(dir: string): Promise<{ caPem: string; caPath: string; certPath: string; keyPath: string }> {
  const tls = await generateSelfManagedTls({ caName: 'secret-binder keyvault-double CA', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], caValidityDays: 30 });
  const caPath = join(dir, 'ca.crt');
  const certPath = join(dir, 'server.crt');
  const keyPath = join(dir, 'server.key');
  writeFileSync(caPath, tls.caPem);
  writeFileSync(certPath, tls.certPem);
  writeFileSync(keyPath, tls.keyPem, { mode: 0o600 });
  return { caPem: tls.caPem, caPath, certPath, keyPath };
}

export async function startKeyVaultDouble(opts: KeyVaultDoubleOptions): Promise<{ record: ProcessRecord; endpoint: KeyVaultDoubleEndpoint }> {
  const dir = join(opts.dir, 'keyvault-double');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tls = await createServingCertificate(dir);
  const port = await freePorts(1);
  const ids = keyVaultDoubleIdentities;
  const clients: ClientConfig[] = [
    { clientId: ids.client.clientId, clientSecret: ids.client.clientSecret, permissions: ['get', 'list', 'set', 'delete', 'recover', 'purge'] },
    { clientId: ids.deniedClient.clientId, clientSecret: ids.deniedClient.clientSecret, permissions: [] },
    { clientId: ids.managedIdentityClientId, managedIdentity: true, permissions: ['get', 'list'] },
  ];
  if (opts.federation !== undefined) {
    clients.push({
      clientId: ids.workloadClientId,
      federated: { issuer: opts.federation.issuer, publicKeyPath: opts.federation.publicKeyPath, audience: federatedTokenAudience },
      permissions: ['get', 'list'],
    });
  }
  const config: KeyVaultDoubleConfig = {
    port,
    certPath: tls.certPath,
    keyPath: tls.keyPath,
    tenantId: ids.tenantId,
    clients,
    tokenLifetimeSeconds: opts.tokenLifetimeSeconds ?? 3600,
    statePath: join(dir, 'state.json'),
  };
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  const origin = `https://127.0.0.1:${port}`;
  const record = startProcess({
    name: 'keyvault-double',
    command: process.execPath,
    args: ['--disable-warning=ExperimentalWarning', new URL('./keyvault-double/server.ts', import.meta.url).pathname, '--config', configPath],
    cwd: dir,
    logDir: opts.logDir,
    ...(opts.maxLifetimeSeconds === undefined ? {} : { maxLifetimeSeconds: opts.maxLifetimeSeconds }),
    readiness: { kind: 'http', url: `${origin}/_double/health`, okStatuses: [200], tls: { caPath: tls.caPath } },
  });
  await waitReady(record, 30_000);
  return {
    record,
    endpoint: {
      vaultUrl: origin,
      caPem: tls.caPem,
      authorityHost: origin,
      tenantId: ids.tenantId,
      clientId: ids.client.clientId,
      clientSecret: ids.client.clientSecret,
      deniedClient: ids.deniedClient,
      ...(opts.federation === undefined
        ? {}
        : { workloadIdentity: { clientId: ids.workloadClientId, issuer: opts.federation.issuer, audience: federatedTokenAudience } }),
      managedIdentity: { clientId: ids.managedIdentityClientId, endpoint: `${origin}/metadata/identity/oauth2/token` },
      controlUrl: `${origin}/_double`,
    },
  };
}

/**
 * Which Azure Key Vault server the world runs: Lowkey Vault (the intended one, ADR 0022) when its
 * jar is installed, else the double — with the reason, for the world's log and world.json.
 */
export function chooseAzureKeyVaultServer(): { kind: 'lowkey' | 'double'; reason: string } {
  try {
    lowkeyVaultFiles();
    return { kind: 'lowkey', reason: `Lowkey Vault ${pinnedSetting('LOWKEY_VERSION')} is installed` };
  } catch (error) {
    const why = ((error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '').replace(/:$/, '');
    return { kind: 'double', reason: `${why} (its server jar is not on Maven Central, only on GitHub Packages)` };
  }
}

/** Starts the world's Azure Key Vault server as chosen by {@link chooseAzureKeyVaultServer}. */
export async function startAzureKeyVault(
  opts: KeyVaultDoubleOptions,
): Promise<{ record: ProcessRecord; endpoint: AzureKeyVaultEndpoint }> {
  const choice = chooseAzureKeyVaultServer();
  if (choice.kind === 'lowkey') {
    const lowkey = await startLowkeyVault(opts);
    return { record: lowkey.record, endpoint: { kind: 'lowkey', reason: choice.reason, ...lowkey.endpoint } };
  }
  const double = await startKeyVaultDouble(opts);
  return { record: double.record, endpoint: { kind: 'double', reason: choice.reason, ...double.endpoint } };
}
