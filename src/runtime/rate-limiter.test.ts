import { describe, expect, it } from '@jest/globals';
import { FakeClock } from './fake-clock.ts';
import { backoffDelay, ExponentialBackoffLimiter, MaxOfLimiter, TokenBucketLimiter } from './rate-limiter.ts';

describe('ExponentialBackoffLimiter', () => {
  it('doubles the delay per failure of a key up to the cap, and forget resets it', () => {
    const limiter = new ExponentialBackoffLimiter({ baseMs: 10, capMs: 100 });
    expect([1, 2, 3, 4, 5, 6].map(() => limiter.when('a'))).toEqual([10, 20, 40, 80, 100, 100]);
    expect(limiter.failures('a')).toBe(6);
    // Another key has its own history.
    expect(limiter.when('b')).toBe(10);
    limiter.forget('a');
    expect(limiter.failures('a')).toBe(0);
    expect(limiter.when('a')).toBe(10);
  });

  it('keeps jittered delays within [d·(1−f), d], never above the cap', () => {
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, jitter: 0.5, random: () => 0 })).toBe(400);
    expect(backoffDelay(3, { baseMs: 100, capMs: 1000, jitter: 0.5, random: () => 0.999999 })).toBeCloseTo(200, 2);
    expect(backoffDelay(20, { baseMs: 100, capMs: 1000, jitter: 0.5, random: () => 0 })).toBe(1000);
    expect(backoffDelay(5000, { baseMs: 100, capMs: 1000 })).toBe(1000);
  });

  it('refuses a cap below the base', () => {
    expect(() => new ExponentialBackoffLimiter({ baseMs: 10, capMs: 5 })).toThrow(/invalid backoff/);
  });
});

describe('TokenBucketLimiter', () => {
  it('lets a burst through, then spaces retries at the rate, and refills over time', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucketLimiter({ perSecond: 10, burst: 2, clock });
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => bucket.when(k))).toEqual([0, 0, 100, 200, 300]);
    // 3 tokens owed; after 1 s, 10 were earned: back to a full bucket (burst caps it).
    await clock.advance(1000);
    expect(bucket.when('f')).toBe(0);
    expect(bucket.when('g')).toBe(0);
    expect(bucket.when('h')).toBe(100);
  });
});

describe('MaxOfLimiter', () => {
  it('takes the longest delay of per-key backoff and the global bucket', () => {
    const clock = new FakeClock();
    const limiter = new MaxOfLimiter([
      new ExponentialBackoffLimiter({ baseMs: 10, capMs: 1000 }),
      new TokenBucketLimiter({ perSecond: 1, burst: 1, clock }),
    ]);
    expect(limiter.when('a')).toBe(10);
    // The bucket is empty now: the next retry of any key waits for a token.
    expect(limiter.when('b')).toBe(1000);
    expect(limiter.failures('a')).toBe(1);
  });
});
