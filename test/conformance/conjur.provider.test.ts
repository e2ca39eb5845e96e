import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { JsonWebKey } from 'node:crypto';
import { CoreV1Api, KubeConfig, OpenidApi } from '@kubernetes/client-node';
import { AuthFailedError, InvalidConfigError, NotFoundError, type BackendContext, type FetchOutcome, type SecretBackend, type SecretRef } from '../../src/backends/backend.port.ts';
import { conjurProvider } from '../../src/backends/conjur/index.ts';
import { requestServiceAccountToken } from '../../src/kube/service-account-tokens.ts';
import { startConjurDouble, type ConjurDouble } from '../harness/conjur-double.ts';
import { currentWorld } from '../harness/world-state.ts';
import { runTag, testContext, type TestContext } from './conformance.context.ts';

/**
 * What the conformance suite does not cover for Conjur, against the Conjur API double (ADR 0243):
 * authn-jwt with a TokenRequest token of the world's API server (the double verifies signature,
 * issuer and audience against the cluster's JWKS, as a real authn-jwt with jwks-uri does), the
 * API key as fallback when the JWT authenticator refuses, batch reads (one call for many
 * variables, per-variable answers after a 404), a role without privileges, version stages.
 */

const account = 'provider';
const tag = runTag();
const namespace = `sb-conjur-${tag}`;
const serviceAccount = 'conjur-reader';
const jwtHost = 'host/k8s/conjur-reader';
const fallbackLogin = 'host/secret-binder/fallback';
const fallbackKey = `fallback-key-${tag}-0123456789`;
const deniedLogin = 'host/secret-binder/denied';
const deniedKey = `denied-key-${tag}-0123456789`;
const latest = (key: string): SecretRef => ({ key, version: { kind: 'latest' } });
const opts = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(15_000) });

function valueOf(outcome: FetchOutcome | undefined): string {
  if (outcome?.ok !== true) throw new Error(`expected a value, got ${outcome?.ok === false ? outcome.error.message : 'nothing'}`);
  return outcome.secret.value.revealText();
}

describe('Conjur provider (API double)', () => {
  let double: ConjurDouble;
  let core: CoreV1Api;
  const backends: SecretBackend[] = [];
  const minted: Parameters<BackendContext['requestServiceAccountToken']>[0][] = [];

  const create = (auth: unknown, context: TestContext): SecretBackend => {
    const backend = conjurProvider.create(
      conjurProvider.parseConfig({ applianceUrl: double.url, account, caBundle: Buffer.from(double.caPem).toString('base64'), auth }),
      context,
    );
    backends.push(backend);
    return backend;
  };
  const jwtContext = (): TestContext =>
    testContext({
      namespace,
      secrets: { fallback: { 'api-key': fallbackKey } },
      requestServiceAccountToken: (request) => {
        minted.push(request);
        return requestServiceAccountToken(core, request);
      },
    });

  beforeAll(async () => {
    const world = currentWorld();
    const kc = new KubeConfig();
    kc.loadFromFile(world.kube.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    // The client parses the keyset already, whatever its declared type says.
    const keyset: unknown = await kc.makeApiClient(OpenidApi).getServiceAccountIssuerOpenIDKeyset();
    const jwks = (typeof keyset === 'string' ? JSON.parse(keyset) : keyset) as { keys: JsonWebKey[] };
    double = await startConjurDouble({
      account,
      hosts: {
        [jwtHost]: { apiKey: `unused-${tag}`, privileged: true },
        [fallbackLogin]: { apiKey: fallbackKey, privileged: true },
        [deniedLogin]: { apiKey: deniedKey, privileged: false },
      },
      jwtAuthenticators: {
        'k8s-test': {
          issuer: world.kube.serviceAccountIssuer,
          audience: 'conjur',
          jwks,
          hostOfSubject: { [`system:serviceaccount:${namespace}:${serviceAccount}`]: jwtHost },
        },
      },
    });
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
    for (const i of [1, 2, 3]) double.write(`app/${tag}/k${String(i)}`, JSON.stringify({ value: `v${String(i)}` }));
  });

  afterAll(async () => {
    for (const b of backends) await b.close();
    await double.stop();
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('logs in with authn-jwt using a TokenRequest token of the service account, once for many calls', async () => {
    const context = jwtContext();
    const backend = create({ jwt: { serviceId: 'k8s-test', serviceAccountRef: { name: serviceAccount } } }, context);
    for (let i = 0; i < 3; i++) expect(valueOf((await backend.fetch([latest(`app/${tag}/k1`)], opts()))[0])).toBe('{"value":"v1"}');
    expect(context.logins()).toBe(1);
    expect(minted).toEqual([{ namespace, serviceAccountName: serviceAccount, audiences: ['conjur'], expirationSeconds: 600, recipient: double.url }]);
    // The host named in the URL must be the token's.
    const named = create({ jwt: { serviceId: 'k8s-test', hostId: jwtHost, serviceAccountRef: { name: serviceAccount } } }, jwtContext());
    expect(valueOf((await named.fetch([latest(`app/${tag}/k2`)], opts()))[0])).toBe('{"value":"v2"}');
  });

  it('refuses a token for another audience, and then falls back to the API key when there is one', async () => {
    const wrongAudience = { serviceId: 'k8s-test', serviceAccountRef: { name: serviceAccount }, audience: 'not-conjur' };
    const refused = create({ jwt: wrongAudience }, jwtContext());
    const error = await refused.checkConnectivity(opts()).then(() => new Error('accepted'), (e: unknown) => e);
    expect(error).toBeInstanceOf(AuthFailedError);
    expect(String(error)).not.toMatch(/eyJ/);

    const requests = double.requests().length;
    const withFallback = create({ jwt: wrongAudience, apiKey: { login: fallbackLogin, secretRef: { name: 'fallback', key: 'api-key' } } }, jwtContext());
    expect(valueOf((await withFallback.fetch([latest(`app/${tag}/k3`)], opts()))[0])).toBe('{"value":"v3"}');
    expect(double.requests().slice(requests).filter((r) => r.kind.startsWith('authn')).map((r) => [r.kind, r.status])).toEqual([
      ['authn-jwt', 401],
      ['authn', 200],
    ]);
  });

  it('reads many latest variables in one batch call; a variable without a value is NotFound alone', async () => {
    const backend = create({ apiKey: { login: fallbackLogin, secretRef: { name: 'fallback', key: 'api-key' } } }, testContext({ secrets: { fallback: { 'api-key': fallbackKey } } }));
    const keys = [1, 2, 3].map((i) => `app/${tag}/k${String(i)}`);
    const before = double.requests().length;
    expect((await backend.fetch(keys.map(latest), opts())).map(valueOf)).toEqual(['{"value":"v1"}', '{"value":"v2"}', '{"value":"v3"}']);
    const batch = double.requests().slice(before).filter((r) => r.kind === 'batch' || r.kind === 'secret');
    expect(batch.map((r) => [r.kind, r.ids.length])).toEqual([['batch', 3]]);

    // A variable declared without a value is NotFound at its version check and takes no place in the batch.
    double.declare(`app/${tag}/empty`);
    const mark = double.requests().length;
    const outcomes = await backend.fetch([latest(keys[0] ?? ''), latest(`app/${tag}/empty`)], opts());
    expect(valueOf(outcomes[0])).toBe('{"value":"v1"}');
    expect(outcomes[1]?.ok === false ? outcomes[1].error : undefined).toBeInstanceOf(NotFoundError);
    expect(double.requests().slice(mark).filter((r) => r.kind === 'batch' || r.kind === 'secret').map((r) => [r.kind, r.ids])).toEqual([['batch', [keys[0]]]]);
  });

  it('answers AuthFailed per reference for a role without privileges, InvalidConfig for a version stage', async () => {
    const backend = create({ apiKey: { login: deniedLogin, secretRef: { name: 'denied', key: 'api-key' } } }, testContext({ secrets: { denied: { 'api-key': deniedKey } } }));
    const [denied] = await backend.fetch([latest(`app/${tag}/k1`)], opts());
    expect(denied?.ok === false ? denied.error : undefined).toBeInstanceOf(AuthFailedError);
    const [stage] = await backend.versions([{ key: `app/${tag}/k1`, version: { kind: 'stage', stage: 'AWSPREVIOUS' } }], opts());
    expect(stage?.ok === false ? stage.error : undefined).toBeInstanceOf(InvalidConfigError);
  });
});
