import { beforeEach, describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import type { EventRecord, EventRecorder, EventSubject } from '../../kube/event-recorder.ts';
import { createLogger } from '../../observability/logger.ts';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { ObjectStore } from '../../runtime/object-store.ts';
import { workloadContentHash } from './rollout-hash.ts';
import { createRotationMetrics } from './rotation.metrics.ts';
import { RotationReconciler, rotationKeyOfConsumer, rotationKeysOfBinding, type RotationReconcilerDeps } from './rotation.reconciler.ts';
import type { EvictionResult, PodView, RestartableKind, WorkloadApi, WorkloadView } from './workloads.port.ts';

const ns = 'apps';
const hmac = (n: number): string => `hmac-sha256:${String(n).padStart(64, '0')}`;
const signal = new AbortController().signal;

type Workload = { -readonly [K in keyof WorkloadView]: WorkloadView[K] };

/** An in-memory {@link WorkloadApi}: records every write, counts template rollouts. */
class FakeWorkloads implements WorkloadApi {
  readonly workloads = new Map<string, Workload>();
  readonly pods = new Map<string, PodView>();
  readonly writes: string[] = [];
  readonly rollouts = new Map<string, number>();
  eviction: EvictionResult = { kind: 'evicted' };
  evictions = 0;

  add(kind: RestartableKind, name: string, labels: Record<string, string>, hashes: { template?: string; recorded?: string } = {}): void {
    this.workloads.set(`${kind}/${name}`, {
      kind, namespace: ns, name, uid: `uid-${name}`, templateLabels: labels, serviceAccountName: undefined,
      templateHash: hashes.template, recordedHash: hashes.recorded, rolledOut: true,
    });
  }

  get(kind: RestartableKind, name: string): Workload {
    const w = this.workloads.get(`${kind}/${name}`);
    if (w === undefined) throw new Error('no such workload');
    return w;
  }

  getWorkload(kind: RestartableKind, _namespace: string, name: string): Promise<WorkloadView | undefined> {
    const w = this.workloads.get(`${kind}/${name}`);
    return Promise.resolve(w === undefined ? undefined : { ...w });
  }

  stampWorkload(kind: RestartableKind, _namespace: string, name: string, hash: string, restart: boolean): Promise<void> {
    const w = this.get(kind, name);
    this.writes.push(`${kind}/${name}`);
    w.recordedHash = hash;
    if (restart) {
      w.templateHash = hash;
      w.rolledOut = false;
      this.rollouts.set(`${kind}/${name}`, (this.rollouts.get(`${kind}/${name}`) ?? 0) + 1);
    }
    return Promise.resolve();
  }

  getPod(_namespace: string, name: string): Promise<PodView | undefined> {
    return Promise.resolve(this.pods.get(name));
  }

  stampPod(namespace: string, name: string, hash: string): Promise<void> {
    this.writes.push(`Pod/${name}`);
    this.pods.set(name, { namespace, name, uid: `uid-${name}`, recordedHash: hash });
    return Promise.resolve();
  }

  evictPod(): Promise<EvictionResult> {
    this.evictions++;
    return Promise.resolve(this.eviction);
  }
}

class Events implements EventRecorder {
  readonly recorded: { subject: EventSubject; event: EventRecord }[] = [];
  record(subject: EventSubject, event: EventRecord): Promise<void> {
    this.recorded.push({ subject, event });
    return Promise.resolve();
  }
  reasons(kind: string, name: string): string[] {
    return this.recorded.filter((r) => r.subject.kind === kind && r.subject.name === name).map((r) => r.event.reason);
  }
}

function binding(name: string, hash: string | undefined, labels: Record<string, string>, rotation: SecretBinding['spec']['rotation'] = { strategy: 'RollingRestart', debounce: '2s' }): SecretBinding {
  return {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name, namespace: ns, uid: `uid-${name}`, generation: 1 },
    spec: { backendRef: { name: 'b' }, podSelector: { matchLabels: labels }, containers: ['app'], files: [{ path: 'f', key: 'k' }], rotation },
    ...(hash === undefined ? {} : { status: { contentHmac: hash, observedGeneration: 1 } }),
  };
}

function pod(name: string, labels: Record<string, string>, owner?: { kind: string; name: string }): V1Pod {
  return {
    metadata: {
      name, namespace: ns, uid: `uid-${name}`, labels,
      ...(owner === undefined ? {} : { ownerReferences: [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, uid: 'x', controller: true }] }),
    },
    spec: { containers: [{ name: 'app' }] },
    status: { phase: 'Running' },
  };
}

let clock: FakeClock;
let bindings: ObjectStore<SecretBinding>;
let pods: ObjectStore<V1Pod>;
let api: FakeWorkloads;
let events: Events;
let registry: Registry;

function reconciler(overrides: Partial<RotationReconcilerDeps> = {}): RotationReconciler {
  return new RotationReconciler({
    bindings, pods, api, events, clock,
    // A fresh registry per instance: a second instance stands for a restarted process.
    metrics: createRotationMetrics((registry = new Registry())),
    logger: createLogger({ level: 'error', component: 'test', stream: new PassThrough() }),
    maxConcurrentRollouts: 5,
    rolloutSlotTimeoutMs: 600_000,
    ...overrides,
  });
}

async function rollouts(kind: string, result: string): Promise<number> {
  const metric = await registry.getSingleMetric('secretbinder_rollouts_total')?.get();
  return metric?.values.find((v) => v.labels.kind === kind && v.labels.result === result)?.value ?? 0;
}

beforeEach(() => {
  clock = new FakeClock();
  bindings = new ObjectStore();
  pods = new ObjectStore();
  api = new FakeWorkloads();
  events = new Events();
  registry = new Registry();
});

describe('RotationReconciler', () => {
  it('adopts a workload seen for the first time by recording the hash on the workload, without a restart', async () => {
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    api.add('Deployment', 'web', { app: 'web' });
    expect(await reconciler().reconcile('Deployment/apps/web', { signal })).toEqual({});
    const web = api.get('Deployment', 'web');
    expect(web.recordedHash).toBe(workloadContentHash([hmac(1)]));
    expect(web.templateHash).toBeUndefined();
    expect(api.rollouts.size).toBe(0);
    expect(events.recorded).toEqual([]);
  });

  it('adopts only once every binding of the workload has concluded: a partial hash would restart it when the rest arrive', async () => {
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    bindings.upsert(binding('cache', undefined, { app: 'web' }));
    api.add('Deployment', 'web', { app: 'web' });
    const r = reconciler();
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
    expect(api.get('Deployment', 'web').recordedHash).toBeUndefined();
    // The second binding concludes: adopted with both, and nothing is restarted then or later.
    bindings.upsert(binding('cache', hmac(2), { app: 'web' }));
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
    expect(api.get('Deployment', 'web').recordedHash).toBe(workloadContentHash([hmac(1), hmac(2)]));
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
    expect(api.rollouts.size).toBe(0);
    // A binding that concluded as failed (status without a hash) does not hold the others back.
    const failed = binding('broken', undefined, { app: 'api' });
    bindings.upsert({ ...failed, status: { observedGeneration: 1 } });
    bindings.upsert(binding('api-db', hmac(3), { app: 'api' }));
    api.add('Deployment', 'api', { app: 'api' });
    expect(await r.reconcile('Deployment/apps/api', { signal })).toEqual({});
    expect(api.get('Deployment', 'api').recordedHash).toBe(workloadContentHash([hmac(3)]));
  });

  it('writes nothing when the recorded hash is current, in a fresh process too (restart, failover)', async () => {
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    api.add('Deployment', 'web', { app: 'web' }, { template: workloadContentHash([hmac(1)]), recorded: workloadContentHash([hmac(1)]) });
    api.add('StatefulSet', 'store', { app: 'web' }, { recorded: workloadContentHash([hmac(1)]) });
    for (const r of [reconciler(), reconciler()]) {
      expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
      expect(await r.reconcile('StatefulSet/apps/store', { signal })).toEqual({});
    }
    expect(api.writes).toEqual([]);
    expect(events.recorded).toEqual([]);
  });

  it('rolls a workload once per debounce window, with the hash current at its end', async () => {
    const r = reconciler();
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    api.add('Deployment', 'web', { app: 'web' });
    await r.reconcile('Deployment/apps/web', { signal });
    bindings.upsert(binding('db', hmac(2), { app: 'web' }));
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({ requeueAfterMs: 2_000 });
    await clock.advance(500);
    bindings.upsert(binding('db', hmac(3), { app: 'web' }));
    // A second change inside the window does not extend it.
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({ requeueAfterMs: 1_500 });
    expect(api.rollouts.size).toBe(0);
    await clock.advance(1_500);
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
    expect(api.rollouts.get('Deployment/web')).toBe(1);
    expect(api.get('Deployment', 'web').templateHash).toBe(workloadContentHash([hmac(3)]));
    expect(events.reasons('Deployment', 'web')).toEqual(['RestartTriggered']);
    expect(events.reasons('SecretBinding', 'db')).toEqual(['RestartTriggered']);
    expect(await rollouts('Deployment', 'triggered')).toBe(1);
    expect(JSON.stringify(events.recorded)).not.toContain(hmac(3));
    // Converged: nothing more.
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
    expect(api.rollouts.get('Deployment/web')).toBe(1);
  });

  it('drops the window when the content returns to what the workload runs', async () => {
    const r = reconciler();
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    api.add('Deployment', 'web', { app: 'web' }, { recorded: workloadContentHash([hmac(1)]) });
    bindings.upsert(binding('db', hmac(2), { app: 'web' }));
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({ requeueAfterMs: 2_000 });
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    await clock.advance(2_000);
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({});
    expect(api.writes).toEqual([]);
  });

  it('combines every RollingRestart binding of the template, order-free, ignoring other strategies, with the longest debounce', async () => {
    const r = reconciler();
    bindings.upsert(binding('b', hmac(2), { tier: 'backend' }, { strategy: 'RollingRestart', debounce: '10s' }));
    bindings.upsert(binding('a', hmac(1), { app: 'web' }));
    bindings.upsert(binding('refresh-only', hmac(9), { app: 'web' }, { strategy: 'Refresh' }));
    bindings.upsert(binding('other-app', hmac(8), { app: 'api' }));
    api.add('Deployment', 'web', { app: 'web', tier: 'backend' });
    await r.reconcile('Deployment/apps/web', { signal });
    expect(api.get('Deployment', 'web').recordedHash).toBe(workloadContentHash([hmac(2), hmac(1)]));
    expect(workloadContentHash([hmac(2), hmac(1)])).toBe(workloadContentHash([hmac(1), hmac(2)]));
    bindings.upsert(binding('a', hmac(3), { app: 'web' }));
    expect(await r.reconcile('Deployment/apps/web', { signal })).toEqual({ requeueAfterMs: 10_000 });
    await clock.advance(10_000);
    await r.reconcile('Deployment/apps/web', { signal });
    expect(api.get('Deployment', 'web').templateHash).toBe(workloadContentHash([hmac(2), hmac(3)]));
    expect(events.reasons('SecretBinding', 'a')).toEqual(['RestartTriggered']);
    expect(events.reasons('SecretBinding', 'refresh-only')).toEqual([]);
  });

  it('caps rollouts in progress; a slot frees when the rollout completes or times out', async () => {
    const r = reconciler({ maxConcurrentRollouts: 1, rolloutSlotTimeoutMs: 60_000 });
    bindings.upsert(binding('db', hmac(2), { app: 'web' }, { strategy: 'RollingRestart', debounce: '0s' }));
    for (const name of ['one', 'two', 'three']) api.add('Deployment', name, { app: 'web' }, { recorded: workloadContentHash([hmac(1)]) });
    expect(await r.reconcile('Deployment/apps/one', { signal })).toEqual({});
    expect(await r.reconcile('Deployment/apps/two', { signal })).toEqual({ requeueAfterMs: 5_000 });
    expect(api.rollouts.get('Deployment/two')).toBeUndefined();
    api.get('Deployment', 'one').rolledOut = true;
    expect(await r.reconcile('Deployment/apps/two', { signal })).toEqual({});
    expect(api.rollouts.get('Deployment/two')).toBe(1);
    // "two" never completes: "three" waits for the slot timeout.
    expect(await r.reconcile('Deployment/apps/three', { signal })).toEqual({ requeueAfterMs: 5_000 });
    await clock.advance(60_000);
    expect(await r.reconcile('Deployment/apps/three', { signal })).toEqual({});
    expect(api.rollouts.get('Deployment/three')).toBe(1);
  });

  it('evicts a bare pod on a change; a PodDisruptionBudget refusal is retried with one RestartFailed Event', async () => {
    const r = reconciler();
    bindings.upsert(binding('db', hmac(1), { app: 'solo' }, { strategy: 'RollingRestart', debounce: '0s' }));
    pods.upsert(pod('solo', { app: 'solo' }));
    api.pods.set('solo', { namespace: ns, name: 'solo', uid: 'uid-solo', recordedHash: undefined });
    await r.reconcile('Pod/apps/solo', { signal });
    expect(api.pods.get('solo')?.recordedHash).toBe(workloadContentHash([hmac(1)]));
    expect(api.evictions).toBe(0);
    bindings.upsert(binding('db', hmac(2), { app: 'solo' }, { strategy: 'RollingRestart', debounce: '0s' }));
    api.eviction = { kind: 'blocked', message: 'Cannot evict pod as it would violate the pod\'s disruption budget.' };
    await expect(r.reconcile('Pod/apps/solo', { signal })).rejects.toThrow(/PodDisruptionBudget/);
    await expect(r.reconcile('Pod/apps/solo', { signal })).rejects.toThrow(/PodDisruptionBudget/);
    expect(events.reasons('Pod', 'solo')).toEqual(['RestartFailed']);
    expect(events.reasons('SecretBinding', 'db')).toEqual(['RestartFailed']);
    expect(await rollouts('Pod', 'blocked')).toBe(2);
    api.eviction = { kind: 'evicted' };
    expect(await r.reconcile('Pod/apps/solo', { signal })).toEqual({});
    expect(api.evictions).toBe(3);
    expect(events.reasons('Pod', 'solo')).toEqual(['RestartFailed', 'RestartTriggered']);
    expect(await rollouts('Pod', 'triggered')).toBe(1);
  });

  it('reports a content change of a workload it cannot restart once (Event on the binding, one failed rollout)', async () => {
    const r = reconciler();
    bindings.upsert(binding('db', hmac(1), { app: 'batch' }));
    pods.upsert(pod('batch-x', { app: 'batch' }, { kind: 'Job', name: 'batch' }));
    expect(await r.reconcile('Job/apps/batch', { signal })).toEqual({});
    expect(events.recorded).toEqual([]);
    bindings.upsert(binding('db', hmac(2), { app: 'batch' }));
    await r.reconcile('Job/apps/batch', { signal });
    await r.reconcile('Job/apps/batch', { signal });
    expect(events.reasons('SecretBinding', 'db')).toEqual(['RestartFailed']);
    expect(await rollouts('Other', 'failed')).toBe(1);
  });

  it('forgets a workload that is gone', async () => {
    bindings.upsert(binding('db', hmac(1), { app: 'web' }));
    expect(await reconciler().reconcile('Deployment/apps/gone', { signal })).toEqual({});
    expect(api.writes).toEqual([]);
  });
});

describe('rotation keys', () => {
  it('map consuming pods to their workload: a ReplicaSet of a Deployment to the Deployment', () => {
    const b = binding('db', hmac(1), { app: 'web' });
    const viaRs = pod('web-7d9f-abcde', { app: 'web', 'pod-template-hash': '7d9f' }, { kind: 'ReplicaSet', name: 'web-7d9f' });
    const sts = pod('store-0', { app: 'web' }, { kind: 'StatefulSet', name: 'store' });
    const bare = pod('solo', { app: 'web' });
    const other = pod('api-1', { app: 'api' }, { kind: 'DaemonSet', name: 'api' });
    expect([...rotationKeysOfBinding(b, [viaRs, sts, bare, other])].sort()).toEqual(['Deployment/apps/web', 'Pod/apps/solo', 'StatefulSet/apps/store']);
    expect(rotationKeysOfBinding(binding('r', hmac(1), { app: 'web' }, { strategy: 'Refresh' }), [viaRs]).size).toBe(0);
    expect(rotationKeyOfConsumer(viaRs, [b])).toBe('Deployment/apps/web');
    expect(rotationKeyOfConsumer(other, [b])).toBeUndefined();
  });
});
