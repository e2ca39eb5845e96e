import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import type { SecretRef } from '../backend.port.ts';
import { createBackendMetrics } from '../backends.metrics.ts';
import { FakeBackend } from '../fake/fake.backend.ts';
import { FakeSecretStore } from '../fake/fake.store.ts';
import type { BackendLimits } from './backend-channel.ts';
import { PropertyError, SecretResolver, UnknownBackendError, type ResolveRequest, type ResolverOptions } from './resolver.ts';

const latest = (key: string): SecretRef => ({ key, version: { kind: 'latest' } });
const pinned = (key: string, id: string): SecretRef => ({ key, version: { kind: 'id', id } });
const req = (key: string, property?: string): ResolveRequest => ({ backendId: 'b', ref: latest(key), property });

interface SetupOptions {
  readonly limits?: BackendLimits;
  readonly unversioned?: boolean;
  readonly resolver?: Partial<ResolverOptions>;
}

function setup(options: SetupOptions = {}) {
  const clock = new FakeClock();
  const registry = new Registry();
  const metrics = createBackendMetrics(registry);
  const store = new FakeSecretStore({ clock, unversioned: options.unversioned ?? false });
  const backend = new FakeBackend(store);
  const resolver = new SecretResolver({
    clock,
    metrics,
    contentKey: SecretValue.fromString('content-key-for-tests-0123456789'),
    random: () => 0.5,
    ...options.resolver,
  });
  resolver.addBackend('b', backend, options.limits ?? { qps: 1000, burst: 1000, maxConcurrency: 8 });
  return { clock, registry, store, backend, resolver };
}

/** Moves virtual time in small steps until `promise` settles (or `limitMs` passes). */
async function settle<T>(clock: FakeClock, promise: Promise<T>, limitMs = 600_000): Promise<T> {
  const state = { done: false };
  promise.then(
    () => (state.done = true),
    () => (state.done = true),
  );
  for (let elapsed = 0; !state.done && elapsed < limitMs; elapsed += 100) await clock.advance(100);
  return promise;
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

describe('SecretResolver: reads scale with unique secrets', () => {
  it('serves 200 requests for 10 unique keys with 10 reads in one batched call', async () => {
    const { clock, store, resolver, registry } = setup();
    for (let i = 0; i < 10; i++) store.set(`app/k${i}`, `value-${i}`);
    const requests = Array.from({ length: 200 }, (_, i) => req(`app/k${i % 10}`));
    const outcomes = await settle(clock, resolver.resolveAll(requests, { maxAgeMs: 60_000 }));
    expect(outcomes.map((o) => (o.ok ? o.resolution.value.revealText() : 'error'))).toEqual(requests.map((_, i) => `value-${i % 10}`));
    expect(store.stats.reads).toBe(10);
    expect(store.stats.fetchCalls).toBe(1);

    // The same 200 requests a little later are answered from memory.
    await clock.advance(5_000);
    for (const request of requests) {
      const resolution = await resolver.resolve(request, { maxAgeMs: 60_000 });
      expect(resolution.stale).toBe(false);
    }
    expect(store.stats.reads).toBe(10);
    expect(await metricValue(registry, 'secretbinder_backend_cache_hits_total', { provider: 'fake' })).toBe(200);
    expect(await metricValue(registry, 'secretbinder_backend_secrets_read_total', { provider: 'fake' })).toBe(10);
    expect(await metricValue(registry, 'secretbinder_backend_requests_total', { provider: 'fake', operation: 'fetch', result: 'ok' })).toBe(1);
  });

  it('coalesces concurrent identical requests into one call, whatever field each selects', async () => {
    const { clock, store, resolver } = setup();
    store.setJson('app/db', { username: 'admin', password: 'pw' });
    const requests = Array.from({ length: 50 }, (_, i) => req('app/db', i % 2 === 0 ? 'username' : 'password'));
    const outcomes = await settle(clock, resolver.resolveAll(requests, { maxAgeMs: 60_000 }));
    expect(outcomes.map((o) => (o.ok ? o.resolution.value.revealText() : 'error'))).toEqual(requests.map((_, i) => (i % 2 === 0 ? 'admin' : 'pw')));
    expect(store.stats.fetchCalls).toBe(1);
    expect(store.stats.reads).toBe(1);
  });

  it('reads again once the cached document is older than maxAge', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'one');
    expect((await settle(clock, resolver.resolve(req('k'), { maxAgeMs: 10_000 }))).value.revealText()).toBe('one');
    store.set('k', 'two');
    await clock.advance(9_000);
    expect((await resolver.resolve(req('k'), { maxAgeMs: 10_000 })).value.revealText()).toBe('one');
    await clock.advance(2_000);
    const fresh = await settle(clock, resolver.resolve(req('k'), { maxAgeMs: 10_000 }));
    expect(fresh.value.revealText()).toBe('two');
    expect(fresh.version).toBe('2');
    expect(store.stats.reads).toBe(2);
  });

  it('never re-reads a pinned version', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'one');
    store.set('k', 'two');
    const request = { backendId: 'b', ref: pinned('k', '1') };
    expect((await settle(clock, resolver.resolve(request, { maxAgeMs: 1 }))).value.revealText()).toBe('one');
    await clock.advance(3_600_000);
    expect((await resolver.resolve(request, { maxAgeMs: 1 })).value.revealText()).toBe('one');
    expect(store.stats.reads).toBe(1);
  });

  it('splits large batches and keeps calls within the concurrency limit', async () => {
    const { clock, store, resolver } = setup({ limits: { qps: 1000, burst: 1000, maxConcurrency: 2 }, resolver: { maxBatchSize: 4 } });
    store.latencyMs = 1_000;
    for (let i = 0; i < 20; i++) store.set(`k${i}`, `v${i}`);
    const outcomes = await settle(clock, resolver.resolveAll(Array.from({ length: 20 }, (_, i) => req(`k${i}`)), { maxAgeMs: 60_000 }));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect(store.calls.map((c) => c.keys.length)).toEqual([4, 4, 4, 4, 4]);
    expect(store.stats.maxInFlight).toBe(2);
    expect(store.stats.reads).toBe(20);
  });
});

describe('SecretResolver: rate budget, throttling and backoff', () => {
  it('keeps the request rate within the budget and honours retry-after', async () => {
    const qps = 2;
    const burst = 3;
    const { clock, store, resolver, registry } = setup({
      limits: { qps, burst, maxConcurrency: 4 },
      resolver: { maxBatchSize: 1, retry: { maxAttempts: 6, baseMs: 100, capMs: 10_000 } },
    });
    for (let i = 0; i < 20; i++) store.set(`k${i}`, `v${i}`);
    store.failWith({ kind: 'Throttled', retryAfterMs: 5_000, times: 2 });
    const outcomes = await settle(clock, resolver.resolveAll(Array.from({ length: 20 }, (_, i) => req(`k${i}`)), { maxAgeMs: 60_000 }));
    expect(outcomes.every((o) => o.ok)).toBe(true);

    const times = store.calls.map((c) => c.at);
    const firstThrottle = times[0] ?? 0;
    // Retry-after: after the throttled answers, nothing reached the store for 5 s.
    const during = times.filter((t) => t > firstThrottle && t < firstThrottle + 5_000);
    expect(during).toEqual([]);
    // The budget: any run of calls i..j fits burst + qps·(t_j − t_i).
    for (let i = 0; i < times.length; i++) {
      for (let j = i; j < times.length; j++) {
        const span = ((times[j] ?? 0) - (times[i] ?? 0)) / 1000;
        expect(j - i + 1).toBeLessThanOrEqual(burst + qps * span + 1e-9);
      }
    }
    // After the pause the calls resume at the sustained rate, not in a burst.
    const after = times.filter((t) => t >= firstThrottle + 5_000);
    for (let i = 1; i < after.length; i++) expect((after[i] ?? 0) - (after[i - 1] ?? 0)).toBeGreaterThanOrEqual(1000 / qps - 1e-6);
    expect(store.calls).toHaveLength(22);
    expect(await metricValue(registry, 'secretbinder_backend_throttles_total', { provider: 'fake' })).toBe(2);
    expect(await metricValue(registry, 'secretbinder_backend_requests_total', { provider: 'fake', operation: 'fetch', result: 'Throttled' })).toBe(2);
  });

  it('charges connectivity checks to the budget, and a throttled check pauses reads too', async () => {
    const { clock, store, resolver, registry } = setup({ limits: { qps: 1, burst: 1, maxConcurrency: 4 } });
    store.set('k0', 'v0');
    store.failWith({ kind: 'Throttled', retryAfterMs: 5_000, times: 1, operations: ['connectivity'] });
    await expect(settle(clock, resolver.checkConnectivity('b'))).rejects.toMatchObject({ kind: 'Throttled' });
    // The read waits out the store's retry-after, like after a throttled read.
    await settle(clock, resolver.resolve(req('k0'), { maxAgeMs: 60_000 }));
    // Checks retried in a row keep to qps 1.
    for (let i = 0; i < 3; i++) await settle(clock, resolver.checkConnectivity('b'));
    const times = store.calls.map((c) => c.at);
    expect(store.calls.map((c) => c.operation)).toEqual(['connectivity', 'fetch', 'connectivity', 'connectivity', 'connectivity']);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(5_000);
    for (let i = 2; i < times.length; i++) expect((times[i] ?? 0) - (times[i - 1] ?? 0)).toBeGreaterThanOrEqual(1_000 - 1e-6);
    expect(await metricValue(registry, 'secretbinder_backend_requests_total', { provider: 'fake', operation: 'connectivity', result: 'Throttled' })).toBe(1);
    expect(await metricValue(registry, 'secretbinder_backend_requests_total', { provider: 'fake', operation: 'connectivity', result: 'ok' })).toBe(3);
  });

  it('retries a throttled reference of a batch without re-reading the others', async () => {
    const { clock, store, resolver } = setup();
    store.set('a', 'x');
    store.set('b', 'y');
    store.failWith({ kind: 'Throttled', keys: ['b'], times: 1, retryAfterMs: 2_000 });
    const outcomes = await settle(clock, resolver.resolveAll([req('a'), req('b')], { maxAgeMs: 60_000 }));
    expect(outcomes.map((o) => (o.ok ? o.resolution.value.revealText() : 'error'))).toEqual(['x', 'y']);
    expect(store.calls.map((c) => c.keys)).toEqual([['a', 'b'], ['b']]);
    expect((store.calls[1]?.at ?? 0) - (store.calls[0]?.at ?? 0)).toBeGreaterThanOrEqual(2_000);
  });

  it('backs off exponentially on an outage, gives up after the attempt limit, then holds the failure', async () => {
    const { clock, store, resolver } = setup({ resolver: { retry: { maxAttempts: 4, baseMs: 200, capMs: 30_000 } } });
    store.set('k', 'v');
    store.failWith({ kind: 'Unavailable' });
    await expect(settle(clock, resolver.resolve(req('k'), { maxAgeMs: 1_000 }))).rejects.toMatchObject({ kind: 'Unavailable' });
    const times = store.calls.map((c) => c.at);
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    // base·2^(n−1) with 50 % jitter (random 0.5 → 75 % of it): 150, 300, 600 ms; plus one token
    // interval (1 ms at 1000/s), as a pause empties the bucket.
    expect(gaps).toEqual([151, 301, 601]);

    // Asking again at once does not call the store: the failure is held.
    for (let i = 0; i < 100; i++) await expect(resolver.resolve(req('k'), { maxAgeMs: 1_000 })).rejects.toMatchObject({ kind: 'Unavailable' });
    expect(store.calls).toHaveLength(4);
    store.recover();
    await clock.advance(2_000);
    expect((await settle(clock, resolver.resolve(req('k'), { maxAgeMs: 1_000 }))).value.revealText()).toBe('v');
  });

  it('does not retry a failure that will not heal (NotFound, AuthFailed) and holds it', async () => {
    const { clock, store, resolver } = setup();
    await expect(settle(clock, resolver.resolve(req('missing'), { maxAgeMs: 1_000 }))).rejects.toMatchObject({ kind: 'NotFound' });
    await expect(resolver.resolve(req('missing'), { maxAgeMs: 1_000 })).rejects.toMatchObject({ kind: 'NotFound' });
    expect(store.stats.fetchCalls).toBe(1);
    store.set('missing', 'now here');
    await clock.advance(1_000);
    expect((await settle(clock, resolver.resolve(req('missing'), { maxAgeMs: 1_000 }))).value.revealText()).toBe('now here');

    store.set('k', 'v');
    store.failWith({ kind: 'AuthFailed' });
    await expect(settle(clock, resolver.resolve(req('k'), { maxAgeMs: 1_000 }))).rejects.toMatchObject({ kind: 'AuthFailed' });
    expect(store.stats.fetchCalls).toBe(3);
  });

  it('holds a failure no longer than the asking interval, so a recovered backend is seen within it (ADR 0106)', async () => {
    const { clock, store, resolver } = setup({ resolver: { retry: { maxAttempts: 1, baseMs: 100, capMs: 100 }, failureHold: { baseMs: 60_000, capMs: 60_000 } } });
    store.set('k', 'v');
    store.failWith({ kind: 'Unavailable' });
    await expect(settle(clock, resolver.resolve(req('k'), { maxAgeMs: 10_000 }))).rejects.toMatchObject({ kind: 'Unavailable' });
    const calls = store.calls.length;
    store.recover();
    // Within the interval the failure is the answer, whatever the asker's interval.
    await clock.advance(5_000);
    await expect(resolver.resolve(req('k'), { maxAgeMs: 10_000 })).rejects.toMatchObject({ kind: 'Unavailable' });
    await expect(resolver.resolve(req('k'), { maxAgeMs: 60_000 })).rejects.toMatchObject({ kind: 'Unavailable' });
    expect(store.calls).toHaveLength(calls);
    // One interval after the failure the asker tries again, although the 60 s hold has not passed.
    await clock.advance(5_100);
    expect((await settle(clock, resolver.resolve(req('k'), { maxAgeMs: 10_000 }))).value.revealText()).toBe('v');
    expect(store.calls).toHaveLength(calls + 1);
  });

  it('times out a hanging call and retries it', async () => {
    const { clock, store, resolver } = setup({ resolver: { callTimeoutMs: 5_000, retry: { maxAttempts: 2, baseMs: 100, capMs: 1_000 } } });
    store.set('k', 'v');
    store.hold();
    const failed = settle(clock, resolver.resolve(req('k'), { maxAgeMs: 1_000 }));
    await expect(failed).rejects.toThrow(/timed out/);
    expect(store.calls).toHaveLength(2);
    expect(store.stats.inFlight).toBe(0);
  });
});

describe('SecretResolver: last-known-good', () => {
  it('serves the last good document with its age while the backend is down, up to maxStaleness', async () => {
    const { clock, store, resolver, registry } = setup({ resolver: { retry: { maxAttempts: 2, baseMs: 100, capMs: 1_000 } } });
    store.setJson('app/db', { password: 'pw-1' });
    await settle(clock, resolver.resolve(req('app/db'), { maxAgeMs: 10_000 }));
    await clock.advance(30_000);
    store.failWith({ kind: 'Unavailable' });

    const stale = await settle(clock, resolver.resolve(req('app/db', 'password'), { maxAgeMs: 10_000, serveStaleUpToMs: 120_000 }));
    expect(stale.stale).toBe(true);
    expect(stale.value.revealText()).toBe('pw-1');
    expect(stale.ageMs).toBeGreaterThanOrEqual(30_000);
    expect(stale.stale && stale.cause.kind).toBe('Unavailable');
    expect(resolver.lastKnownGood('b', latest('app/db'))?.ageMs).toBeGreaterThanOrEqual(stale.ageMs);
    expect(await metricValue(registry, 'secretbinder_backend_stale_served_total', { provider: 'fake' })).toBe(1);

    // Without permission, or beyond the allowed staleness, the failure is the answer.
    await expect(resolver.resolve(req('app/db'), { maxAgeMs: 10_000 })).rejects.toMatchObject({ kind: 'Unavailable' });
    await expect(resolver.resolve(req('app/db'), { maxAgeMs: 10_000, serveStaleUpToMs: 20_000 })).rejects.toMatchObject({ kind: 'Unavailable' });
  });

  it('does not stand in for a secret the backend says is gone', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'v');
    await settle(clock, resolver.resolve(req('k'), { maxAgeMs: 1_000 }));
    store.delete('k');
    await clock.advance(2_000);
    await expect(settle(clock, resolver.resolve(req('k'), { maxAgeMs: 1_000, serveStaleUpToMs: 3_600_000 }))).rejects.toMatchObject({ kind: 'NotFound' });
    expect(resolver.lastKnownGood('b', latest('k'))?.secret.value.revealText()).toBe('v');
  });
});

describe('SecretResolver: properties', () => {
  it('extracts fields of JSON documents and explains what is missing', async () => {
    const { clock, store, resolver } = setup();
    store.setJson('app/db', { username: 'admin', port: 5432, nested: { a: ['x', 'y'] }, 'dotted.key': 'd', 'a/b': 'slash' });
    store.set('app/plain', 'not json');
    store.set('app/bin', new Uint8Array([0, 1, 2]), 'binary');
    store.set('app/jsontext', '{"token":"t"}');
    const value = async (key: string, property?: string) =>
      (await settle(clock, resolver.resolve(req(key, property), { maxAgeMs: 60_000 }))).value.revealText();
    expect(await value('app/db', 'username')).toBe('admin');
    expect(await value('app/db', 'port')).toBe('5432');
    expect(await value('app/db', 'nested')).toBe('{"a":["x","y"]}');
    expect(await value('app/db', 'nested.a.1')).toBe('y');
    expect(await value('app/db', '/nested/a/0')).toBe('x');
    expect(await value('app/db', '/a~1b')).toBe('slash');
    expect(await value('app/db', 'dotted.key')).toBe('d');
    expect(await value('app/jsontext', 'token')).toBe('t');
    expect(JSON.parse(await value('app/db'))).toMatchObject({ username: 'admin' });

    await expect(value('app/db', 'nope')).rejects.toThrow(new PropertyError('PropertyNotFound', 'secret app/db has no property nope'));
    await expect(value('app/db', 'nested.a.7')).rejects.toMatchObject({ kind: 'PropertyNotFound' });
    await expect(value('app/plain', 'x')).rejects.toMatchObject({ kind: 'NotJson', message: 'secret app/plain is not a JSON document; property x cannot be selected' });
    await expect(value('app/bin', 'x')).rejects.toMatchObject({ kind: 'NotJson' });
    // One document read for all of the above.
    expect(store.readsOf('app/db')).toBe(1);
  });
});

describe('SecretResolver: version polling', () => {
  it('checks versions cheaply and reads a value only when the version changed', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'one');
    const check = () => settle(clock, resolver.checkVersions('b', [latest('k')], { maxAgeMs: 10_000 }));

    expect(await check()).toEqual([{ ok: true, ref: latest('k'), version: '1', previousVersion: undefined, changed: true }]);
    expect(store.stats.reads).toBe(1);

    await clock.advance(11_000);
    expect(await check()).toMatchObject([{ ok: true, version: '1', previousVersion: '1', changed: false }]);
    expect(store.stats.versionCalls).toBe(1);
    expect(store.stats.reads).toBe(1);

    store.set('k', 'two');
    await clock.advance(11_000);
    expect(await check()).toMatchObject([{ ok: true, version: '2', previousVersion: '1', changed: true }]);
    expect(store.stats.reads).toBe(2);
    expect((await resolver.resolve(req('k'), { maxAgeMs: 10_000 })).value.revealText()).toBe('two');
    expect(store.stats.reads).toBe(2);
  });

  it('counts a change by how it was found: a notice\'s invalidation (event) or the interval (poll)', async () => {
    const { clock, store, resolver, registry } = setup();
    store.set('k', 'one');
    const check = (maxAgeMs: number) => settle(clock, resolver.checkVersions('b', [latest('k')], { maxAgeMs }));
    await check(3_600_000);
    const detected = (source: string) => metricValue(registry, 'secretbinder_backend_changes_detected_total', { provider: 'fake', source });

    store.set('k', 'two');
    resolver.invalidate('b', 'k', 'event');
    expect(await check(3_600_000)).toMatchObject([{ ok: true, changed: true }]);
    expect([await detected('event'), await detected('poll')]).toEqual([1, 0]);

    // A notice whose check found nothing new does not label the next change.
    resolver.invalidate('b', 'k', 'event');
    expect(await check(3_600_000)).toMatchObject([{ ok: true, changed: false }]);
    store.set('k', 'three');
    await clock.advance(11_000);
    expect(await check(10_000)).toMatchObject([{ ok: true, changed: true }]);
    expect([await detected('event'), await detected('poll')]).toEqual([1, 1]);
  });

  it('shares one check among many callers in one interval', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'one');
    await settle(clock, resolver.resolve(req('k'), { maxAgeMs: 10_000 }));
    await clock.advance(11_000);
    const checks = Array.from({ length: 100 }, () => resolver.checkVersions('b', [latest('k')], { maxAgeMs: 10_000 }));
    const results = await settle(clock, Promise.all(checks));
    expect(results.flat().every((r) => r.ok && !r.changed)).toBe(true);
    expect(store.stats.versionCalls).toBe(1);
    // Callers that come later within the interval are answered from memory.
    await clock.advance(5_000);
    await resolver.checkVersions('b', [latest('k')], { maxAgeMs: 10_000 });
    expect(store.stats.versionCalls).toBe(1);
  });

  it('detects a change in an unversioned store by keyed HMAC, never exposing the content', async () => {
    const { clock, store, resolver } = setup({ unversioned: true });
    store.set('k', 'one');
    const check = () => settle(clock, resolver.checkVersions('b', [latest('k')], { maxAgeMs: 10_000 }));
    const [first] = await check();
    expect(first?.ok === true && first.version).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);

    await clock.advance(11_000);
    const [same] = await check();
    expect(same).toMatchObject({ ok: true, changed: false });
    expect(same?.ok === true && same.version).toBe(first?.ok === true && first.version);
    expect(store.stats.reads).toBe(2);

    store.set('k', 'two');
    await clock.advance(11_000);
    const [changed] = await check();
    expect(changed).toMatchObject({ ok: true, changed: true });
    expect(JSON.stringify(changed)).not.toMatch(/one|two/);
  });

  it('reports failures of the check per reference', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'one');
    await settle(clock, resolver.checkVersions('b', [latest('k')], { maxAgeMs: 1_000 }));
    await clock.advance(2_000);
    store.delete('k');
    const [gone, other] = await settle(clock, resolver.checkVersions('b', [latest('k'), latest('other')], { maxAgeMs: 1_000 }));
    expect(gone).toMatchObject({ ok: false, error: { kind: 'NotFound' } });
    expect(other).toMatchObject({ ok: false, error: { kind: 'NotFound' } });
  });
});

describe('SecretResolver: lifecycle', () => {
  it('lets one impatient caller go without cancelling the shared read', async () => {
    const { clock, store, resolver } = setup();
    store.set('k', 'v');
    const release = store.hold();
    const impatient = new AbortController();
    const first = resolver.resolve(req('k'), { maxAgeMs: 1_000, signal: impatient.signal });
    const second = resolver.resolve(req('k'), { maxAgeMs: 1_000 });
    await clock.advance(100);
    impatient.abort(new Error('caller gave up'));
    await expect(first).rejects.toThrow('caller gave up');
    release();
    expect((await settle(clock, second)).value.revealText()).toBe('v');
    expect(store.stats.fetchCalls).toBe(1);
  });

  it('fails waiting requests and closes the client when a backend is removed', async () => {
    const { clock, store, backend, resolver } = setup();
    store.set('k', 'v');
    store.hold();
    const pending = resolver.resolve(req('k'), { maxAgeMs: 1_000 });
    const queued = resolver.resolve(req('other'), { maxAgeMs: 1_000 });
    await clock.advance(100);
    await resolver.removeBackend('b');
    await expect(pending).rejects.toMatchObject({ kind: 'Unavailable' });
    await expect(queued).rejects.toMatchObject({ kind: 'Unavailable' });
    expect(backend.closed).toBe(true);
    await expect(resolver.resolve(req('k'), { maxAgeMs: 1_000 })).rejects.toThrow(UnknownBackendError);
    expect(resolver.hasBackend('b')).toBe(false);
  });

  it('invalidates on request and sweeps idle entries', async () => {
    const { clock, store, resolver } = setup();
    store.set('a', '1');
    store.set('b', '1');
    await settle(clock, resolver.resolveAll([req('a'), req('b')], { maxAgeMs: 60_000 }));
    store.set('a', '2');
    resolver.invalidate('b', 'a');
    expect((await settle(clock, resolver.resolve(req('a'), { maxAgeMs: 60_000 }))).value.revealText()).toBe('2');
    expect(store.stats.reads).toBe(3);
    await clock.advance(30_000);
    await resolver.resolve(req('a'), { maxAgeMs: 60_000 });
    await clock.advance(31_000);
    expect(resolver.sweep(60_000)).toBe(1);
    expect(resolver.size).toBe(1);
  });

  it('does no I/O until asked', () => {
    const { store } = setup();
    expect(store.calls).toHaveLength(0);
  });
});
