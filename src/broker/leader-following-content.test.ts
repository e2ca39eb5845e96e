import { describe, expect, it } from '@jest/globals';
import type { V1Namespace } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { AnyBackend, SecretBinding } from '../api/v1alpha1/index.ts';
import { createBackendMetrics } from '../backends/backends.metrics.ts';
import { FakeBackend } from '../backends/fake/fake.backend.ts';
import { FakeSecretStore } from '../backends/fake/fake.store.ts';
import { SecretResolver } from '../backends/resolver/resolver.ts';
import { BackendPool } from '../controllers/backend/backend-pool.ts';
import { BindingContentResolver, type BindingContent, type BindingContentDeps } from '../controllers/binding/binding-content.ts';
import { SecretValue } from '../observability/secret-value.ts';
import { FakeClock } from '../runtime/fake-clock.ts';
import { ObjectStore } from '../runtime/object-store.ts';
import { ChangeHub } from './change-hub.ts';
import { LeaderFollowingContentResolver } from './leader-following-content.ts';

/**
 * Two replicas over one store (ADR 0202): the leader's reconciler polls, the follower's broker
 * follows the hash the leader publishes and reads only what it does not hold. The store is the
 * in-memory one behind our own backend port; resolvers and pools are the real ones, one per replica.
 */

const ns = 'app';
const binding: SecretBinding = {
  apiVersion: 'secretbinder.dev/v1alpha1',
  kind: 'SecretBinding',
  metadata: { name: 'db', namespace: ns, uid: 'u' },
  spec: { backendRef: { kind: 'SecretBackend', name: 'vault' }, podSelector: {}, containers: ['app'], files: [{ path: 'password', key: 'db', property: 'password' }] },
  // What the leader last concluded: current and healthy.
  status: {
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Reconciled', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'Degraded', status: 'False', reason: 'Reconciled', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ],
  },
};
const degraded: SecretBinding = {
  ...binding,
  status: {
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Reconciled', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'Degraded', status: 'True', reason: 'BackendUnavailable', message: 'serving last-known-good', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ],
  },
};

function replica(clock: FakeClock, store: FakeSecretStore): BindingContentDeps {
  const contentKey = SecretValue.fromString('content-key-for-tests-0123456789');
  const resolver = new SecretResolver({ clock, metrics: createBackendMetrics(new Registry()), contentKey, random: () => 0.5, retry: { maxAttempts: 1, baseMs: 1, capMs: 1 } });
  const pool = new BackendPool(resolver, { parseBackendSpec: () => ({ provider: 'fake', config: undefined }), createBackend: () => new FakeBackend(store) }, () => ({
    namespace: ns,
    requestServiceAccountToken: () => Promise.reject(new Error('unused')),
    readOperatorSecret: () => Promise.reject(new Error('unused')),
    onLogin: () => undefined,
  }));
  const namespacedBackends = new ObjectStore<AnyBackend>();
  namespacedBackends.upsert({ apiVersion: 'secretbinder.dev/v1alpha1', kind: 'SecretBackend', metadata: { name: 'vault', namespace: ns, uid: 'v' }, spec: { fake: { keys: [] }, refreshInterval: '1m' } });
  const namespaces = new ObjectStore<V1Namespace>();
  namespaces.upsert({ metadata: { name: ns } });
  return { clusterBackends: new ObjectStore<AnyBackend>(), namespacedBackends, namespaces, pool, resolver, contentKey, resolveTimeoutMs: 60_000 };
}

async function settle(clock: FakeClock, promise: Promise<BindingContent>): Promise<BindingContent & { kind: 'resolved' }> {
  const state = { done: false };
  void promise.finally(() => (state.done = true));
  for (let i = 0; i < 100 && !state.done; i++) await clock.advance(50);
  const content = await promise;
  if (content.kind !== 'resolved') throw new Error(`not resolved: ${content.reason} ${content.message}`);
  return content;
}

function setup() {
  const clock = new FakeClock();
  const store = new FakeSecretStore({ clock });
  store.setJson('db', { password: 'one' });
  const leader = new BindingContentResolver(replica(clock, store));
  // The follower's hub learns the leader's hash from binding status (syncChangeHub).
  const hub = new ChangeHub();
  const follower = new LeaderFollowingContentResolver(replica(clock, store), hub);
  const signal = new AbortController().signal;
  const calls = (): number => store.stats.fetchCalls + store.stats.versionCalls;
  const leaderPolls = async (): Promise<string> => {
    const content = await settle(clock, leader.resolve(binding, signal));
    hub.set(ns, 'db', { kind: 'hash', hash: content.hmac });
    return content.hmac;
  };
  return { clock, store, hub, calls, leaderPolls, followerServes: (b: SecretBinding = binding) => settle(clock, follower.resolve(b, signal)) };
}

describe('the broker follows the leader instead of polling (ADR 0202)', () => {
  it('reads a key it does not hold once, then checks nothing while the leader’s hash matches', async () => {
    const { clock, calls, leaderPolls, followerServes } = setup();
    const hash = await leaderPolls();
    const afterLeader = calls();
    expect((await followerServes()).hmac).toBe(hash);
    expect(calls()).toBe(afterLeader + 1);
    for (let interval = 0; interval < 3; interval++) {
      await clock.advance(61_000);
      const before = calls();
      await leaderPolls();
      const byLeader = calls() - before;
      expect(byLeader).toBe(1);
      expect((await followerServes()).hmac).toBe(hash);
      expect(calls() - before).toBe(byLeader);
    }
  });

  it('serves the new content once the leader publishes a rotation', async () => {
    const { clock, store, calls, leaderPolls, followerServes } = setup();
    const first = await leaderPolls();
    await followerServes();
    store.setJson('db', { password: 'two' });
    await clock.advance(61_000);
    const second = await leaderPolls();
    expect(second).not.toBe(first);
    const before = calls();
    const served = await followerServes();
    expect(served.hmac).toBe(second);
    expect(served.files.map((f) => Buffer.from(f.content.reveal()).toString('utf8'))).toEqual(['two']);
    expect(calls()).toBeGreaterThan(before);
  });

  it('checks the backend while the leader reports Degraded: staleness rules need its answer, not the cache alone', async () => {
    const { clock, calls, leaderPolls, followerServes } = setup();
    await leaderPolls();
    await followerServes();
    await clock.advance(61_000);
    await leaderPolls();
    const before = calls();
    await followerServes(degraded);
    expect(calls()).toBe(before + 1);
    // Healthy again: the cache stands.
    const healthy = calls();
    await followerServes();
    expect(calls()).toBe(healthy);
  });

  it('polls as the reconciler does while no hash is known (no leader has concluded yet)', async () => {
    const { clock, calls, followerServes } = setup();
    await followerServes();
    await clock.advance(61_000);
    const before = calls();
    await followerServes();
    expect(calls()).toBe(before + 1);
  });
});
