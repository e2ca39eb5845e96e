import { describe, expect, it } from '@jest/globals';
import type { V1Namespace } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { AnyBackend, SecretBinding, SecretBindingSpec } from '../../api/v1alpha1/index.ts';
import { createBackendMetrics } from '../../backends/backends.metrics.ts';
import { FakeBackend } from '../../backends/fake/fake.backend.ts';
import { FakeSecretStore } from '../../backends/fake/fake.store.ts';
import { SecretResolver } from '../../backends/resolver/resolver.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { ObjectStore } from '../../runtime/object-store.ts';
import { BackendPool, type ProviderFactory } from '../backend/backend-pool.ts';
import { BindingContentResolver, type BindingContent } from './binding-content.ts';

/**
 * A binding's content from several backends (ADR 0240): one content HMAC over the whole file set,
 * a failing backend held at last-known-good while the others stay current, fallbacks. The
 * backends are in-memory stores behind our own port; the resolver and pool are the real ones.
 */

const ns = 'app';

function setup() {
  const clock = new FakeClock();
  const contentKey = SecretValue.fromString('content-key-for-tests-0123456789');
  const resolver = new SecretResolver({ clock, metrics: createBackendMetrics(new Registry()), contentKey, random: () => 0.5, retry: { maxAttempts: 1, baseMs: 1, capMs: 1 } });
  const stores = new Map<string, FakeSecretStore>();
  // One store per backend object, found by the seed its spec names.
  const providers: ProviderFactory = {
    parseBackendSpec: (spec) => ({ provider: 'fake', config: (spec['fake'] as { seed: string }).seed }),
    createBackend: (parsed) => {
      const store = stores.get(parsed.config as string);
      if (store === undefined) throw new Error('no store');
      return new FakeBackend(store);
    },
  };
  const pool = new BackendPool(resolver, providers, () => ({
    namespace: ns,
    requestServiceAccountToken: () => Promise.reject(new Error('unused')),
    readOperatorSecret: () => Promise.reject(new Error('unused')),
    onLogin: () => undefined,
  }));
  const clusterBackends = new ObjectStore<AnyBackend>();
  const namespacedBackends = new ObjectStore<AnyBackend>();
  const namespaces = new ObjectStore<V1Namespace>();
  namespaces.upsert({ metadata: { name: ns, labels: { team: 'a' } } });
  const addBackend = (kind: AnyBackend['kind'], name: string): FakeSecretStore => {
    const store = new FakeSecretStore({ clock });
    stores.set(`${kind}/${name}`, store);
    const spec = { fake: { seed: `${kind}/${name}`, keys: [] }, refreshInterval: '1m' };
    if (kind === 'ClusterSecretBackend') {
      clusterBackends.upsert({ apiVersion: 'secretbinder.dev/v1alpha1', kind, metadata: { name, uid: name }, spec: { ...spec, access: [{ namespaces: [ns], keyPrefixes: ['shared/'] }] } });
    } else {
      namespacedBackends.upsert({ apiVersion: 'secretbinder.dev/v1alpha1', kind, metadata: { name, namespace: ns, uid: name }, spec });
    }
    return store;
  };
  const content = new BindingContentResolver({ clusterBackends, namespacedBackends, namespaces, pool, resolver, contentKey, resolveTimeoutMs: 60_000 });
  const resolve = async (binding: SecretBinding): Promise<BindingContent> => {
    const promise = content.resolve(binding, new AbortController().signal);
    const state = { done: false };
    void promise.finally(() => (state.done = true));
    for (let i = 0; i < 100 && !state.done; i++) await clock.advance(50);
    return promise;
  };
  return { clock, addBackend, resolve, content };
}

function binding(spec: Partial<SecretBindingSpec>): SecretBinding {
  return {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name: 'mixed', namespace: ns, uid: 'u' },
    spec: { backendRef: { kind: 'SecretBackend', name: 'vault' }, podSelector: {}, containers: ['app'], files: [], ...spec },
  };
}

const threeBackends: Partial<SecretBindingSpec> = {
  backends: [
    { name: 'aws', backendRef: { kind: 'SecretBackend', name: 'aws' } },
    { name: 'azure', backendRef: { kind: 'ClusterSecretBackend', name: 'azure' } },
  ],
  files: [
    { path: 'db/password', key: 'db', property: 'password' },
    { path: 'api-key', key: 'api', backend: 'aws' },
    { path: 'tls.crt', key: 'shared/cert', backend: 'azure' },
    { path: 'app.env', format: 'dotenv', items: [{ name: 'DB', key: 'db', property: 'password' }, { name: 'API', key: 'api', backend: 'aws' }] },
  ],
};

function resolved(content: BindingContent): Extract<BindingContent, { kind: 'resolved' }> {
  if (content.kind !== 'resolved') throw new Error(`not resolved: ${content.reason}: ${content.message}`);
  return content;
}

const text = (content: BindingContent): Record<string, string> =>
  Object.fromEntries(resolved(content).files.map((f) => [f.path, f.content.revealText()]));

describe('BindingContentResolver: one file set from several backends', () => {
  it('reads each file from its backend and hashes the whole set once', async () => {
    const { addBackend, resolve, clock } = setup();
    addBackend('SecretBackend', 'vault').setJson('db', { password: 'pw1' });
    const aws = addBackend('SecretBackend', 'aws');
    aws.set('api', 'key1');
    addBackend('ClusterSecretBackend', 'azure').set('shared/cert', 'cert1');

    const first = resolved(await resolve(binding(threeBackends)));
    expect(text(first)).toEqual({ 'db/password': 'pw1', 'api-key': 'key1', 'tls.crt': 'cert1', 'app.env': 'DB="pw1"\nAPI="key1"\n' });
    expect(first.backends?.map((b) => [b.name, b.kind, b.backendName, b.state])).toEqual([
      ['default', 'SecretBackend', 'vault', 'Current'],
      ['aws', 'SecretBackend', 'aws', 'Current'],
      ['azure', 'ClusterSecretBackend', 'azure', 'Current'],
    ]);
    expect(first.versions.map((v) => v.backend ?? 'default')).toEqual(['default', 'aws', 'azure']);

    // A change in one backend: one new hash for the whole set, the other files unchanged.
    aws.set('api', 'key2');
    await clock.advance(120_000);
    const second = resolved(await resolve(binding(threeBackends)));
    expect(second.hmac).not.toBe(first.hmac);
    expect(text(second)).toEqual({ 'db/password': 'pw1', 'api-key': 'key2', 'tls.crt': 'cert1', 'app.env': 'DB="pw1"\nAPI="key2"\n' });
  });

  it('holds a failing backend at last-known-good while the others stay current, naming it', async () => {
    const { addBackend, resolve, clock } = setup();
    const vault = addBackend('SecretBackend', 'vault');
    vault.setJson('db', { password: 'pw1' });
    const aws = addBackend('SecretBackend', 'aws');
    aws.set('api', 'key1');
    addBackend('ClusterSecretBackend', 'azure').set('shared/cert', 'cert1');
    const first = resolved(await resolve(binding(threeBackends)));

    aws.failWith({ kind: 'Unavailable' });
    vault.setJson('db', { password: 'pw2' });
    await clock.advance(120_000);
    const during = resolved(await resolve(binding(threeBackends)));
    expect(text(during)).toEqual({ 'db/password': 'pw2', 'api-key': 'key1', 'tls.crt': 'cert1', 'app.env': 'DB="pw2"\nAPI="key1"\n' });
    expect(during.hmac).not.toBe(first.hmac);
    expect(during.stale?.reason).toBe('BackendUnavailable');
    expect(during.stale?.message).toContain('backend aws (SecretBackend aws)');
    expect(during.backends?.map((b) => [b.name, b.state, b.reason])).toEqual([
      ['default', 'Current', 'Reconciled'],
      ['aws', 'LastKnownGood', 'BackendUnavailable'],
      ['azure', 'Current', 'Reconciled'],
    ]);

    // Past maxStaleness the failing backend blocks the binding, and Ready says which one.
    await clock.advance(120_000);
    const expired = await resolve(binding({ ...threeBackends, onBackendUnavailable: { policy: 'ServeLastKnownGood', maxStaleness: '1m' } }));
    expect(expired.kind).toBe('failed');
    if (expired.kind !== 'failed') return;
    expect(expired.reason).toBe('BackendUnavailable');
    expect(expired.message).toMatch(/^backend aws \(SecretBackend aws\): key "api"/);
    expect(expired.backends?.find((b) => b.name === 'aws')?.state).toBe('Failed');
    expect(expired.backends?.find((b) => b.name === 'default')?.state).toBe('Current');
  });

  it('names the blocking backend when one is missing or refuses the namespace', async () => {
    const { addBackend, resolve } = setup();
    addBackend('SecretBackend', 'vault').setJson('db', { password: 'pw1' });
    addBackend('ClusterSecretBackend', 'azure').set('other/cert', 'c');
    const missing = await resolve(binding(threeBackends));
    expect(missing.kind === 'failed' ? [missing.reason, missing.message] : missing.kind).toEqual(['BackendNotFound', 'backend aws (SecretBackend aws): SecretBackend aws not found']);

    const denied = await resolve(binding({ ...threeBackends, files: [{ path: 'c', key: 'other/cert', backend: 'azure' }, { path: 'p', key: 'db' }] }));
    expect(denied.kind === 'failed' ? denied.reason : denied.kind).toBe('AccessDenied');
    expect(denied.kind === 'failed' ? denied.message : '').toContain('backend azure (ClusterSecretBackend azure)');
    expect(denied.kind === 'failed' ? denied.backends?.map((b) => b.state) : []).toEqual(['Current', 'Failed']);
  });

  it('refuses a file naming a backend the binding does not list', async () => {
    const { addBackend, resolve } = setup();
    addBackend('SecretBackend', 'vault').setJson('db', { password: 'pw1' });
    const content = await resolve(binding({ files: [{ path: 'p', key: 'db', backend: 'nowhere' }] }));
    expect(content.kind === 'failed' ? content.reason : content.kind).toBe('InvalidSpec');
  });

  it('uses the shortest refresh interval of the backends when the binding sets none', () => {
    const { addBackend, content } = setup();
    addBackend('SecretBackend', 'vault');
    addBackend('SecretBackend', 'aws');
    expect(content.refreshIntervalMs(binding(threeBackends))).toBe(60_000);
    expect(content.refreshIntervalMs(binding({ ...threeBackends, refreshInterval: '30s' }))).toBe(30_000);
  });
});

describe('BindingContentResolver: from and fallback', () => {
  const migrating: Partial<SecretBindingSpec> = {
    backends: [{ name: 'old', backendRef: { kind: 'SecretBackend', name: 'old' } }],
    files: [{ path: 'db/password', from: { key: 'db', property: 'password' }, fallback: { backend: 'old', key: 'legacy-db' } }],
  };

  it('serves from when it can, fallback when from is missing or failing, and says which', async () => {
    const { addBackend, resolve, clock } = setup();
    const vault = addBackend('SecretBackend', 'vault');
    const old = addBackend('SecretBackend', 'old');
    old.set('legacy-db', 'old-pw');

    const before = resolved(await resolve(binding(migrating)));
    expect(text(before)).toEqual({ 'db/password': 'old-pw' });
    expect(before.sources).toEqual([{ path: 'db/password', served: 'fallback' }]);
    expect(before.backends?.map((b) => [b.name, b.state, b.reason])).toEqual([
      ['default', 'Failed', 'KeyNotFound'],
      ['old', 'Current', 'Reconciled'],
    ]);

    vault.setJson('db', { password: 'new-pw' });
    await clock.advance(120_000);
    const migrated = resolved(await resolve(binding(migrating)));
    expect(text(migrated)).toEqual({ 'db/password': 'new-pw' });
    expect(migrated.sources).toEqual([{ path: 'db/password', served: 'from' }]);
    expect(migrated.hmac).not.toBe(before.hmac);

    // Both gone: the binding fails on from's error, naming its backend.
    vault.delete('db');
    old.delete('legacy-db');
    await clock.advance(120_000);
    const none = await resolve(binding(migrating));
    expect(none.kind === 'failed' ? [none.reason, none.message.startsWith('backend default (SecretBackend vault)')] : none.kind).toEqual(['KeyNotFound', true]);
  });
});
