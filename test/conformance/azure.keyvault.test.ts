import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import https from 'node:https';
import type { SecretClient } from '@azure/keyvault-secrets';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  AuthFailedError,
  NotFoundError,
  ThrottledError,
  UnavailableError,
  type BackendContext,
  type FetchOutcome,
  type SecretBackend,
  type SecretRef,
} from '../../src/backends/backend.port.ts';
import { azureKeyVaultProvider } from '../../src/backends/azure/index.ts';
import { requestServiceAccountToken } from '../../src/kube/service-account-tokens.ts';
import { currentWorld, type AzureKeyVaultEndpoint, type KeyVaultDoubleEndpoint } from '../harness/world-state.ts';
import { providerAuth, writerClient } from './azure.server.ts';
import { runTag, testContext, type TestContext } from './conformance.context.ts';
import { azureKeyVaultKind, backendServer } from './conformance.world.ts';

/**
 * What the conformance suite does not cover for Azure: disabled secrets and pinned versions
 * against whichever server the world runs; and, against the harness's Key Vault double (ADR
 * 0070), whose Entra-like authority checks credentials for real: workload identity with a
 * TokenRequest token of the world's apiserver (signature, issuer and audience verified), an
 * identity without secret permissions, throttling and outages (the double's faults, scoped to
 * this file's secret names), and managed identity. Lowkey Vault authenticates nobody and injects
 * no faults, so those cases exist only with the double.
 */

const kind = await azureKeyVaultKind();
const latest = (key: string): SecretRef => ({ key, version: { kind: 'latest' } });
const opts = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(15_000) });

function valueOf(outcome: FetchOutcome | undefined): string {
  if (outcome?.ok !== true) throw new Error(`expected a value, got ${outcome?.ok === false ? outcome.error.message : 'nothing'}`);
  return outcome.secret.value.revealText();
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error('expected a failure'),
    (error: unknown) => error,
  );
}

describe('Azure Key Vault provider', () => {
  const tag = runTag();
  const name = (label: string): string => `azure-provider-${tag}-${label}`;
  let server: AzureKeyVaultEndpoint;
  let stop: () => Promise<void> = () => Promise.resolve();
  let writer: SecretClient;
  let auth: ReturnType<typeof providerAuth> | undefined;
  const backends: SecretBackend[] = [];
  const create = (spec: unknown, context: TestContext): SecretBackend => {
    const backend = azureKeyVaultProvider.create(
      azureKeyVaultProvider.parseConfig({
        vaultUrl: server.vaultUrl,
        caBundle: Buffer.from(server.caPem).toString('base64'),
        ...(server.kind === 'lowkey' ? { serviceVersion: '7.5' } : {}),
        auth: spec,
      }),
      context,
    );
    backends.push(backend);
    return backend;
  };
  /** The double, for the cases only it can serve. */
  const double = (): KeyVaultDoubleEndpoint => {
    if (server.kind !== 'double') throw new Error('this case needs the Key Vault double');
    return server;
  };
  const clientSecretAuth = (clientId: string): unknown => ({
    clientSecret: { tenantId: double().tenantId, clientId, secretRef: { name: 'azure', key: 'client-secret' }, authorityHost: double().authorityHost },
  });

  beforeAll(async () => {
    const started = await backendServer('azureKeyVault');
    server = started.endpoint;
    stop = () => started.stop();
    auth = providerAuth(server);
    writer = writerClient(server);
    for (const label of ['app', 'throttled', 'outage', 'disabled', 'pinned']) await writer.setSecret(name(label), `${label}-value`);
  });

  afterAll(async () => {
    for (const backend of backends) await backend.close();
    auth?.restore();
    await stop();
  });

  it('treats a disabled secret as not found', async () => {
    const current = await writer.getSecret(name('disabled'));
    await writer.updateSecretProperties(name('disabled'), current.properties.version ?? '', { enabled: false });
    const how = providerAuth(server);
    const backend = create(how.auth, how.context());
    const [outcome] = await backend.fetch([latest(name('disabled'))], opts());
    expect(outcome?.ok === false && outcome.error instanceof NotFoundError).toBe(true);
  });

  it('reads a pinned version after newer ones, and reports a pin as its version', async () => {
    const first = await writer.getSecret(name('pinned'));
    await writer.setSecret(name('pinned'), 'newer-value');
    const version = first.properties.version ?? '';
    const how = providerAuth(server);
    const backend = create(how.auth, how.context());
    const pin: SecretRef = { key: name('pinned'), version: { kind: 'id', id: version } };
    const outcomes = await backend.fetch([pin, latest(name('pinned'))], opts());
    expect(outcomes.map(valueOf)).toEqual(['pinned-value', 'newer-value']);
    expect(await backend.versions([pin], opts())).toEqual([{ ok: true, ref: pin, version }]);
  });

  if (kind !== 'double') return;

  it('logs in with workload identity: a TokenRequest token of the service account, exchanged once', async () => {
    const workload = double().workloadIdentity;
    if (workload === undefined) throw new Error('the double runs without the cluster’s service-account issuer');
    const world = currentWorld();
    const config = new KubeConfig();
    config.loadFromFile(world.kube.kubeconfigPath);
    const core = config.makeApiClient(CoreV1Api);
    const namespace = `sb-azure-provider-${tag}`;
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    try {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'kv-reader' } } });
      const requests: Parameters<BackendContext['requestServiceAccountToken']>[0][] = [];
      const context = testContext({
        namespace,
        requestServiceAccountToken: (request) => {
          requests.push(request);
          return requestServiceAccountToken(core, request);
        },
      });
      const auth = (audience?: string): unknown => ({
        workloadIdentity: {
          tenantId: double().tenantId,
          clientId: workload.clientId,
          serviceAccountRef: { name: 'kv-reader' },
          authorityHost: double().authorityHost,
          ...(audience === undefined ? {} : { audience }),
        },
      });
      const backend = create(auth(), context);
      for (let i = 0; i < 3; i++) expect(valueOf((await backend.fetch([latest(name('app'))], opts()))[0])).toBe('app-value');
      expect(requests).toEqual([{ namespace, serviceAccountName: 'kv-reader', audiences: ['api://AzureADTokenExchange'], expirationSeconds: 600, recipient: double().authorityHost }]);
      expect(context.logins()).toBe(1);

      // A token for another audience is refused by the authority.
      const wrong = create(auth('sts.amazonaws.com'), testContext({ namespace, requestServiceAccountToken: (r) => requestServiceAccountToken(core, r) }));
      const error = await errorOf(wrong.fetch([latest(name('app'))], opts()));
      expect(error).toBeInstanceOf(AuthFailedError);
      expect((error as Error).message).not.toMatch(/eyJ/);
    } finally {
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    }
  });

  it('answers a per-reference AuthFailed for an identity without secret permissions', async () => {
    const backend = create(clientSecretAuth(double().deniedClient.clientId), testContext({ secrets: { azure: { 'client-secret': double().deniedClient.clientSecret } } }));
    const [outcome] = await backend.fetch([latest(name('app'))], opts());
    expect(outcome?.ok).toBe(false);
    if (outcome?.ok === false) expect(outcome.error).toBeInstanceOf(AuthFailedError);
    const [version] = await backend.versions([latest(name('app'))], opts());
    expect(version?.ok === false && version.error instanceof AuthFailedError).toBe(true);
  });

  it('reports throttling with the Retry-After hint, and an outage as Unavailable', async () => {
    const context = testContext({ secrets: { azure: { 'client-secret': double().clientSecret } } });
    const backend = create(clientSecretAuth(double().clientId), context);
    await backend.checkConnectivity(opts());
    await fault(double(), { status: 429, count: 1, retryAfterSeconds: 3, names: [name('throttled')] });
    const throttled = await errorOf(backend.fetch([latest(name('throttled'))], opts()));
    expect(throttled).toBeInstanceOf(ThrottledError);
    expect((throttled as ThrottledError).retryAfterMs).toBe(3000);
    expect(valueOf((await backend.fetch([latest(name('throttled'))], opts()))[0])).toBe('throttled-value');
    await fault(double(), { status: 503, count: 1, names: [name('outage')] });
    expect(await errorOf(backend.fetch([latest(name('outage'))], opts()))).toBeInstanceOf(UnavailableError);
  });

  it('logs in with managed identity (IMDS-style endpoint), trusting the caBundle', async () => {
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = new URL(double().managedIdentity.endpoint).origin;
    try {
      const context = testContext({});
      const backend = create({ managedIdentity: { clientId: double().managedIdentity.clientId } }, context);
      expect(valueOf((await backend.fetch([latest(name('app'))], opts()))[0])).toBe('app-value');
      expect(context.logins()).toBe(1);
    } finally {
      delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
    }
  });
});

/** Injects a fault through the double's control API (HTTPS, its own CA). */
async function fault(double: KeyVaultDoubleEndpoint, spec: Record<string, unknown>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const request = https.request(`${double.controlUrl}/faults`, { method: 'POST', ca: double.caPem, headers: { 'content-type': 'application/json' } }, (response) => {
      response.resume();
      response.on('end', () => {
        if ((response.statusCode ?? 0) < 300) resolve();
        else reject(new Error(`double faults: HTTP ${response.statusCode ?? 0}`));
      });
    });
    request.on('error', reject);
    request.end(JSON.stringify(spec));
  });
}
