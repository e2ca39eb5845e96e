import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig, V1ConfigMap } from '@kubernetes/client-node';
import { startProcessNamed, stopProcessNamed } from '../../harness/control.ts';
import { currentWorld } from '../../harness/world-state.ts';
import type { WorldState } from '../../harness/world-state.ts';
import { Informer } from '../../../src/runtime/informer.ts';
import { KubeListWatch } from '../../../src/runtime/kube-list-watch.ts';
import { NamespacedInformers } from '../../../src/runtime/namespaced-informers.ts';

/**
 * The informer supervisor against the real kube-apiserver: list + watch, selectors, namespace
 * scoping, managedFields stripped, and recovery after the apiserver restarts.
 *
 * The restart test stops the world's kube-apiserver: no other test may use it meanwhile (see
 * test/harness/control.ts), so run this file on its own or in a serial run.
 */

const configMaps = { group: '', version: 'v1', plural: 'configmaps' } as const;

async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

function configMap(name: string, data: Record<string, string>, labels: Record<string, string> = {}): V1ConfigMap {
  return { metadata: { name, labels }, data };
}

describe('Informer against the real apiserver', () => {
  let world: WorldState;
  let kubeConfig: KubeConfig;
  let core: CoreV1Api;
  const suffix = randomBytes(4).toString('hex');
  const nsA = `rt-inf-a-${suffix}`;
  const nsB = `rt-inf-b-${suffix}`;
  const stops: AbortController[] = [];
  const runs: Promise<void>[] = [];

  function run(runnable: { start(signal: AbortSignal): Promise<void> }): void {
    const stop = new AbortController();
    stops.push(stop);
    runs.push(runnable.start(stop.signal));
  }

  beforeAll(async () => {
    world = currentWorld();
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(world.kube.kubeconfigPath);
    core = kubeConfig.makeApiClient(CoreV1Api);
    for (const name of [nsA, nsB]) await core.createNamespace({ body: { metadata: { name } } });
  }, 30_000);

  afterAll(async () => {
    for (const stop of stops) stop.abort();
    await Promise.all(runs);
    // A fresh client: the apiserver may have restarted.
    const fresh = new KubeConfig();
    fresh.loadFromFile(currentWorld().kube.kubeconfigPath);
    const api = fresh.makeApiClient(CoreV1Api);
    for (const name of [nsA, nsB]) await api.deleteNamespace({ name }).catch(() => undefined);
  }, 30_000);

  it('lists in pages, follows changes, honours the label selector and strips managedFields', async () => {
    for (let i = 0; i < 5; i++) await core.createNamespacedConfigMap({ namespace: nsA, body: configMap(`paged-${i}`, { i: String(i) }, { app: 'paged' }) });
    await core.createNamespacedConfigMap({ namespace: nsA, body: configMap('other', { x: '1' }, { app: 'other' }) });
    const informer = new Informer<V1ConfigMap>({
      resource: 'configmaps',
      source: new KubeListWatch<V1ConfigMap>(kubeConfig, configMaps, { namespace: nsA, labelSelector: 'app=paged' }, { pageSize: 2 }),
    });
    const events: string[] = [];
    informer.addHandler({
      add: (o) => events.push(`add ${o.metadata?.name}`),
      update: (_old, o) => events.push(`update ${o.metadata?.name} ${o.data?.i}`),
      delete: (o) => events.push(`delete ${o.metadata?.name}`),
    });
    run(informer);
    expect(await informer.whenSynced()).toBe(true);
    expect(informer.list().map((o) => o.metadata?.name).sort()).toEqual(['paged-0', 'paged-1', 'paged-2', 'paged-3', 'paged-4']);
    expect(informer.get(`${nsA}/other`)).toBeUndefined();
    // The apiserver sets managedFields on every object; the cache drops them.
    const read = await core.readNamespacedConfigMap({ namespace: nsA, name: 'paged-0' });
    expect(read.metadata?.managedFields?.length).toBeGreaterThan(0);
    expect(informer.list().every((o) => o.metadata?.managedFields === undefined)).toBe(true);

    await core.replaceNamespacedConfigMap({ namespace: nsA, name: 'paged-1', body: configMap('paged-1', { i: 'changed' }, { app: 'paged' }) });
    await core.deleteNamespacedConfigMap({ namespace: nsA, name: 'paged-2' });
    await core.createNamespacedConfigMap({ namespace: nsA, body: configMap('paged-new', { i: 'new' }, { app: 'paged' }) });
    await core.createNamespacedConfigMap({ namespace: nsA, body: configMap('not-matching', { i: 'x' }, { app: 'other' }) });
    await eventually('watch events', () => (informer.get(`${nsA}/paged-new`) === undefined ? undefined : true), 10_000);
    expect(events.slice(5)).toEqual(['update paged-1 changed', 'delete paged-2', 'add paged-new']);
    expect(informer.get(`${nsA}/paged-1`)?.data?.i).toBe('changed');
    expect(informer.get(`${nsA}/paged-1`)?.metadata?.managedFields).toBeUndefined();
    expect(informer.staleness()).toBeLessThan(5_000);
  });

  it('watches only the namespaces in its set, changing at run time', async () => {
    await core.createNamespacedConfigMap({ namespace: nsB, body: configMap('in-b', { v: '1' }) });
    const set = new NamespacedInformers<V1ConfigMap>({
      resource: 'configmaps',
      newInformer: (namespace) =>
        new Informer<V1ConfigMap>({ resource: 'configmaps', source: new KubeListWatch<V1ConfigMap>(kubeConfig, configMaps, { namespace }) }),
    });
    run(set);
    set.addNamespace(nsA);
    await eventually('namespace A synced', () => (set.hasSynced() ? true : undefined), 10_000);
    expect(set.listNamespace(nsB)).toEqual([]);
    expect(set.get(`${nsB}/in-b`)).toBeUndefined();
    set.addNamespace(nsB);
    await eventually('namespace B synced', () => (set.hasSynced() ? true : undefined), 10_000);
    expect(set.get(`${nsB}/in-b`)?.data?.v).toBe('1');
    set.removeNamespace(nsA);
    expect(set.listNamespace(nsA)).toEqual([]);
    expect(set.namespaces()).toEqual([nsB]);
  });

  it('keeps a quiet watch open across the client idle timeout without counting failures', async () => {
    const restarts: string[] = [];
    const informer = new Informer<V1ConfigMap>({
      resource: 'configmaps',
      source: new KubeListWatch<V1ConfigMap>(kubeConfig, configMaps, { namespace: nsA, labelSelector: 'app=quiet' }),
      observer: { informerRestarted: (r) => restarts.push(r) },
    });
    run(informer);
    expect(await informer.whenSynced()).toBe(true);
    // The client library ends a watch that carried nothing for 30 s; the informer re-watches.
    await sleep(35_000);
    expect(restarts).toEqual([]);
    expect(informer.staleness()).toBeLessThan(31_000);
    await core.createNamespacedConfigMap({ namespace: nsA, body: configMap('quiet-1', { v: '1' }, { app: 'quiet' }) });
    await eventually('an event after the idle period', () => informer.get(`${nsA}/quiet-1`), 5_000);
  }, 60_000);

  it('recovers after a kube-apiserver restart and sees changes made while it was disconnected within 30 s', async () => {
    const failures: number[] = [];
    // A fixed 10 s backoff (no jitter) makes the window in which it is disconnected predictable.
    const backoffMs = 10_000;
    const informer = new Informer<V1ConfigMap>({
      resource: 'configmaps',
      source: new KubeListWatch<V1ConfigMap>(kubeConfig, configMaps, { namespace: nsB }),
      backoff: { baseMs: backoffMs, capMs: backoffMs },
      observer: { informerRestarted: () => failures.push(Date.now()) },
    });
    run(informer);
    expect(await informer.whenSynced()).toBe(true);
    await core.createNamespacedConfigMap({ namespace: nsB, body: configMap('before', { v: '1' }) });
    await core.createNamespacedConfigMap({ namespace: nsB, body: configMap('doomed', { v: '1' }) });
    await eventually('objects before the outage', () => informer.get(`${nsB}/doomed`), 10_000);

    await stopProcessNamed(world, 'kube-apiserver');
    const failedAt = await eventually('the informer noticing the outage', () => failures[0], 30_000);
    world = await startProcessNamed(world, 'kube-apiserver');

    // The apiserver is back; the informer is still waiting out its backoff. Change things now.
    const fresh = new KubeConfig();
    fresh.loadFromFile(world.kube.kubeconfigPath);
    const api = fresh.makeApiClient(CoreV1Api);
    await api.replaceNamespacedConfigMap({ namespace: nsB, name: 'before', body: configMap('before', { v: '2' }) });
    await api.createNamespacedConfigMap({ namespace: nsB, body: configMap('after', { v: '1' }) });
    await api.deleteNamespacedConfigMap({ namespace: nsB, name: 'doomed' });
    const changedAt = Date.now();
    // The scenario holds only if the changes landed before the informer's next attempt.
    expect(changedAt).toBeLessThan(failedAt + backoffMs);
    expect(informer.get(`${nsB}/before`)?.data?.v).toBe('1');

    await eventually(
      'changes made during the outage',
      () => (informer.get(`${nsB}/before`)?.data?.v === '2' && informer.get(`${nsB}/after`) !== undefined && informer.get(`${nsB}/doomed`) === undefined ? true : undefined),
      30_000,
    );
    expect(Date.now() - changedAt).toBeLessThan(30_000);
    expect(informer.staleness()).toBeLessThan(10_000);
  }, 120_000);
});
