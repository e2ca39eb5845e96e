import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import type { AnyBackend, SecretBinding } from '../../api/v1alpha1/index.ts';
import { createNoticeMetrics } from '../../backends/notices/notice.metrics.ts';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { ObjectStore } from '../../runtime/object-store.ts';
import { NoticeDispatcher, noticeScopeOf } from './notice-dispatcher.ts';

const backend = {
  apiVersion: 'secretbinder.dev/v1alpha1',
  kind: 'SecretBackend',
  metadata: { name: 'bao', namespace: 'app' },
  spec: { vault: { address: 'https://bao', mount: 'secret', auth: { token: { secretRef: { name: 't', key: 'token' } } } } },
} as unknown as AnyBackend;

function binding(name: string, keys: readonly string[]): SecretBinding {
  return {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name, namespace: 'app' },
    spec: {
      backendRef: { kind: 'SecretBackend', name: 'bao' },
      podSelector: {},
      containers: ['app'],
      files: keys.map((key, i) => ({ path: `f${String(i)}`, key })),
    },
  } as unknown as SecretBinding;
}

function world(windowMs = 1000) {
  const clock = new FakeClock();
  const bindings = new ObjectStore<SecretBinding>();
  bindings.upsert(binding('web', ['app/db', 'app/api']));
  bindings.upsert(binding('jobs', ['app/db']));
  const invalidated: string[] = [];
  const enqueued: string[] = [];
  const registry = new Registry();
  const dispatcher = new NoticeDispatcher({
    bindings,
    backendOf: () => backend,
    backendIdOf: () => 'SecretBackend/app/bao#1',
    invalidate: (id, key) => invalidated.push(`${id} ${key}`),
    enqueue: (key) => enqueued.push(key),
    clock,
    metrics: createNoticeMetrics(registry),
    windowMs,
  });
  return { clock, bindings, dispatcher, invalidated, enqueued, registry };
}

async function count(registry: Registry, result: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'secretbinder_change_notices_total');
  return (metric?.values ?? []).filter((v) => v.labels.result === result).reduce((s, v) => s + v.value, 0);
}

describe('NoticeDispatcher', () => {
  it('queues every binding that uses the noticed key, invalidating the key once per backend', () => {
    const w = world();
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/db' });
    expect(w.invalidated).toEqual(['SecretBackend/app/bao#1 app/db']);
    expect(w.enqueued.sort()).toEqual(['app/jobs', 'app/web']);
  });

  it('finds a key a binding reads from one of its named backends, and invalidates it on that backend (ADR 0240)', () => {
    const aws = {
      apiVersion: 'secretbinder.dev/v1alpha1',
      kind: 'SecretBackend',
      metadata: { name: 'aws', namespace: 'app' },
      spec: { awsSecretsManager: { region: 'eu-west-1', auth: { staticKeys: { secretRef: { name: 'k' } } } } },
    } as unknown as AnyBackend;
    const bindings = new ObjectStore<SecretBinding>();
    const mixed = binding('mixed', ['app/db']);
    bindings.upsert({
      ...mixed,
      spec: { ...mixed.spec, backends: [{ name: 'cloud', backendRef: { kind: 'SecretBackend', name: 'aws' } }], files: [...mixed.spec.files, { path: 'api', key: 'prod/api', backend: 'cloud' }] },
    } as unknown as SecretBinding);
    const invalidated: string[] = [];
    const enqueued: string[] = [];
    const dispatcher = new NoticeDispatcher({
      bindings,
      backendOf: (_binding, name) => (name === 'cloud' ? aws : name === undefined ? backend : undefined),
      backendIdOf: (b) => `${b.metadata.name ?? ''}#1`,
      invalidate: (id, key) => invalidated.push(`${id} ${key}`),
      enqueue: (key) => enqueued.push(key),
      clock: new FakeClock(),
      metrics: createNoticeMetrics(new Registry()),
      windowMs: 1000,
    });
    dispatcher.notice('awsSqs', { provider: 'awsSecretsManager', scope: 'eu-west-1', key: 'prod/api' });
    dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/db' });
    // The same key name on the other backend's provider is another document: nothing.
    dispatcher.notice('awsSqs', { provider: 'awsSecretsManager', scope: 'eu-west-1', key: 'app/db' });
    expect(invalidated).toEqual(['aws#1 prod/api', 'bao#1 app/db']);
    expect(enqueued).toEqual(['app/mixed', 'app/mixed']);
  });

  it('drops notices of keys, mounts or providers no binding uses', async () => {
    const w = world();
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/other' });
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'kv', key: 'app/db' });
    w.dispatcher.notice('awsSqs', { provider: 'awsSecretsManager', scope: 'secret', key: 'app/db' });
    expect(w.enqueued).toEqual([]);
    expect(await count(w.registry, 'unbound')).toBe(3);
  });

  it('turns a burst of notices of one key into one check now and one at the end of the window', async () => {
    const w = world(1000);
    for (let i = 0; i < 100; i++) {
      w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: '/app/api/' });
      await w.clock.advance(5);
    }
    expect(w.invalidated).toHaveLength(1);
    await w.clock.advance(1000);
    expect(w.invalidated).toHaveLength(2);
    expect(w.enqueued).toEqual(['app/web', 'app/web']);
    expect(await count(w.registry, 'scheduled')).toBe(1);
    expect(await count(w.registry, 'coalesced')).toBe(99);
    // Quiet for a window: the next notice is checked at once again.
    await w.clock.advance(1000);
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/api' });
    expect(w.invalidated).toHaveLength(3);
  });

  it('sees bindings created after the first notice once told the caches changed', () => {
    const w = world();
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/new' });
    expect(w.enqueued).toEqual([]);
    w.bindings.upsert(binding('late', ['app/new']));
    w.dispatcher.invalidateIndex();
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/new' });
    expect(w.enqueued).toEqual(['app/late']);
  });

  it('cancels trailing checks when closed', async () => {
    const w = world();
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/db' });
    w.dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/db' });
    w.dispatcher.close();
    await w.clock.advance(5000);
    expect(w.invalidated).toHaveLength(1);
  });
});

describe('noticeScopeOf', () => {
  it('names the store as notices do', () => {
    expect(noticeScopeOf(backend)).toEqual({ provider: 'vault', scope: 'secret' });
    expect(noticeScopeOf({ spec: { awsSecretsManager: { region: 'eu-west-1' } } } as unknown as AnyBackend)).toEqual({ provider: 'awsSecretsManager', scope: 'eu-west-1' });
    expect(noticeScopeOf({ spec: { azureKeyVault: { vaultUrl: 'https://My.vault.azure.net/' } } } as unknown as AnyBackend)).toEqual({
      provider: 'azureKeyVault',
      scope: 'my.vault.azure.net',
    });
  });
});
