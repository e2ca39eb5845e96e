import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { createBackendMetrics } from '../../backends/backends.metrics.ts';
import { FakeBackend } from '../../backends/fake/fake.backend.ts';
import { FakeSecretStore } from '../../backends/fake/fake.store.ts';
import { SecretResolver } from '../../backends/resolver/resolver.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { silentLogger } from '../../runtime/logger.ts';
import { KeyPoller } from './key-poller.ts';

/**
 * The key poller (ADR 0203): one version check per secret in use and interval, whatever the
 * number of bindings reading it; a binding is queued only when the version it holds is no longer
 * the current one, or the check failed. The resolver is the real one over the in-memory store
 * behind our own backend port.
 */

const latest = { kind: 'latest' } as const;
const minute = 60_000;

async function setup() {
  const clock = new FakeClock();
  const store = new FakeSecretStore({ clock });
  const v1 = store.set('db', 'one');
  store.set('api', 'key');
  const resolver = new SecretResolver({ clock, metrics: createBackendMetrics(new Registry()), contentKey: SecretValue.fromString('content-key-for-tests-0123456789'), random: () => 0.5, retry: { maxAttempts: 1, baseMs: 1, capMs: 1 } });
  resolver.addBackend('vault', new FakeBackend(store), { qps: 1000, burst: 1000, maxConcurrency: 10 });
  const queued: string[] = [];
  const poller = new KeyPoller({
    checkVersions: (backendId, refs, options) => resolver.checkVersions(backendId, refs, options),
    enqueue: (key) => queued.push(key),
    clock,
    random: () => 0.5,
    logger: silentLogger,
  });
  // What the bindings' reconciles read first.
  const read = async (key: string): Promise<string> => {
    const p = resolver.resolve({ backendId: 'vault', ref: { key, version: latest } }, { maxAgeMs: minute });
    await clock.advance(20);
    return (await p).version;
  };
  const versions = { db: await read('db'), api: await read('api') };
  expect(versions.db).toBe(v1);
  /** Advances time in poll ticks, letting the checks the poller starts finish. */
  const run = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 250) {
      poller.pollDue();
      await clock.advance(250);
    }
  };
  const checks = (): number => store.stats.versionChecks;
  return { clock, store, poller, queued, versions, run, checks };
}

describe('the key poller (ADR 0203)', () => {
  it('checks each secret once per interval, however many bindings read it, and queues nobody while nothing moves', async () => {
    const { poller, queued, versions, run, checks } = await setup();
    for (let i = 0; i < 50; i++) poller.track(`app/b-${String(i)}`, [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: versions.db }], minute);
    poller.track('app/api', [{ backendId: 'vault', ref: { key: 'api', version: latest }, version: versions.api }], minute);
    expect(poller.size).toBe(2);
    const before = checks();
    await run(3 * minute);
    const perKey = (checks() - before) / 2;
    expect(perKey).toBeGreaterThanOrEqual(3);
    expect(perKey).toBeLessThanOrEqual(4);
    expect(queued).toEqual([]);
  });

  it('queues the bindings of a secret that moved, and only those', async () => {
    const { store, poller, queued, versions, run } = await setup();
    poller.track('app/a', [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: versions.db }], minute);
    poller.track('app/b', [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: versions.db }], minute);
    poller.track('app/c', [{ backendId: 'vault', ref: { key: 'api', version: latest }, version: versions.api }], minute);
    store.set('db', 'two');
    await run(minute + 1000);
    expect([...new Set(queued)].sort()).toEqual(['app/a', 'app/b']);
  });

  it('queues a binding that still holds an old version another reader already saw', async () => {
    const { store, poller, queued, versions, run } = await setup();
    const v2 = store.set('db', 'two');
    // Binding b concluded on the new version (its reconcile read it); a still holds the old one.
    poller.track('app/a', [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: versions.db }], minute);
    poller.track('app/b', [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: v2 }], minute);
    await run(minute + 1000);
    expect([...new Set(queued)]).toEqual(['app/a']);
  });

  it('queues the bindings of a secret whose check fails, and forgets untracked bindings', async () => {
    const { store, poller, queued, versions, run } = await setup();
    poller.track('app/a', [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: versions.db }], minute);
    poller.track('app/gone', [{ backendId: 'vault', ref: { key: 'db', version: latest }, version: versions.db }], minute);
    poller.untrack('app/gone');
    store.failWith({ kind: 'Unavailable' });
    await run(minute + 1000);
    expect([...new Set(queued)]).toEqual(['app/a']);
    poller.untrack('app/a');
    expect(poller.size).toBe(0);
  });
});
