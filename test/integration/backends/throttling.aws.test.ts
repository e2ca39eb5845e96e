import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProxiedRequest } from '../../harness/fault-proxy.ts';
import { condition, MotoFleet, summary, type Obj } from './backends.support.ts';

/**
 * Acceptance of the "Backends" issue, throttling: the proxy in front of moto answers every call
 * with AWS's ThrottlingException for a whole window. The controller keeps to the backend's rate
 * budget (no tight loop), bindings keep their last-known-good content (Ready=True, same content
 * HMAC) and say Degraded=True reason Throttled, and recover once the store answers again.
 */

/** The throttling window; 60 s is the acceptance value. */
const throttleWindowMs = 60_000;
const rateLimit = { qps: 2, burst: 2 };
const refreshSeconds = 10;
/**
 * Two keys: the budget is charged per secret reference, and a version check of n references is
 * n DescribeSecret calls released together once their n tokens are paid for; with n ≤ burst
 * that is within "qps·1 s + burst" in every second.
 */
const keys = 2;
/**
 * Recovery bound: a failed entry is not asked again before its hold time, which never exceeds the
 * asker's refresh interval since the failure (ADR 0106), and a binding looks again at its next
 * refresh. So the store answering again shows within two refresh intervals (plus a few seconds
 * for one call with its retries and the status write).
 */
const recoveryBoundMs = 2 * refreshSeconds * 1000 + 5_000;

/** The most requests in any window of `windowMs` (sliding, starting at each request). */
function busiestWindow(requests: readonly ProxiedRequest[], windowMs: number): number {
  let most = 0;
  let j = 0;
  for (let i = 0; i < requests.length; i++) {
    const start = requests[i]?.at ?? 0;
    while (j < requests.length && (requests[j]?.at ?? 0) < start + windowMs) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

function hmacs(bindings: readonly Obj[]): Map<string, string> {
  return new Map(bindings.map((b) => [`${b.metadata?.namespace ?? ''}/${b.metadata?.name ?? ''}`, b.status?.contentHmac ?? '']));
}

describe('throttling on AWS Secrets Manager (moto behind a throttling proxy)', () => {
  const name = `throttle-aws-${randomBytes(3).toString('hex')}`;
  const secretIds = Array.from({ length: keys }, (_, i) => `${name}/k${i}`);
  const moto = new MotoFleet(name, secretIds);

  afterAll(async () => {
    await moto.cleanup();
  }, 120_000);

  it(`keeps to the rate budget through ${throttleWindowMs / 1000} s of ThrottlingException, serves last-known-good (Degraded=Throttled), and recovers`, async () => {
    const { fleet, proxy } = await moto.start({ namespaces: 2, bindingsPerNamespace: 5, backend: { refreshInterval: `${refreshSeconds}s`, rateLimit } });
    fleet.startController();
    const before = hmacs(await fleet.waitAllReady(120_000));
    expect([...before.values()].every((h) => /^hmac-sha256:[0-9a-f]{64}$/.test(h))).toBe(true);

    // The window: every call is throttled.
    proxy.setMode({ kind: 'throttle' });
    const throttleStart = Date.now();
    let degradedAfterMs: number | undefined;
    let readyThroughout = true;
    let sameContentThroughout = true;
    let lastSeen = '';
    while (Date.now() - throttleStart < throttleWindowMs) {
      const bindings = await fleet.bindings();
      lastSeen = summary(bindings);
      if (!bindings.every((b) => condition(b, 'Ready')?.status === 'True')) readyThroughout = false;
      const now = hmacs(bindings);
      if ([...before].some(([key, h]) => now.get(key) !== h)) sameContentThroughout = false;
      if (
        degradedAfterMs === undefined &&
        bindings.length === fleet.total &&
        bindings.every((b) => condition(b, 'Degraded')?.status === 'True' && condition(b, 'Degraded')?.reason === 'Throttled')
      ) {
        degradedAfterMs = Date.now() - throttleStart;
      }
      await sleep(1_000);
    }
    const throttled = proxy.requests().filter((r) => r.at >= throttleStart);
    const degradedAtEnd = summary(await fleet.bindings());
    proxy.setMode({ kind: 'forward' });
    const recoverStart = Date.now();
    await fleet.waitFor(
      'every binding Degraded=False after the throttling ended',
      (bindings) => bindings.every((b) => condition(b, 'Degraded')?.status === 'False' && condition(b, 'Ready')?.status === 'True'),
      recoveryBoundMs + 30_000,
    );
    const recoveryMs = Date.now() - recoverStart;
    const after = hmacs(await fleet.bindings());

    const busiest = busiestWindow(throttled, 1_000);
    const perSecondBudget = rateLimit.qps * 1 + rateLimit.burst;
    const windowBudget = Math.ceil((rateLimit.qps * throttleWindowMs) / 1000) + rateLimit.burst;
    process.stdout.write(
      `throttling aws: window ${throttleWindowMs} ms, ${throttled.length} calls (${JSON.stringify(countTargets(throttled))}), ` +
        `busiest second ${busiest} (budget ${perSecondBudget}), Degraded=Throttled after ${degradedAfterMs ?? '-'} ms, ` +
        `at the end: ${degradedAtEnd}; recovered in ${recoveryMs} ms (bound ${recoveryBoundMs} ms)\n`,
    );

    // The budget held: no second with more than qps·1 s + burst calls, nor the window in total.
    expect(throttled.length).toBeGreaterThan(0);
    expect(throttled.every((r) => r.throttled)).toBe(true);
    expect(busiest).toBeLessThanOrEqual(perSecondBudget);
    expect(throttled.length).toBeLessThanOrEqual(windowBudget);
    // Last-known-good: Ready stayed True with the same content; Degraded said Throttled.
    expect(readyThroughout).toBe(true);
    expect(sameContentThroughout).toBe(true);
    expect({ degradedAfterMs, lastSeen }).toEqual({ degradedAfterMs: expect.any(Number), lastSeen });
    // Recovered within two refresh intervals, content unchanged (the secrets did not change).
    expect(recoveryMs).toBeLessThanOrEqual(recoveryBoundMs);
    expect(after).toEqual(before);
  }, 360_000);
});

function countTargets(requests: readonly ProxiedRequest[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of requests) {
    const op = r.target.replace(/^secretsmanager\./, '') || r.method;
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}
