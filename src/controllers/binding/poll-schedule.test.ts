import { describe, expect, it } from '@jest/globals';
import { pollSchedule } from './binding-content.ts';

describe('pollSchedule', () => {
  it.each([
    [1_000, 900, 950],
    [10_000, 9_000, 9_500],
    [3_600_000, 3_599_000, 3_599_500],
  ])('refreshInterval %d ms: confirmed for %d ms, next reconcile within [%d…]', (refreshMs, confirmedFor, latest) => {
    expect(pollSchedule(refreshMs, () => 0)).toEqual({ confirmedForMs: confirmedFor, nextInMs: confirmedFor });
    expect(pollSchedule(refreshMs, () => 0.999_999).nextInMs).toBeCloseTo(latest, 0);
  });

  it('never reconciles before the cache expires, and leaves half the slack for the reconcile itself', () => {
    for (const refreshMs of [1_000, 10_000, 30_000, 300_000, 86_400_000]) {
      for (const r of [0, 0.25, 0.5, 0.75, 0.999]) {
        const { confirmedForMs, nextInMs } = pollSchedule(refreshMs, () => r);
        // A reconcile at nextInMs finds the entry older than confirmedForMs, so it checks.
        expect(nextInMs).toBeGreaterThanOrEqual(confirmedForMs);
        const slack = refreshMs - confirmedForMs;
        expect(slack).toBeGreaterThan(0);
        expect(slack).toBeLessThanOrEqual(1_000);
        expect(refreshMs - nextInMs).toBeGreaterThanOrEqual(slack / 2 - 1e-9);
      }
    }
  });
});
