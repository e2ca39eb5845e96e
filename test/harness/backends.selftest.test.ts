import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { isLoopback, listenersOfProcessGroup } from './backend-tools.ts';
import { chooseAzureKeyVaultServer } from './keyvault-double.ts';
import { startLowkeyVault } from './lowkey-vault.ts';
import { startMoto } from './moto.ts';
import { readKvSecret, startOpenBao, writeKvSecret } from './openbao.ts';
import { startPostgres } from './postgres.ts';
import pg from 'pg';
import { stopProcess } from './process.ts';
import type { ProcessRecord } from './process.ts';
import { currentWorld, worldEnvVar } from './world-state.ts';
import type { LowkeyVaultEndpoint, MotoEndpoint, OpenBaoEndpoint, PostgresEndpoint, WorldState } from './world-state.ts';

const { Client } = pg;

/**
 * Proves that each backend server of the test world is the real thing, through the same client
 * libraries the adapters use. Under jest's global setup (SECRET_BINDER_WORLD set) it uses the
 * running world; otherwise each block starts its own server and stops it afterwards.
 */

interface Acquired<T> {
  readonly endpoint: T;
  readonly record: ProcessRecord;
  readonly release: () => Promise<void>;
}

async function acquire<T>(
  name: string,
  fromWorld: (world: WorldState) => T | undefined,
  start: (opts: { dir: string; logDir: string }) => Promise<{ record: ProcessRecord; endpoint: T }>,
): Promise<Acquired<T>> {
  if (process.env[worldEnvVar] !== undefined && process.env[worldEnvVar] !== '') {
    const world = currentWorld();
    const endpoint = fromWorld(world);
    const record = world.processes.find((p) => p.name === name);
    if (endpoint === undefined || record === undefined) throw new Error(`the running world has no ${name} (SECRET_BINDER_WORLD_BACKENDS limits what it starts)`);
    return { endpoint, record, release: () => Promise.resolve() };
  }
  const dir = mkdtempSync(join(tmpdir(), `sb-selftest-${name}-`));
  try {
    const { record, endpoint } = await start({ dir, logDir: dir });
    return {
      endpoint,
      record,
      release: async () => {
        await stopProcess(record);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function expectLoopbackOnly(record: ProcessRecord): void {
  const listeners = listenersOfProcessGroup(record.pid);
  expect(listeners.length).toBeGreaterThan(0);
  expect(listeners.filter((l) => !isLoopback(l.address))).toEqual([]);
}

describe('OpenBao (dev server)', () => {
  let bao: Acquired<OpenBaoEndpoint> | undefined;
  beforeAll(async () => {
    bao = await acquire('openbao', (w) => w.openbao, startOpenBao);
  });
  afterAll(async () => {
    await bao?.release();
  });
  const endpoint = (): OpenBaoEndpoint => {
    if (bao === undefined) throw new Error('openbao did not start');
    return bao.endpoint;
  };

  it('keeps two versions of a KV v2 secret under secret/', async () => {
    const path = `selftest/${randomUUID()}`;
    expect(await writeKvSecret(endpoint(), path, { password: 'first-value' })).toBe(1);
    expect(await writeKvSecret(endpoint(), path, { password: 'second-value' })).toBe(2);

    expect(await readKvSecret(endpoint(), path)).toEqual({ data: { password: 'second-value' }, version: 2 });
    expect(await readKvSecret(endpoint(), path, { version: 1 })).toEqual({ data: { password: 'first-value' }, version: 1 });
  });

  it('records each read in the file audit log, with values HMACed', async () => {
    const { auditLogPath } = endpoint();
    const path = `selftest/audit-${randomUUID()}`;
    const plain = `audit-probe-${randomUUID()}`;
    await writeKvSecret(endpoint(), path, { token: plain });
    await readKvSecret(endpoint(), path);
    await readKvSecret(endpoint(), path);

    const entries = readFileSync(auditLogPath, 'utf8')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { type?: string; request?: { operation?: string; path?: string } });
    const reads = entries.filter(
      (e) => e.type === 'response' && e.request?.operation === 'read' && e.request.path === `secret/data/${path}`,
    );
    expect(reads).toHaveLength(2);
    expect(readFileSync(auditLogPath, 'utf8')).not.toContain(plain);
  });

  it('listens on loopback only', () => {
    if (bao === undefined) throw new Error('openbao did not start');
    expectLoopbackOnly(bao.record);
  });
});

describe('moto (AWS Secrets Manager)', () => {
  let moto: Acquired<MotoEndpoint> | undefined;
  let client: SecretsManagerClient | undefined;
  beforeAll(async () => {
    moto = await acquire('moto', (w) => w.moto, startMoto);
    client = new SecretsManagerClient({
      endpoint: moto.endpoint.endpoint,
      region: moto.endpoint.region,
      credentials: { accessKeyId: moto.endpoint.accessKeyId, secretAccessKey: moto.endpoint.secretAccessKey },
    });
  });
  afterAll(async () => {
    client?.destroy();
    await moto?.release();
  });

  it('serves AWSCURRENT and AWSPREVIOUS of a secret with two versions', async () => {
    if (client === undefined) throw new Error('moto did not start');
    const name = `selftest/${randomUUID()}`;
    const created = await client.send(new CreateSecretCommand({ Name: name, SecretString: 'value-one' }));
    const put = await client.send(new PutSecretValueCommand({ SecretId: name, SecretString: 'value-two' }));
    expect(put.VersionId).not.toBe(created.VersionId);

    const current = await client.send(new GetSecretValueCommand({ SecretId: name, VersionStage: 'AWSCURRENT' }));
    const previous = await client.send(new GetSecretValueCommand({ SecretId: name, VersionStage: 'AWSPREVIOUS' }));
    expect({ value: current.SecretString, version: current.VersionId }).toEqual({ value: 'value-two', version: put.VersionId });
    expect({ value: previous.SecretString, version: previous.VersionId }).toEqual({
      value: 'value-one',
      version: created.VersionId,
    });
    await client.send(new DeleteSecretCommand({ SecretId: name, ForceDeleteWithoutRecovery: true }));
  });

  it('listens on loopback only', () => {
    if (moto === undefined) throw new Error('moto did not start');
    expectLoopbackOnly(moto.record);
  });
});

/**
 * Lowkey Vault runs only where its jar is installed (it is not on Maven Central, ADR 0070); the
 * world's Azure Key Vault server is then the Key Vault double, proven by its own self-test.
 */
function lowkeyVaultInUse(): { readonly inUse: boolean; readonly reason: string } {
  if (process.env[worldEnvVar] !== undefined && process.env[worldEnvVar] !== '') {
    const azure = currentWorld().azureKeyVault;
    return { inUse: azure?.kind === 'lowkey', reason: azure?.reason ?? 'the running world has no Azure Key Vault server' };
  }
  const choice = chooseAzureKeyVaultServer();
  return { inUse: choice.kind === 'lowkey', reason: choice.reason };
}
const lowkeyVault = lowkeyVaultInUse();

if (lowkeyVault.inUse) {
  lowkeyVaultSuite();
} else {
  describe('Lowkey Vault (Azure Key Vault)', () => {
    it('is not installed: the Key Vault double serves Azure Key Vault instead (keyvault-double.selftest.test.ts)', () => {
      console.log(`Lowkey Vault not tested, the Key Vault double serves Azure Key Vault instead: ${lowkeyVault.reason}`);
      if (process.env[worldEnvVar] !== undefined && process.env[worldEnvVar] !== '') {
        expect(currentWorld().azureKeyVault?.kind).toBe('double');
      } else {
        expect(chooseAzureKeyVaultServer().kind).toBe('double');
      }
    });
  });
}

function lowkeyVaultSuite(): void {
  describe('Lowkey Vault (Azure Key Vault)', () => {
    let lowkey: Acquired<LowkeyVaultEndpoint> | undefined;
    beforeAll(async () => {
      lowkey = await acquire('lowkey-vault', (w) => w.lowkeyVault, startLowkeyVault);
    }, 120_000);
    afterAll(async () => {
      await lowkey?.release();
    });

    // Lowkey Vault checks that a bearer token is present, not what it says.
    const staticToken: TokenCredential = {
      getToken: (): Promise<AccessToken> =>
        Promise.resolve({ token: 'secret-binder-selftest', expiresOnTimestamp: Date.now() + 3_600_000 }),
    };
    const secretClient = (endpoint: LowkeyVaultEndpoint, ca: string | undefined): SecretClient =>
      new SecretClient(endpoint.vaultUrl, staticToken, {
        disableChallengeResourceVerification: true,
        ...(ca === undefined ? {} : { tlsOptions: { ca } }),
        retryOptions: { maxRetries: 0 },
      });

    it('sets and gets a secret over verified TLS', async () => {
      if (lowkey === undefined) throw new Error('lowkey-vault did not start');
      const client = secretClient(lowkey.endpoint, lowkey.endpoint.caPem);
      const name = `selftest-${randomUUID()}`;
      const first = await client.setSecret(name, 'azure-one');
      const second = await client.setSecret(name, 'azure-two');
      expect((await client.getSecret(name)).value).toBe('azure-two');
      expect((await client.getSecret(name, { version: first.properties.version ?? '' })).value).toBe('azure-one');
      expect(second.properties.version).not.toBe(first.properties.version);
    });

    it('is refused by a client that does not trust its certificate', async () => {
      if (lowkey === undefined) throw new Error('lowkey-vault did not start');
      const client = secretClient(lowkey.endpoint, undefined);
      await expect(client.getSecret('anything')).rejects.toThrow(/certificate/i);
    });

    it('listens on loopback only', () => {
      if (lowkey === undefined) throw new Error('lowkey-vault did not start');
      expectLoopbackOnly(lowkey.record);
    });
  });
}

describe('PostgreSQL (Debian packages, run as nobody)', () => {
  let pg: Acquired<PostgresEndpoint> | undefined;
  beforeAll(async () => {
    pg = await acquire('postgres', (w) => w.postgres, startPostgres);
  });
  afterAll(async () => {
    await pg?.release();
  });

  it('listens on the loopback only, as an unprivileged user, and refuses a login without the password', async () => {
    if (pg === undefined) throw new Error('postgres did not start');
    expectLoopbackOnly(pg.record);
    const endpoint = pg.endpoint;
    const admin = new Client({ host: endpoint.host, port: endpoint.port, user: endpoint.superuser, database: endpoint.database });
    await admin.connect();
    try {
      const running = await admin.query<{ usename: string }>(`SELECT usename FROM pg_stat_activity WHERE backend_type = 'checkpointer'`);
      expect(running.rows).toHaveLength(1);
      const user = `selftest_${randomUUID().slice(0, 8)}`;
      await admin.query(`CREATE ROLE "${user}" WITH LOGIN PASSWORD 'right-password'`);
      const login = async (password: string): Promise<string> => {
        const client = new Client({ host: endpoint.host, port: endpoint.port, user, password, database: endpoint.database });
        try {
          await client.connect();
          return (await client.query<{ current_user: string }>('SELECT current_user')).rows[0]?.current_user ?? '';
        } catch (error) {
          return `refused: ${error instanceof Error ? error.message : String(error)}`;
        } finally {
          await client.end().catch(() => undefined);
        }
      };
      expect(await login('right-password')).toBe(user);
      expect(await login('wrong-password')).toMatch(/^refused: password authentication failed/);
      await admin.query(`DROP ROLE "${user}"`);
    } finally {
      await admin.end();
    }
    // The server's processes (all of the group but the `timeout` wrapper that leads it) run as nobody.
    const uids = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== pg?.record.pid)
      .flatMap((entry) => {
        try {
          const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
          if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pg?.record.pid) return [];
          return [/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]];
        } catch {
          return [];
        }
      });
    expect(uids.length).toBeGreaterThan(0);
    expect(new Set(uids)).toEqual(new Set(['65534']));
  });
});
