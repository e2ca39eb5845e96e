import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientAssertionCredential, ClientSecretCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { CoreV1Api } from '@kubernetes/client-node';
import { isLoopback, listenersOfProcessGroup } from './backend-tools.ts';
import { startKeyVaultDouble } from './keyvault-double.ts';
import type { FaultSpec, Stats } from './keyvault-double/double-control.ts';
import { startProcess, stopProcess, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import { adminKubeConfig } from './world.ts';
import { currentWorld } from './world-state.ts';
import type { KeyVaultDoubleEndpoint, WorldState } from './world-state.ts';

/**
 * The Key Vault double (ADR 0070) answers the real Azure SDKs — @azure/identity for tokens,
 * @azure/keyvault-secrets for the vault — over verified TLS, with Key Vault's and Entra's wire
 * formats and errors. Uses the world's double; when the world runs Lowkey Vault instead, starts a
 * double of its own for this file.
 */

const scope = 'https://vault.azure.net/.default';

interface Acquired {
  readonly endpoint: KeyVaultDoubleEndpoint;
  readonly record: ProcessRecord;
  readonly release: () => Promise<void>;
}

async function ownDouble(federation?: { issuer: string; publicKeyPath: string }): Promise<Acquired> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-selftest-keyvault-double-'));
  try {
    const { record, endpoint } = await startKeyVaultDouble({ dir, logDir: dir, ...(federation === undefined ? {} : { federation }) });
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

async function worldDouble(world: WorldState): Promise<Acquired> {
  const azure = world.azureKeyVault;
  const record = world.processes.find((p) => p.name === 'keyvault-double');
  if (azure?.kind === 'double' && record !== undefined) return { endpoint: azure, record, release: () => Promise.resolve() };
  if (azure?.kind !== 'lowkey') throw new Error('the running world has no Azure Key Vault server (SECRET_BINDER_WORLD_BACKENDS limits what it starts)');
  console.log(`the world runs Lowkey Vault (${azure.reason}); this self-test starts a Key Vault double of its own`);
  const publicKeyPath = join(world.dir, 'pki', 'sa.pub');
  return ownDouble(existsSync(publicKeyPath) ? { issuer: world.kube.serviceAccountIssuer, publicKeyPath } : undefined);
}

function secretCredential(endpoint: KeyVaultDoubleEndpoint, client: { clientId: string; clientSecret: string }, ca: string | undefined): ClientSecretCredential {
  return new ClientSecretCredential(endpoint.tenantId, client.clientId, client.clientSecret, {
    authorityHost: endpoint.authorityHost,
    disableInstanceDiscovery: true,
    ...(ca === undefined ? {} : { tlsOptions: { ca } }),
  });
}

function secretClient(endpoint: KeyVaultDoubleEndpoint, credential: TokenCredential, ca: string | undefined): SecretClient {
  return new SecretClient(endpoint.vaultUrl, credential, {
    // The challenge names https://vault.azure.net; the double is on 127.0.0.1.
    disableChallengeResourceVerification: true,
    ...(ca === undefined ? {} : { tlsOptions: { ca } }),
    retryOptions: { maxRetries: 0 },
  });
}

/** What a rejected SDK call carried: HTTP status, service error code, message, Retry-After. */
async function failure(promise: Promise<unknown>): Promise<{ statusCode?: number; code?: string; message: string; retryAfter?: string }> {
  try {
    await promise;
  } catch (error) {
    const e = error as { statusCode?: number; code?: string; message?: string; response?: { headers?: { get(name: string): string | undefined } } };
    const retryAfter = e.response?.headers?.get('retry-after');
    return {
      ...(e.statusCode === undefined ? {} : { statusCode: e.statusCode }),
      ...(e.code === undefined ? {} : { code: e.code }),
      message: e.message ?? String(error),
      ...(retryAfter === undefined ? {} : { retryAfter }),
    };
  }
  throw new Error('expected the call to fail, it succeeded');
}

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** A request straight to the double (TLS verified against its CA). */
async function raw(endpoint: KeyVaultDoubleEndpoint, method: string, path: string, headers: Record<string, string> = {}, body?: unknown): Promise<RawAnswer> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, endpoint.vaultUrl),
      { method, ca: endpoint.caPem, headers: { ...headers, ...(text === undefined ? {} : { 'content-type': 'application/json' }) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const content = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: content === '' ? undefined : (JSON.parse(content) as unknown) });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

async function stats(endpoint: KeyVaultDoubleEndpoint): Promise<Stats> {
  return (await raw(endpoint, 'GET', '/_double/stats')).body as Stats;
}

async function addFault(endpoint: KeyVaultDoubleEndpoint, fault: FaultSpec): Promise<void> {
  const answer = await raw(endpoint, 'POST', '/_double/faults', {}, fault);
  expect(answer.status).toBe(201);
}

const uniqueName = (): string => `selftest-${randomUUID()}`;

describe('Key Vault double (the world’s Azure Key Vault server)', () => {
  let double: Acquired | undefined;
  beforeAll(async () => {
    double = await worldDouble(currentWorld());
  });
  afterAll(async () => {
    await double?.release();
  });
  const endpoint = (): KeyVaultDoubleEndpoint => {
    if (double === undefined) throw new Error('the Key Vault double did not start');
    return double.endpoint;
  };
  const writer = (): SecretClient => secretClient(endpoint(), secretCredential(endpoint(), endpoint(), endpoint().caPem), endpoint().caPem);

  it('sets and gets versions of a secret through @azure/identity and @azure/keyvault-secrets over verified TLS', async () => {
    const client = writer();
    const name = uniqueName();
    const first = await client.setSecret(name, 'azure-one', { contentType: 'text/plain', tags: { team: 'selftest' } });
    const second = await client.setSecret(name, 'azure-two');
    const firstVersion = first.properties.version ?? '';
    expect(firstVersion).toMatch(/^[0-9a-f]{32}$/);
    expect(second.properties.version).toMatch(/^[0-9a-f]{32}$/);
    expect(second.properties.version).not.toBe(firstVersion);
    expect(first.properties.id).toBe(`${endpoint().vaultUrl}/secrets/${name}/${firstVersion}`);

    const current = await client.getSecret(name);
    const old = await client.getSecret(name, { version: firstVersion });
    expect({ value: current.value, version: current.properties.version }).toEqual({ value: 'azure-two', version: second.properties.version });
    expect({ value: old.value, contentType: old.properties.contentType, tags: old.properties.tags, enabled: old.properties.enabled }).toEqual({
      value: 'azure-one',
      contentType: 'text/plain',
      tags: { team: 'selftest' },
      enabled: true,
    });
    expect(old.properties.recoveryLevel).toBe('Recoverable+Purgeable');
    expect((await stats(endpoint())).secretReads[name]).toBe(2);
  });

  it('lists the versions of a secret page by page, without values', async () => {
    const client = writer();
    const name = uniqueName();
    const created: string[] = [];
    for (const value of ['v1', 'v2', 'v3']) created.push((await client.setSecret(name, value)).properties.version ?? '');

    const pages: string[][] = [];
    for await (const page of client.listPropertiesOfSecretVersions(name).byPage({ maxPageSize: 2 })) {
      pages.push(page.map((p) => p.version ?? ''));
      for (const item of page) expect(item).not.toHaveProperty('value');
    }
    expect(pages.map((p) => p.length)).toEqual([2, 1]);
    expect(pages.flat().sort()).toEqual([...created].sort());

    const names: string[] = [];
    for await (const properties of client.listPropertiesOfSecrets()) names.push(properties.name);
    expect(names).toContain(name);
  });

  it('answers a missing secret with 404 SecretNotFound', async () => {
    expect(await failure(writer().getSecret(uniqueName()))).toMatchObject({ statusCode: 404, code: 'SecretNotFound' });
  });

  it('challenges a request without a token, and refuses a token it did not issue, as Key Vault does', async () => {
    const e = endpoint();
    const anonymous = await raw(e, 'GET', '/secrets/anything?api-version=7.4');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe(`Bearer authorization="${e.vaultUrl}/${e.tenantId}", resource="https://vault.azure.net"`);
    expect(anonymous.body).toMatchObject({ error: { code: 'Unauthorized' } });

    const forged = await raw(e, 'GET', '/secrets/anything?api-version=7.4', { authorization: 'Bearer not-a-token-of-this-tenant' });
    expect(forged.status).toBe(401);
    expect(forged.body).toMatchObject({ error: { code: 'Unauthorized' } });
  });

  it('accepts api-versions 7.0 to 7.6 and refuses unknown ones with 400 BadParameter', async () => {
    const e = endpoint();
    const name = uniqueName();
    await writer().setSecret(name, 'versioned-api');
    const token = await secretCredential(e, e, e.caPem).getToken(scope);
    const get = (apiVersion: string): Promise<RawAnswer> =>
      raw(e, 'GET', `/secrets/${name}?api-version=${apiVersion}`, { authorization: `Bearer ${token.token}` });
    const accepted = await Promise.all(['7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6'].map(async (v) => (await get(v)).status));
    expect(accepted).toEqual([200, 200, 200, 200, 200, 200, 200]);
    const refused = await get('6.9');
    expect({ status: refused.status, body: refused.body }).toMatchObject({ status: 400, body: { error: { code: 'BadParameter' } } });
  });

  it('refuses a wrong client secret the way Entra does (invalid_client, AADSTS7000215)', async () => {
    const e = endpoint();
    const wrong = secretCredential(e, { clientId: e.clientId, clientSecret: 'not-the-secret' }, e.caPem);
    const refused = await failure(wrong.getToken(scope));
    expect(refused.message).toMatch(/invalid_client/);
    expect(refused.message).toMatch(/AADSTS7000215/);
    expect((await failure(secretClient(e, wrong, e.caPem).getSecret(uniqueName()))).message).toMatch(/AADSTS7000215/);
  });

  it('forbids a client that has no secret permission (403 Forbidden)', async () => {
    const e = endpoint();
    const denied = secretClient(e, secretCredential(e, e.deniedClient, e.caPem), e.caPem);
    expect(await failure(denied.getSecret(uniqueName()))).toMatchObject({ statusCode: 403, code: 'Forbidden' });
  });

  it('is refused by clients that do not trust its CA', async () => {
    const e = endpoint();
    // The vault client without the CA: the TLS handshake of its first request fails.
    const untrustingVault = secretClient(e, secretCredential(e, e, e.caPem), undefined);
    expect((await failure(untrustingVault.getSecret(uniqueName()))).message).toMatch(/certificate/i);
    // The credential without the CA: MSAL cannot fetch the tenant's metadata.
    const untrustingCredential = secretCredential(e, e, undefined);
    expect((await failure(untrustingCredential.getToken(scope))).message).toMatch(/endpoints_resolution_error/);
  });

  it('answers injected faults (429 with Retry-After, 503) for the named secret only, then serves again', async () => {
    const e = endpoint();
    const client = writer();
    const name = uniqueName();
    const bystander = uniqueName();
    await client.setSecret(name, 'faulty');
    await client.setSecret(bystander, 'unaffected');

    await addFault(e, { status: 429, count: 1, retryAfterSeconds: 7, names: [name] });
    expect((await client.getSecret(bystander)).value).toBe('unaffected');
    expect(await failure(client.getSecret(name))).toMatchObject({ statusCode: 429, code: 'Throttled', retryAfter: '7' });
    expect((await client.getSecret(name)).value).toBe('faulty');

    await addFault(e, { status: 503, durationMs: 60_000, names: [name], operations: ['getSecret'] });
    expect(await failure(client.getSecret(name))).toMatchObject({ statusCode: 503, code: 'ServiceUnavailable' });
    expect(await failure(client.getSecret(name))).toMatchObject({ statusCode: 503 });
    // Other operations on the same secret are not affected.
    expect((await client.setSecret(name, 'still-writable')).value).toBe('still-writable');
  });

  it('issues tokens for workload identity against a service-account token with the exchange audience', async () => {
    const e = endpoint();
    const world = currentWorld();
    const workload = e.workloadIdentity;
    if (workload === undefined) throw new Error('this double was started without the cluster’s service-account issuer');
    expect(workload.issuer).toBe(world.kube.serviceAccountIssuer);

    const name = uniqueName();
    await writer().setSecret(name, 'for-the-workload');
    const core = adminKubeConfig(world.kube).makeApiClient(CoreV1Api);
    const namespace = 'default';
    const serviceAccount = `kv-selftest-${randomUUID().slice(0, 8)}`;
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
    try {
      const mint = async (audience: string): Promise<string> => {
        const answer = await core.createNamespacedServiceAccountToken({
          name: serviceAccount,
          namespace,
          body: { spec: { audiences: [audience], expirationSeconds: 600 } },
        });
        return answer.status?.token ?? '';
      };
      const options = { authorityHost: e.authorityHost, disableInstanceDiscovery: true, tlsOptions: { ca: e.caPem } };
      const federated = new ClientAssertionCredential(e.tenantId, workload.clientId, () => mint(workload.audience), options);
      expect((await secretClient(e, federated, e.caPem).getSecret(name)).value).toBe('for-the-workload');

      // A token for the apiserver's own audience is no federated credential.
      const wrongAudience = new ClientAssertionCredential(e.tenantId, workload.clientId, () => mint(world.kube.serviceAccountIssuer), options);
      expect((await failure(wrongAudience.getToken(scope))).message).toMatch(/AADSTS700212/);
    } finally {
      await core.deleteNamespacedServiceAccount({ name: serviceAccount, namespace });
    }
  });

  it('serves managed-identity tokens on its IMDS-like endpoint (Metadata: true required)', async () => {
    const e = endpoint();
    const name = uniqueName();
    await writer().setSecret(name, 'for-the-managed-identity');
    const path = `${new URL(e.managedIdentity.endpoint).pathname}?api-version=2018-02-01&resource=${encodeURIComponent('https://vault.azure.net')}`;
    expect((await raw(e, 'GET', path)).status).toBe(400);
    const answer = await raw(e, 'GET', path, { metadata: 'true' });
    expect(answer.status).toBe(200);
    const token = answer.body as { access_token: string; client_id: string; token_type: string };
    expect({ client: token.client_id, type: token.token_type }).toEqual({ client: e.managedIdentity.clientId, type: 'Bearer' });
    const read = await raw(e, 'GET', `/secrets/${name}?api-version=7.6`, { authorization: `Bearer ${token.access_token}` });
    expect({ status: read.status, value: (read.body as { value?: string }).value }).toEqual({ status: 200, value: 'for-the-managed-identity' });
  });

  it('listens on loopback only', () => {
    if (double === undefined) throw new Error('the Key Vault double did not start');
    const listeners = listenersOfProcessGroup(double.record.pid);
    expect(listeners.length).toBeGreaterThan(0);
    expect(listeners.filter((l) => !isLoopback(l.address))).toEqual([]);
  });
});

describe('Key Vault double of its own: token revocation and restart', () => {
  let dir = '';
  let started: { endpoint: KeyVaultDoubleEndpoint; record: ProcessRecord } | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-selftest-keyvault-double-'));
    started = await startKeyVaultDouble({ dir, logDir: dir });
  });
  afterAll(async () => {
    if (started !== undefined) await stopProcess(started.record);
    rmSync(dir, { recursive: true, force: true });
  });
  const own = (): { endpoint: KeyVaultDoubleEndpoint; record: ProcessRecord } => {
    if (started === undefined) throw new Error('the Key Vault double did not start');
    return started;
  };

  it('makes clients log in again once their tokens are revoked (continuous access evaluation challenge)', async () => {
    const e = own().endpoint;
    const client = secretClient(e, secretCredential(e, e, e.caPem), e.caPem);
    const name = uniqueName();
    await client.setSecret(name, 'before-revocation');
    expect((await stats(e)).tokensIssued[e.clientId]).toBe(1);

    expect((await raw(e, 'POST', '/_double/tokens/revoke')).status).toBe(200);
    expect((await client.getSecret(name)).value).toBe('before-revocation');
    expect((await stats(e)).tokensIssued[e.clientId]).toBe(2);
  });

  it('keeps secrets and issued tokens across a restart', async () => {
    const { endpoint: e, record } = own();
    const client = secretClient(e, secretCredential(e, e, e.caPem), e.caPem);
    const name = uniqueName();
    await client.setSecret(name, 'durable');
    expect((await stats(e)).tokensIssued[e.clientId]).toBeGreaterThan(0);

    await stopProcess(record);
    if (record.spec === undefined) throw new Error('no recorded spec');
    const restarted = startProcess(record.spec);
    started = { endpoint: e, record: restarted };
    await waitReady(restarted, 30_000);

    expect((await client.getSecret(name)).value).toBe('durable');
    // Statistics start afresh: no login since the restart, the client's cached token was accepted.
    expect((await stats(e)).tokensIssued[e.clientId]).toBeUndefined();
  });
});
