import { describe, expect, it } from '@jest/globals';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { TokenBucket } from './token-bucket.ts';

async function takeTimes(clock: FakeClock, bucket: TokenBucket, costs: readonly number[]): Promise<number[]> {
  const start = clock.now();
  const times: number[] = [];
  const all = Promise.all(costs.map((cost) => bucket.take(cost).then(() => times.push(clock.now() - start))));
  await clock.advance(60_000);
  await all;
  return times;
}

describe('TokenBucket', () => {
  it('allows the burst at once, then spaces takes at the rate, in order', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 4, burst: 2, clock });
    expect(await takeTimes(clock, bucket, [1, 1, 1, 1, 1])).toEqual([0, 0, 250, 500, 750]);
  });

  it('charges weighted takes', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 10, clock });
    expect(await takeTimes(clock, bucket, [10, 5, 5])).toEqual([0, 500, 1000]);
  });

  it('holds every take during a pause and resumes without a burst', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 10, burst: 5, clock });
    bucket.pauseUntil(clock.now() + 2_000);
    expect(bucket.pausedUntil).toBe(clock.now() + 2_000);
    expect(await takeTimes(clock, bucket, [1, 1, 1])).toEqual([2_100, 2_200, 2_300]);
    expect(bucket.pausedUntil).toBe(0);
  });

  it('stops waiting when aborted', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket({ qps: 1, burst: 1, clock });
    await bucket.take(1);
    const aborter = new AbortController();
    const waiting = bucket.take(1, aborter.signal);
    aborter.abort();
    await expect(waiting).resolves.toBe(false);
  });

  it('refuses a rate that would never refill', () => {
    const clock = new FakeClock();
    expect(() => new TokenBucket({ qps: 0, burst: 1, clock })).toThrow(RangeError);
    expect(() => new TokenBucket({ qps: 1, burst: 0, clock })).toThrow(RangeError);
  });
});
