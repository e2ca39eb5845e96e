import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  AuthFailedError,
  CredentialsNotFoundError,
  InvalidConfigError,
  NotFoundError,
  ThrottledError,
  unversioned,
  type FetchOutcome,
  type SecretBackend,
  type SecretRef,
} from '../../src/backends/backend.port.ts';
import { vaultProvider } from '../../src/backends/vault/index.ts';
import { requestServiceAccountToken } from '../../src/kube/service-account-tokens.ts';
import { baoBinary, freePorts } from '../harness/backend-tools.ts';
import { createKubernetesRole, openBaoRequest, writeKvSecret, writePolicy } from '../harness/openbao.ts';
import { startProcess, stopProcess, waitFor, waitReady, type ProcessRecord } from '../harness/process.ts';
import { currentWorld, type OpenBaoEndpoint } from '../harness/world-state.ts';
import { runTag, testContext, type TestContext } from './conformance.context.ts';
import { backendServer } from './conformance.world.ts';

/**
 * What the conformance suite does not cover for Vault: the kubernetes auth method against the
 * world's real apiserver (TokenRequest → login), AppRole, the token lifecycle (renewal, re-login
 * after revocation, no re-login on a policy denial), KV v1, the metadata fallback, and TLS
 * verified against a caBundle (an OpenBao of its own with `-dev-tls`).
 */

const latest = (key: string): SecretRef => ({ key, version: { kind: 'latest' } });
const opts = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(15_000) });

function value(outcome: FetchOutcome | undefined): unknown {
  if (outcome?.ok !== true) throw new Error(`expected a value, got ${outcome?.ok === false ? outcome.error.message : 'nothing'}`);
  return JSON.parse(outcome.secret.value.revealText());
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('expected a failure'),
    (error: unknown) => error,
  );
}

describe('Vault provider against OpenBao', () => {
  const tag = runTag();
  const prefix = `vault-provider/${tag}`;
  let bao: OpenBaoEndpoint;
  let stop: () => Promise<void> = () => Promise.resolve();
  const backends: SecretBackend[] = [];
  const track = (backend: SecretBackend): SecretBackend => {
    backends.push(backend);
    return backend;
  };

  beforeAll(async () => {
    const server = await backendServer('openbao');
    bao = server.endpoint;
    stop = () => server.stop();
    await writePolicy(bao, `read-${tag}`, `path "${bao.kvMount}/data/${prefix}/*" { capabilities = ["read"] }\npath "${bao.kvMount}/metadata/${prefix}/*" { capabilities = ["read"] }\n`);
    await writePolicy(bao, `data-only-${tag}`, `path "${bao.kvMount}/data/${prefix}/*" { capabilities = ["read"] }\n`);
    await writeKvSecret(bao, `${prefix}/app`, { password: 'app-pw' });
    await writeKvSecret(bao, `vault-provider-other/${tag}/denied`, { password: 'not-yours' });
  });

  afterAll(async () => {
    for (const backend of backends) await backend.close();
    await stop();
  });

  describe('AppRole', () => {
    const mount = `approle-${tag}`;
    let roleId: string;
    let secretId: string;

    const appRoleBackend = (role: string, context: TestContext): SecretBackend =>
      track(
        vaultProvider.create(
          vaultProvider.parseConfig({ address: bao.address, auth: { appRole: { roleId: role, mountPath: mount, secretRef: { name: 'approle', key: 'secret-id' } } } }),
          context,
        ),
      );

    const newRole = async (name: string, settings: Record<string, unknown>): Promise<{ roleId: string; secretId: string }> => {
      await openBaoRequest(bao, 'POST', `auth/${mount}/role/${name}`, settings);
      const role = (await openBaoRequest(bao, 'GET', `auth/${mount}/role/${name}/role-id`)) as { data: { role_id: string } };
      const secret = (await openBaoRequest(bao, 'POST', `auth/${mount}/role/${name}/secret-id`, {})) as { data: { secret_id: string } };
      return { roleId: role.data.role_id, secretId: secret.data.secret_id };
    };

    beforeAll(async () => {
      await openBaoRequest(bao, 'POST', `sys/auth/${mount}`, { type: 'approle' });
      ({ roleId, secretId } = await newRole('reader', { token_policies: [`read-${tag}`], token_ttl: '1h' }));
    });

    it('logs in once and reads; a path outside its policy is a per-reference denial, not a re-login', async () => {
      const context = testContext({ secrets: { approle: { 'secret-id': secretId } } });
      const backend = appRoleBackend(roleId, context);
      const outcomes = await backend.fetch([latest(`${prefix}/app`), latest(`vault-provider-other/${tag}/denied`)], opts());
      expect(value(outcomes[0])).toEqual({ password: 'app-pw' });
      const denied = outcomes[1];
      expect(denied?.ok).toBe(false);
      if (denied?.ok === false) expect(denied.error).toBeInstanceOf(AuthFailedError);
      await backend.fetch([latest(`vault-provider-other/${tag}/denied`)], opts());
      expect(context.logins()).toBe(1);
    });

    it('logs in again when its token is revoked behind its back', async () => {
      const context = testContext({ secrets: { approle: { 'secret-id': secretId } } });
      const backend = appRoleBackend(roleId, context);
      expect(value((await backend.fetch([latest(`${prefix}/app`)], opts()))[0])).toEqual({ password: 'app-pw' });
      expect(context.logins()).toBe(1);
      // Every token this auth mount issued, gone.
      await openBaoRequest(bao, 'PUT', `sys/leases/revoke-prefix/auth/${mount}/login`, {});
      expect(value((await backend.fetch([latest(`${prefix}/app`)], opts()))[0])).toEqual({ password: 'app-pw' });
      expect(context.logins()).toBe(2);
    });

    it('renews its token instead of logging in again', async () => {
      const short = await newRole('short', { token_policies: [`read-${tag}`], token_ttl: '3s', token_max_ttl: '1h' });
      const context = testContext({ secrets: { approle: { 'secret-id': short.secretId } } });
      const backend = appRoleBackend(short.roleId, context);
      await backend.fetch([latest(`${prefix}/app`)], opts());
      // Past two thirds of the TTL twice: 5 s in all, longer than the token's 3 s, so only
      // renewals kept it alive.
      for (let i = 0; i < 2; i++) {
        await sleep(2500);
        expect(value((await backend.fetch([latest(`${prefix}/app`)], opts()))[0])).toEqual({ password: 'app-pw' });
      }
      expect(context.logins()).toBe(1);
    }, 30_000);

    it('logs in again once the token reached its max TTL', async () => {
      const capped = await newRole('capped', { token_policies: [`read-${tag}`], token_ttl: '2s', token_max_ttl: '2s' });
      const context = testContext({ secrets: { approle: { 'secret-id': capped.secretId } } });
      const backend = appRoleBackend(capped.roleId, context);
      await backend.fetch([latest(`${prefix}/app`)], opts());
      await sleep(2500);
      expect(value((await backend.fetch([latest(`${prefix}/app`)], opts()))[0])).toEqual({ password: 'app-pw' });
      expect(context.logins()).toBe(2);
    }, 30_000);

    it('rejects a wrong secret id with AuthFailed that does not show it', async () => {
      const wrong = 'a0b1c2d3-0000-4000-8000-conformance0001';
      const context = testContext({ secrets: { approle: { 'secret-id': wrong } } });
      const error = await errorOf(appRoleBackend(roleId, context).fetch([latest(`${prefix}/app`)], opts()));
      expect(error).toBeInstanceOf(AuthFailedError);
      expect(String(error)).not.toContain(wrong);
      expect(context.logins()).toBe(0);
    });

    it('reports a missing credential Secret key as CredentialsNotFound (an AuthFailed)', async () => {
      const context = testContext({ secrets: {} });
      const error = await errorOf(appRoleBackend(roleId, context).checkConnectivity(opts()));
      expect(error).toBeInstanceOf(CredentialsNotFoundError);
      expect(error).toBeInstanceOf(AuthFailedError);
      expect((error as Error).message).toContain('approle');
    });

    it('falls back to a data read for the version when the policy does not grant metadata', async () => {
      const dataOnly = await newRole('data-only', { token_policies: [`data-only-${tag}`], token_ttl: '1h' });
      const context = testContext({ secrets: { approle: { 'secret-id': dataOnly.secretId } } });
      const backend = appRoleBackend(dataOnly.roleId, context);
      const [fetched] = await backend.fetch([latest(`${prefix}/app`)], opts());
      const [version] = await backend.versions([latest(`${prefix}/app`)], opts());
      expect(version?.ok).toBe(true);
      if (fetched?.ok === true && version?.ok === true) expect(version.version).toBe(fetched.secret.version);
      expect(context.logins()).toBe(1);
    });
  });

  it('reports OpenBao rate limiting as Throttled with its Retry-After', async () => {
    const path = `${prefix}/rate-limited`;
    await writeKvSecret(bao, path, { a: 'b' });
    // Retry-After (and the X-Ratelimit headers) are off by default; they change no other answer.
    await openBaoRequest(bao, 'POST', 'sys/quotas/config', { enable_rate_limit_response_headers: true });
    await openBaoRequest(bao, 'POST', `sys/quotas/rate-limit/conformance-${tag}`, {
      path: `${bao.kvMount}/data/${path}`,
      rate: 1,
      interval: '30s',
    });
    try {
      const backend = track(
        vaultProvider.create(
          vaultProvider.parseConfig({ address: bao.address, auth: { token: { secretRef: { name: 'v', key: 't' } } } }),
          testContext({ secrets: { v: { t: bao.rootToken } } }),
        ),
      );
      const outcomes: unknown[] = [];
      for (let i = 0; i < 3; i++) outcomes.push(await errorOf(backend.fetch([latest(path)], opts())));
      const throttled = outcomes.find((o) => o instanceof ThrottledError);
      expect(throttled).toBeInstanceOf(ThrottledError);
      expect((throttled as ThrottledError).retryAfterMs).toBeGreaterThan(0);
    } finally {
      await openBaoRequest(bao, 'DELETE', `sys/quotas/rate-limit/conformance-${tag}`);
      await openBaoRequest(bao, 'POST', 'sys/quotas/config', { enable_rate_limit_response_headers: false });
    }
  });

  describe('KV v1', () => {
    const mount = `kv1-${tag}`;
    let backend: SecretBackend;

    beforeAll(async () => {
      await openBaoRequest(bao, 'POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '1' } });
      await openBaoRequest(bao, 'POST', `${mount}/app/db`, { user: 'u1', password: 'p1' });
      const context = testContext({ secrets: { vault: { token: bao.rootToken } } });
      backend = track(
        vaultProvider.create(
          vaultProvider.parseConfig({ address: bao.address, mount, kvVersion: 1, auth: { token: { secretRef: { name: 'vault', key: 'token' } } } }),
          context,
        ),
      );
    });

    it('reads the data map as JSON with the unversioned version', async () => {
      const [outcome] = await backend.fetch([latest('app/db')], opts());
      expect(value(outcome)).toEqual({ user: 'u1', password: 'p1' });
      if (outcome?.ok === true) {
        expect(outcome.secret.version).toBe(unversioned);
        expect(outcome.secret.encoding).toBe('json');
      }
      const [missing] = await backend.fetch([latest('app/none')], opts());
      expect(missing?.ok === false && missing.error instanceof NotFoundError).toBe(true);
    });

    it('reports the unversioned version for any content, and refuses pins', async () => {
      const before = await backend.versions([latest('app/db')], opts());
      await openBaoRequest(bao, 'POST', `${mount}/app/db`, { user: 'u2', password: 'p2' });
      const after = await backend.versions([latest('app/db'), { key: 'app/db', version: { kind: 'id', id: '1' } }], opts());
      expect(before).toEqual([{ ok: true, ref: latest('app/db'), version: unversioned }]);
      expect(after[0]).toEqual({ ok: true, ref: latest('app/db'), version: unversioned });
      expect(after[1]?.ok === false && after[1].error instanceof InvalidConfigError).toBe(true);
      // The change is there for whoever compares content (the resolver, by keyed HMAC).
      expect(value((await backend.fetch([latest('app/db')], opts()))[0])).toEqual({ user: 'u2', password: 'p2' });
    });
  });

  describe('kubernetes auth with the world apiserver', () => {
    const namespace = `sb-vault-provider-${tag}`;
    const role = `reader-${tag}`;
    let core: CoreV1Api;

    const kubernetesBackend = (serviceAccount: string, audience: string, context: TestContext): SecretBackend =>
      track(
        vaultProvider.create(
          vaultProvider.parseConfig({
            address: bao.address,
            auth: { kubernetes: { role, serviceAccountRef: { name: serviceAccount }, audience } },
          }),
          context,
        ),
      );
    const kubeContext = (): TestContext =>
      testContext({ namespace, requestServiceAccountToken: (request) => requestServiceAccountToken(core, request) });

    beforeAll(async () => {
      const world = currentWorld();
      const config = new KubeConfig();
      config.loadFromFile(world.kube.kubeconfigPath);
      core = config.makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: namespace } } });
      for (const name of ['vault-reader', 'stranger']) await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
      await createKubernetesRole(bao, {
        role,
        boundServiceAccountNames: ['vault-reader'],
        boundNamespaces: [namespace],
        policies: [`read-${tag}`],
        audience: 'vault',
      });
    });

    afterAll(async () => {
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    });

    it('logs in with a TokenRequest token of the named service account, once for many calls', async () => {
      const context = kubeContext();
      const backend = kubernetesBackend('vault-reader', 'vault', context);
      for (let i = 0; i < 3; i++) expect(value((await backend.fetch([latest(`${prefix}/app`)], opts()))[0])).toEqual({ password: 'app-pw' });
      await backend.checkConnectivity(opts());
      expect(context.logins()).toBe(1);
    });

    it('is refused for a service account the role does not bind, or a token of the wrong audience', async () => {
      for (const [serviceAccount, audience] of [
        ['stranger', 'vault'],
        ['vault-reader', 'not-vault'],
      ] as const) {
        const error = await errorOf(kubernetesBackend(serviceAccount, audience, kubeContext()).fetch([latest(`${prefix}/app`)], opts()));
        expect(error).toBeInstanceOf(AuthFailedError);
        expect((error as Error).message).not.toMatch(/eyJ/);
      }
    });

    it('reports a service account that does not exist as AuthFailed', async () => {
      const error = await errorOf(kubernetesBackend('nobody', 'vault', kubeContext()).checkConnectivity(opts()));
      expect(error).toBeInstanceOf(AuthFailedError);
      expect((error as Error).message).toContain(`${namespace}/nobody`);
    });
  });

  describe('TLS', () => {
    let record: ProcessRecord | undefined;
    let address: string;
    let caPem: string;

    beforeAll(async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sb-openbao-tls-'));
      const logDir = join(dir, 'logs');
      mkdirSync(logDir);
      const port = await freePorts(2);
      address = `https://127.0.0.1:${port}`;
      record = startProcess({
        name: 'openbao-tls',
        command: baoBinary(),
        args: ['server', '-dev', '-dev-tls', `-dev-tls-cert-dir=${dir}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-root-token-id=tls-root', '-dev-no-store-token'],
        env: { HOME: dir },
        cwd: dir,
        logDir,
        readiness: { kind: 'tcp', host: '127.0.0.1', port },
        maxLifetimeSeconds: 600,
      });
      await waitReady(record, 30_000);
      const started = record;
      await waitFor(
        'openbao -dev-tls CA file',
        () => {
          try {
            caPem = readFileSync(join(dir, 'vault-ca.pem'), 'utf8');
            return Promise.resolve(caPem.includes('BEGIN CERTIFICATE'));
          } catch {
            return Promise.resolve(false);
          }
        },
        { timeoutMs: 10_000, record: started },
      );
    });

    afterAll(async () => {
      if (record !== undefined) await stopProcess(record);
    });

    const tlsBackend = (caBundle: string | undefined): SecretBackend =>
      track(
        vaultProvider.create(
          vaultProvider.parseConfig({ address, ...(caBundle === undefined ? {} : { caBundle }), auth: { token: { secretRef: { name: 'v', key: 't' } } } }),
          testContext({ secrets: { v: { t: 'tls-root' } } }),
        ),
      );

    it('verifies the server against the caBundle', async () => {
      await tlsBackend(Buffer.from(caPem).toString('base64')).checkConnectivity(opts());
    });

    it('refuses a server its trust does not cover, saying it is TLS', async () => {
      const error = await errorOf(tlsBackend(undefined).checkConnectivity(opts()));
      expect((error as Error).name).toBe('UnavailableError');
      expect((error as Error).message).toMatch(/TLS verification failed \(\w+\); check address and caBundle/);
    });
  });
});
