import { describe, expect, it } from '@jest/globals';
import { FakeClock } from './fake-clock.ts';
import { ExponentialBackoffLimiter, TokenBucketLimiter } from './rate-limiter.ts';
import { WorkQueue } from './workqueue.ts';

/** Resolves to the settled value of `p` if it settles within the pending microtasks, else 'pending'. */
async function peek<T>(clock: FakeClock, p: Promise<T>): Promise<T | 'pending'> {
  let result: T | 'pending' = 'pending';
  void p.then((v) => {
    result = v;
  });
  await clock.flush();
  return result;
}

describe('WorkQueue', () => {
  it('deduplicates a key queued several times', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add('a');
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.depth).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(await peek(clock, q.get())).toBe('pending');
  });

  it('never hands a key to a second worker while the first holds it', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add('a');
    expect(await q.get()).toBe('a');
    q.add('a');
    const second = q.get();
    expect(await peek(clock, second)).toBe('pending');
    expect(q.depth).toBe(0);
    q.done('a');
    expect(await second).toBe('a');
  });

  it('processes a key re-added while running exactly once more, however often it was re-added', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add('a');
    expect(await q.get()).toBe('a');
    for (let i = 0; i < 5; i++) q.add('a');
    q.done('a');
    expect(q.depth).toBe(1);
    expect(await q.get()).toBe('a');
    q.done('a');
    expect(q.depth).toBe(0);
    expect(await peek(clock, q.get())).toBe('pending');
  });

  it('hands keys to blocked workers in order', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    const w1 = q.get();
    const w2 = q.get();
    q.add('x');
    q.add('y');
    expect(await w1).toBe('x');
    expect(await w2).toBe('y');
  });

  it('addAfter queues the key after the delay, and an earlier pending delay wins', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.addAfter('a', 1000);
    q.addAfter('a', 5000); // later: ignored
    q.addAfter('b', 3000);
    q.addAfter('b', 500); // earlier: replaces
    expect(q.delayed).toBe(2);
    await clock.advance(499);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(await q.get()).toBe('b');
    await clock.advance(499);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(await q.get()).toBe('a');
    await clock.advance(10_000);
    expect(q.depth).toBe(0);
  });

  it('addRateLimited backs a key off exponentially up to the cap; forget resets it', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, rateLimiter: new ExponentialBackoffLimiter({ baseMs: 100, capMs: 400 }) });
    const observed: number[] = [];
    for (let i = 0; i < 5; i++) {
      const before = clock.now();
      q.addRateLimited('a');
      let waited = 0;
      while (q.depth === 0) {
        await clock.advance(10);
        waited += 10;
        if (waited > 10_000) throw new Error('never queued');
      }
      observed.push(clock.now() - before);
      expect(await q.get()).toBe('a');
      q.done('a');
    }
    expect(observed).toEqual([100, 200, 400, 400, 400]);
    expect(q.numRequeues('a')).toBe(5);
    q.forget('a');
    expect(q.numRequeues('a')).toBe(0);
    q.addRateLimited('a');
    await clock.advance(99);
    expect(q.depth).toBe(0);
    await clock.advance(1);
    expect(q.depth).toBe(1);
  });

  it('honours the global rate limit across keys', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock, rateLimiter: new TokenBucketLimiter({ perSecond: 10, burst: 2, clock }) });
    for (const key of ['a', 'b', 'c', 'd', 'e']) q.addRateLimited(key);
    await clock.flush();
    expect(q.depth).toBe(2);
    await clock.advance(100);
    expect(q.depth).toBe(3);
    await clock.advance(99);
    expect(q.depth).toBe(3);
    await clock.advance(1);
    expect(q.depth).toBe(4);
    await clock.advance(100);
    expect(q.depth).toBe(5);
  });

  it('reports its depth through the hook', async () => {
    const clock = new FakeClock();
    const depths: number[] = [];
    const q = new WorkQueue({ clock, onDepthChange: (d) => depths.push(d) });
    q.add('a');
    q.add('b');
    q.add('a');
    await q.get();
    await q.get();
    expect(depths).toEqual([1, 2, 1, 0]);
  });

  it('drain: hands out what was queued, refuses new keys and delayed keys, resolves when all are done', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add('a');
    q.add('b');
    q.addAfter('later', 1000);
    expect(await q.get()).toBe('a');
    q.add('a'); // re-added while running, before shutdown: still runs once more
    const drained = q.shutdown('drain');
    q.add('c');
    expect(q.depth).toBe(1);
    expect(await peek(clock, drained)).toBe('pending');
    expect(await q.get()).toBe('b');
    q.done('b');
    q.done('a');
    expect(await q.get()).toBe('a');
    // A blocked worker is released once nothing more can come.
    const blocked = q.get();
    expect(await peek(clock, blocked)).toBe('pending');
    q.done('a');
    expect(await blocked).toBeUndefined();
    await drained;
    await clock.advance(2000);
    expect(q.depth).toBe(0);
    expect(await q.get()).toBeUndefined();
  });

  it('stop: drops queued keys, releases blocked workers, resolves when in-flight keys are done', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue({ clock });
    q.add('a');
    q.add('b');
    expect(await q.get()).toBe('a');
    const stopped = q.shutdown('stop');
    expect(q.depth).toBe(0);
    expect(await q.get()).toBeUndefined();
    expect(await peek(clock, stopped)).toBe('pending');
    q.add('a');
    q.done('a');
    await stopped;
    expect(await q.get()).toBeUndefined();
  });
});
