import { describe, expect, it } from '@jest/globals';
import { Controller, type ControllerObserver, type ReconcileOutcome } from './controller.ts';
import { FakeClock } from './fake-clock.ts';
import { ExponentialBackoffLimiter, TokenBucketLimiter } from './rate-limiter.ts';
import { RetryError, TerminalError, type ReconcileContext, type ReconcileResult, type Reconciler } from './reconciler.ts';
import { LeadershipLostError } from './runnable.ts';

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

class RecordingObserver implements ControllerObserver {
  readonly outcomes: ReconcileOutcome[] = [];
  readonly failures: { terminal: boolean; error: unknown }[] = [];
  readonly depths: number[] = [];
  reconciled(_c: string, outcome: ReconcileOutcome): void {
    this.outcomes.push(outcome);
  }
  reconcileFailed(_c: string, error: unknown, terminal: boolean): void {
    this.failures.push({ error, terminal });
  }
  queueDepth(_c: string, depth: number): void {
    this.depths.push(depth);
  }
}

/** A reconciler built from a function, recording each call's key and time. */
class ScriptedReconciler implements Reconciler {
  readonly calls: { key: string; at: number }[] = [];
  readonly #clock: FakeClock;
  readonly #fn: (key: string, call: number, ctx: ReconcileContext) => Promise<ReconcileResult>;

  constructor(clock: FakeClock, fn: (key: string, call: number, ctx: ReconcileContext) => Promise<ReconcileResult>) {
    this.#clock = clock;
    this.#fn = fn;
  }

  reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    this.calls.push({ key, at: this.#clock.now() });
    return this.#fn(key, this.calls.filter((c) => c.key === key).length, ctx);
  }
}

function run(controller: Controller): { stop: AbortController; done: Promise<void> } {
  const stop = new AbortController();
  return { stop, done: controller.start(stop.signal) };
}

describe('Controller', () => {
  it('never reconciles one key on two workers at once, while using all workers for distinct keys', async () => {
    const clock = new FakeClock();
    const running = new Map<string, number>();
    let concurrent = 0;
    let maxConcurrent = 0;
    let overlaps = 0;
    let calls = 0;
    const reconciler: Reconciler = {
      async reconcile(key) {
        calls++;
        const same = (running.get(key) ?? 0) + 1;
        running.set(key, same);
        if (same > 1) overlaps++;
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        // Stay busy across timer ticks so other workers and re-adds interleave.
        await new Promise<void>((resolve) => clock.setTimeout(resolve, 5 + (key.charCodeAt(1) % 7)));
        concurrent--;
        running.set(key, (running.get(key) ?? 1) - 1);
        return {};
      },
    };
    const controller = new Controller({ name: 'test', reconciler, workers: 4, clock });
    const { stop, done } = run(controller);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    for (let round = 0; round < 40; round++) {
      for (const key of keys) if ((round + key.charCodeAt(1)) % 3 !== 0) controller.enqueue(key);
      await clock.advance(3);
    }
    await clock.advance(1000);
    stop.abort();
    await done;
    expect(overlaps).toBe(0);
    expect(maxConcurrent).toBe(4);
    expect(calls).toBeGreaterThan(keys.length * 5);
  });

  it('runs a key re-added while it is being reconciled exactly once more', async () => {
    const clock = new FakeClock();
    const gate = deferred();
    const reconciler = new ScriptedReconciler(clock, async (_key, call) => {
      if (call === 1) await gate.promise;
      return {};
    });
    const controller = new Controller({ name: 'test', reconciler, workers: 3, clock });
    const { stop, done } = run(controller);
    controller.enqueue('ns/a');
    await clock.flush();
    expect(reconciler.calls).toHaveLength(1);
    for (let i = 0; i < 5; i++) controller.enqueue('ns/a');
    await clock.advance(100);
    expect(reconciler.calls).toHaveLength(1);
    gate.resolve();
    await clock.advance(100);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['ns/a', 'ns/a']);
    await clock.advance(10_000);
    expect(reconciler.calls).toHaveLength(2);
    stop.abort();
    await done;
  });

  it('retries a thrown error with growing backoff, then forgets the backoff after a success', async () => {
    const clock = new FakeClock(0);
    const observer = new RecordingObserver();
    const reconciler = new ScriptedReconciler(clock, (_key, call) => {
      if (call <= 4) return Promise.reject(new Error('backend unavailable'));
      return Promise.resolve({});
    });
    const controller = new Controller({
      name: 'test',
      reconciler,
      clock,
      observer,
      rateLimiter: new ExponentialBackoffLimiter({ baseMs: 100, capMs: 250 }),
    });
    const { stop, done } = run(controller);
    controller.enqueue('a');
    await clock.advance(5000);
    expect(reconciler.calls.map((c) => c.at)).toEqual([0, 100, 300, 550, 800]);
    expect(observer.outcomes).toEqual(['error', 'error', 'error', 'error', 'success']);
    expect(controller.queue.numRequeues('a')).toBe(0);
    // A later failure starts from the base delay again.
    controller.enqueue('a');
    await clock.advance(10);
    stop.abort();
    await done;
  });

  it('retries a RetryError no later than its bound, however long the backoff has grown', async () => {
    const clock = new FakeClock(0);
    const reconciler = new ScriptedReconciler(clock, (_key, call) =>
      call <= 5 ? Promise.reject(new RetryError('BackendUnavailable', 'backend unavailable', 300)) : Promise.resolve({}),
    );
    const controller = new Controller({ name: 'test', reconciler, clock, rateLimiter: new ExponentialBackoffLimiter({ baseMs: 100, capMs: 10_000 }) });
    const { stop, done } = run(controller);
    controller.enqueue('a');
    await clock.advance(5000);
    // Backoff 100, 200, then 400 and 800 capped at 300.
    expect(reconciler.calls.map((c) => c.at)).toEqual([0, 100, 300, 600, 900, 1200]);
    stop.abort();
    await done;
  });

  it('records a TerminalError and does not retry it', async () => {
    const clock = new FakeClock();
    const observer = new RecordingObserver();
    const reconciler = new ScriptedReconciler(clock, () => Promise.reject(new TerminalError('InvalidSpec', 'spec.files is empty')));
    const controller = new Controller({ name: 'test', reconciler, clock, observer });
    const { stop, done } = run(controller);
    controller.enqueue('a');
    await clock.advance(600_000);
    expect(reconciler.calls).toHaveLength(1);
    expect(observer.outcomes).toEqual(['terminal']);
    expect(observer.failures).toHaveLength(1);
    expect(observer.failures[0]?.terminal).toBe(true);
    expect(controller.queue.delayed).toBe(0);
    stop.abort();
    await done;
  });

  it('requeues after requeueAfterMs', async () => {
    const clock = new FakeClock(0);
    const reconciler = new ScriptedReconciler(clock, (_key, call) => Promise.resolve(call < 3 ? { requeueAfterMs: 30_000 } : {}));
    const observer = new RecordingObserver();
    const controller = new Controller({ name: 'test', reconciler, clock, observer });
    const { stop, done } = run(controller);
    controller.enqueue('a');
    await clock.advance(200_000);
    expect(reconciler.calls.map((c) => c.at)).toEqual([0, 30_000, 60_000]);
    expect(observer.outcomes).toEqual(['requeue', 'requeue', 'success']);
    stop.abort();
    await done;
  });

  it('spaces retries of many failing keys by the global rate limit', async () => {
    const clock = new FakeClock(0);
    const reconciler = new ScriptedReconciler(clock, (_key, call) => (call === 1 ? Promise.reject(new Error('x')) : Promise.resolve({})));
    const controller = new Controller({
      name: 'test',
      reconciler,
      clock,
      workers: 4,
      rateLimiter: new TokenBucketLimiter({ perSecond: 2, burst: 1, clock }),
    });
    const { stop, done } = run(controller);
    for (const key of ['a', 'b', 'c', 'd']) controller.enqueue(key);
    await clock.advance(10_000);
    const retries = reconciler.calls.filter((c) => c.at > 0).map((c) => c.at);
    expect(retries).toEqual([500, 1000, 1500]);
    expect(reconciler.calls.filter((c) => c.at === 0)).toHaveLength(5);
    stop.abort();
    await done;
  });

  it('waits for its caches to sync before reconciling', async () => {
    const clock = new FakeClock();
    let synced = false;
    const reconciler = new ScriptedReconciler(clock, () => Promise.resolve({}));
    const controller = new Controller({
      name: 'test',
      reconciler,
      clock,
      waitForSync: [{ name: 'pods', hasSynced: () => synced, staleness: () => 0 }],
    });
    const { stop, done } = run(controller);
    controller.enqueue('a');
    await clock.advance(1000);
    expect(reconciler.calls).toHaveLength(0);
    synced = true;
    await clock.advance(100);
    expect(reconciler.calls).toHaveLength(1);
    stop.abort();
    await done;
  });

  it('on stop drains queued keys, then resolves', async () => {
    const clock = new FakeClock();
    const gate = deferred();
    const reconciler = new ScriptedReconciler(clock, async (key) => {
      if (key === 'a') await gate.promise;
      return {};
    });
    const controller = new Controller({ name: 'test', reconciler, clock, drainTimeoutMs: 5000 });
    const { stop, done } = run(controller);
    for (const key of ['a', 'b', 'c']) controller.enqueue(key);
    await clock.flush();
    stop.abort();
    controller.enqueue('d'); // refused: stopping
    await clock.advance(1000);
    gate.resolve();
    await clock.advance(10);
    await done;
    expect(reconciler.calls.map((c) => c.key)).toEqual(['a', 'b', 'c']);
  });

  it('on stop aborts reconciles that outlive the drain deadline and drops the rest', async () => {
    const clock = new FakeClock(0);
    let abortedAt: number | undefined;
    const reconciler = new ScriptedReconciler(
      clock,
      (_key, _call, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            abortedAt = clock.now();
            resolve({});
          });
        }),
    );
    const controller = new Controller({ name: 'test', reconciler, clock, drainTimeoutMs: 5000 });
    const { stop, done } = run(controller);
    controller.enqueue('a');
    controller.enqueue('b');
    await clock.flush();
    stop.abort();
    await clock.advance(4999);
    expect(abortedAt).toBeUndefined();
    await clock.advance(1);
    await done;
    expect(abortedAt).toBe(5000);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['a']);
  });
});

describe('Controller on lost leadership', () => {
  it('stops at once: aborts running reconciles and drops queued keys', async () => {
    const clock = new FakeClock(0);
    let abortReason: unknown;
    const reconciler = new ScriptedReconciler(
      clock,
      (_key, _call, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            abortReason = ctx.signal.reason;
            resolve({});
          });
        }),
    );
    const controller = new Controller({ name: 'test', reconciler, clock, drainTimeoutMs: 5000 });
    const stop = new AbortController();
    const done = controller.start(stop.signal);
    controller.enqueue('a');
    controller.enqueue('b');
    await clock.flush();
    stop.abort(new LeadershipLostError());
    await clock.flush();
    await done;
    expect(abortReason).toBeInstanceOf(LeadershipLostError);
    expect(reconciler.calls.map((c) => c.key)).toEqual(['a']);
    expect(clock.now()).toBe(0);
  });
});

describe('Controller observer', () => {
  it('keeps reconciling when the observer throws', async () => {
    const clock = new FakeClock();
    const reconciler = new ScriptedReconciler(clock, () => Promise.resolve({}));
    const broken: ControllerObserver = {
      reconciled: () => {
        throw new Error('metrics bug');
      },
      reconcileFailed: () => undefined,
      queueDepth: () => {
        throw new Error('metrics bug');
      },
    };
    const controller = new Controller({ name: 'test', reconciler, clock, observer: broken, workers: 1 });
    const stop = new AbortController();
    const done = controller.start(stop.signal);
    controller.enqueue('a');
    controller.enqueue('b');
    await clock.flush();
    expect(reconciler.calls.map((c) => c.key)).toEqual(['a', 'b']);
    stop.abort();
    await done;
  });
});
