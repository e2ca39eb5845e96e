import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { sleep } from './clock.ts';
import { FakeClock } from './fake-clock.ts';
import { FakeLeaseStore } from './fake-lease-store.ts';
import { HealthServer } from './health-server.ts';
import { Manager, shutdownSignal } from './manager.ts';
import { LeadershipLostError, type Runnable } from './runnable.ts';

/** A runnable that records its life in a shared log; it may take time to stop, or fail. */
class Probe implements Runnable {
  readonly name: string;
  readonly needLeaderElection: boolean;
  readonly #log: string[];
  readonly #clock: FakeClock;
  readonly #stopTakesMs: number;
  stopReason: unknown;
  failNow: ((error: Error) => void) | undefined;

  constructor(name: string, needLeaderElection: boolean, log: string[], clock: FakeClock, stopTakesMs = 0) {
    this.name = name;
    this.needLeaderElection = needLeaderElection;
    this.#log = log;
    this.#clock = clock;
    this.#stopTakesMs = stopTakesMs;
  }

  async start(signal: AbortSignal): Promise<void> {
    this.#log.push(`start ${this.name}`);
    await new Promise<void>((resolve, reject) => {
      this.failNow = reject;
      signal.addEventListener('abort', () => {
        resolve();
      });
    });
    this.stopReason = signal.reason;
    if (this.#stopTakesMs > 0) await sleep(this.#clock, this.#stopTakesMs);
    this.#log.push(`stop ${this.name}`);
  }
}

const election = (store: FakeLeaseStore, identity: string) => ({
  store: store.view(),
  identity,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
});

describe('Manager', () => {
  it('without leader election runs everything, and stops leader runnables before the others', async () => {
    const clock = new FakeClock(0);
    const log: string[] = [];
    const manager = new Manager({ clock });
    manager.add(new Probe('cache', false, log, clock));
    manager.add(new Probe('writer', true, log, clock, 100));
    const stop = new AbortController();
    const run = manager.run(stop.signal);
    await clock.flush();
    expect(log).toEqual(['start cache', 'start writer']);
    expect(manager.isLeader()).toBe(true);
    stop.abort();
    await clock.advance(100);
    await run;
    expect(log.slice(2)).toEqual(['stop writer', 'stop cache']);
  });

  it('runs leader runnables on one replica only; a graceful stop hands over within a retry period', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const logA: string[] = [];
    const logB: string[] = [];
    const leaderChanges: boolean[] = [];
    const a = new Manager({ clock, leaderElection: election(store, 'a'), observer: { leaderChanged: (l) => leaderChanges.push(l) } });
    const b = new Manager({ clock, leaderElection: election(store, 'b') });
    for (const [m, log] of [
      [a, logA],
      [b, logB],
    ] as const) {
      m.add(new Probe('cache', false, log, clock));
      m.add(new Probe('writer', true, log, clock));
    }
    const stopA = new AbortController();
    const stopB = new AbortController();
    const runA = a.run(stopA.signal);
    await clock.flush();
    const runB = b.run(stopB.signal);
    await clock.advance(30_000);
    expect(logA).toEqual(['start cache', 'start writer']);
    expect(logB).toEqual(['start cache']);
    expect(store.holder).toBe('a');

    stopA.abort();
    await clock.flush();
    await runA;
    expect(logA.slice(2)).toEqual(['stop writer', 'stop cache']);
    expect(store.holder).toBeUndefined();
    expect(leaderChanges).toEqual([true, false]);
    await clock.advance(2_500);
    expect(logB).toEqual(['start cache', 'start writer']);
    expect(b.isLeader()).toBe(true);
    stopB.abort();
    await clock.flush();
    await runB;
  });

  it('on a lost lease stops leader runnables at once with LeadershipLostError, stops the rest and rejects', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const log: string[] = [];
    const options = election(store, 'a');
    const manager = new Manager({ clock, leaderElection: options });
    const writer = new Probe('writer', true, log, clock);
    manager.add(new Probe('cache', false, log, clock));
    manager.add(writer);
    const run = manager.run(new AbortController().signal);
    const outcome = run.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await clock.advance(3_000);
    options.store.broken = true;
    await clock.advance(12_000);
    expect(await outcome).toBeInstanceOf(LeadershipLostError);
    expect(writer.stopReason).toBeInstanceOf(LeadershipLostError);
    expect(log).toEqual(['start cache', 'start writer', 'stop writer', 'stop cache']);
  });

  it('stops everything and rejects when a runnable fails', async () => {
    const clock = new FakeClock(0);
    const log: string[] = [];
    const manager = new Manager({ clock });
    const cache = new Probe('cache', false, log, clock);
    manager.add(cache);
    manager.add(new Probe('writer', true, log, clock));
    const run = manager.run(new AbortController().signal);
    const outcome = run.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await clock.flush();
    cache.failNow?.(new Error('watch permission denied'));
    await clock.flush();
    expect(await outcome).toEqual(new Error('watch permission denied'));
    expect(log).toEqual(['start cache', 'start writer', 'stop writer']);
  });

  it('does not release the lease when a leader runnable outlives the shutdown budget', async () => {
    const clock = new FakeClock(0);
    const store = new FakeLeaseStore();
    const log: string[] = [];
    const manager = new Manager({ clock, leaderElection: election(store, 'a'), shutdownTimeoutMs: 5_000 });
    manager.add(new Probe('writer', true, log, clock, 60_000));
    const stop = new AbortController();
    const run = manager.run(stop.signal);
    await clock.flush();
    stop.abort();
    await clock.advance(5_000);
    await run;
    expect(store.holder).toBe('a');
    await clock.advance(60_000);
  });

  it('names only the runnables still running when the shutdown budget runs out', async () => {
    const clock = new FakeClock(0);
    const log: string[] = [];
    const warnings: { message: string; fields: unknown }[] = [];
    const logger = { debug: () => undefined, info: () => undefined, error: () => undefined, warn: (message: string, fields?: unknown) => warnings.push({ message, fields }) };
    const manager = new Manager({ clock, logger, shutdownTimeoutMs: 5_000 });
    manager.add(new Probe('informer', false, log, clock));
    manager.add(new Probe('broker', false, log, clock, 60_000));
    const stop = new AbortController();
    const run = manager.run(stop.signal);
    await clock.flush();
    stop.abort();
    await clock.advance(5_000);
    await run;
    expect(warnings).toEqual([{ message: 'runnables did not stop in time', fields: { runnables: ['broker'] } }]);
    await clock.advance(60_000);
  });

  it('fails /readyz while shutting down and until informers have synced', async () => {
    const clock = new FakeClock(0);
    const health = new HealthServer({ port: 0, registry: new Registry() });
    const manager = new Manager({ clock, health, maxInformerStalenessMs: 60_000 });
    let synced = false;
    const informer: Runnable & { hasSynced(): boolean; staleness(): number } = {
      name: 'pods',
      needLeaderElection: false,
      hasSynced: () => synced,
      staleness: () => (synced ? 1_000 : Infinity),
      start: (signal) =>
        new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => {
            resolve();
          });
        }),
    };
    manager.addInformer(informer);
    manager.add(new Probe('writer', true, [], clock, 1_000));
    const stop = new AbortController();
    const run = manager.run(stop.signal);
    await clock.flush();
    const readyz = async (): Promise<[number, string]> => {
      const res = await fetch(`http://127.0.0.1:${health.port}/readyz`);
      return [res.status, await res.text()];
    };
    expect(await readyz()).toEqual([503, '[-]informer:pods: not synced\n1 check(s) failed\n']);
    synced = true;
    expect((await readyz())[0]).toBe(200);
    const port = health.port;
    stop.abort();
    await clock.flush();
    // Still draining the writer: the health server answers, and says not ready.
    expect(await readyz()).toEqual([503, '[-]shutdown: shutting down\n1 check(s) failed\n']);
    await clock.advance(1_000);
    await run;
    await expect(fetch(`http://127.0.0.1:${port}/readyz`)).rejects.toThrow();
  });
});

describe('shutdownSignal', () => {
  it('aborts on the first signal and keeps handling the next ones until disposed (a second SIGTERM must not kill the stop)', () => {
    const target = new EventEmitter();
    const shutdown = shutdownSignal(['SIGTERM'], target as unknown as Pick<NodeJS.Process, 'on' | 'off'>);
    expect(shutdown.signal.aborted).toBe(false);
    target.emit('SIGTERM', 'SIGTERM');
    expect(shutdown.signal.aborted).toBe(true);
    expect((shutdown.signal.reason as Error).message).toBe('received SIGTERM');
    // Still handled: without a listener, Node's default action for the second one would exit.
    expect(target.listenerCount('SIGTERM')).toBe(1);
    target.emit('SIGTERM', 'SIGTERM');
    shutdown.dispose();
    expect(target.listenerCount('SIGTERM')).toBe(0);
  });
});
