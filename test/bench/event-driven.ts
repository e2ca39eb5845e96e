/**
 * Bench row "rotation, event-driven" (issue 17): a change notice for one key used by 1,000
 * bindings (refreshInterval 1h, so polling plays no part) → every binding's content resolved with
 * the new version, through the real NoticeDispatcher, SecretResolver and BindingContentResolver over
 * the in-process fake backend, 4 workers as the binding controller has. The delivery to volumes
 * (change stream, node plugins) is not part of this row: the integration suite
 * test/integration/rotation/event-driven.test.ts prints write → files for 200 real volumes.
 */
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import type { AnyBackend, SecretBinding } from '../../src/api/v1alpha1/index.ts';
import { FakeSecretStore } from '../../src/backends/fake/index.ts';
import { createNoticeMetrics } from '../../src/backends/notices/notice.metrics.ts';
import { NoticeDispatcher } from '../../src/controllers/binding/notice-dispatcher.ts';
import { contentWorld } from './content-world.ts';
import { realClock } from '../../src/runtime/clock.ts';
import { objectKey, ObjectStore } from '../../src/runtime/object-store.ts';

const bindingCount = 1000;
const workers = 4;

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** One row: scenario, median, p99, note — as the latency table of run.ts prints them. */
export async function eventDrivenRow(): Promise<string[]> {
  const store = new FakeSecretStore({ clock: realClock });
  store.setJson('app/db', { password: randomBytes(8).toString('hex') });
  const backend = {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBackend',
    metadata: { name: 'bench', namespace: 'bench', uid: 'bench-uid', generation: 1 },
    spec: { vault: { address: 'https://bench', mount: 'secret' }, refreshInterval: '1h' },
  } as unknown as AnyBackend;
  const backends = new ObjectStore<AnyBackend>();
  backends.upsert(backend);
  const { resolver, pool, content } = contentWorld(backends, () => store);
  const bindings = new ObjectStore<SecretBinding>();
  for (let i = 0; i < bindingCount; i++) {
    bindings.upsert({
      apiVersion: 'secretbinder.dev/v1alpha1',
      kind: 'SecretBinding',
      metadata: { name: `b${String(i)}`, namespace: 'bench', generation: 1 },
      spec: { backendRef: { kind: 'SecretBackend', name: 'bench' }, podSelector: {}, containers: ['app'], files: [{ path: 'password', key: 'app/db', property: 'password' }] },
    } as unknown as SecretBinding);
  }
  const signal = new AbortController().signal;
  const hashes = new Map<string, string>();
  for (const b of bindings.list()) {
    const resolved = await content.resolve(b, signal);
    if (resolved.kind !== 'resolved') throw new Error('bench binding failed');
    hashes.set(objectKey(b), resolved.hmac);
  }

  // The binding controller's queue, reduced to what matters here: dedup by key, `workers` at once.
  const queue: string[] = [];
  const queued = new Set<string>();
  const done = new Map<string, number>();
  let started = 0;
  let wake: (() => void) | undefined;
  const dispatcher = new NoticeDispatcher({
    bindings,
    backendOf: () => backend,
    backendIdOf: (b) => pool.get(`SecretBackend/${b.metadata.namespace ?? ''}/${b.metadata.name ?? ''}`)?.backendId,
    invalidate: (id, key) => { resolver.invalidate(id, key, 'event'); },
    enqueue: (key) => {
      if (queued.has(key)) return;
      queued.add(key);
      queue.push(key);
      wake?.();
    },
    clock: realClock,
    metrics: createNoticeMetrics(new Registry()),
    windowMs: 1000,
  });
  const worker = async (): Promise<void> => {
    while (done.size < bindingCount) {
      const key = queue.shift();
      if (key === undefined) {
        await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 5); });
        continue;
      }
      queued.delete(key);
      const binding = bindings.get(key);
      if (binding === undefined) continue;
      const resolved = await content.resolve(binding, signal);
      if (resolved.kind === 'resolved' && resolved.hmac !== hashes.get(key)) done.set(key, performance.now() - started);
    }
  };
  const readsBefore = store.stats.reads;
  store.setJson('app/db', { password: randomBytes(8).toString('hex') });
  started = performance.now();
  dispatcher.notice('vaultAudit', { provider: 'vault', scope: 'secret', key: 'app/db' });
  await Promise.all(Array.from({ length: workers }, worker));
  dispatcher.close();
  await resolver.close();
  const times = [...done.values()];
  return [
    `rotation, event-driven: notice → ${String(bindingCount)} bindings resolved with the new version (refreshInterval 1h; in process, delivery not included)`,
    `${quantile(times, 0.5).toFixed(1)} ms`,
    `${quantile(times, 0.99).toFixed(1)} ms`,
    `value reads ${String(store.stats.reads - readsBefore)}; target ≤ 1 s write → files`,
  ];
}
