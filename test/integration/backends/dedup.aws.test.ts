import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProxiedRequest } from '../../harness/fault-proxy.ts';
import { MotoFleet } from './backends.support.ts';

/**
 * Acceptance of the "Backends" issue, AWS Secrets Manager (moto): 200 SecretBindings in 20
 * namespaces read the same 10 secrets through ONE ClusterSecretBackend whose endpoint is a
 * counting proxy in front of moto. The proxy's log (`X-Amz-Target` names the operation) is the
 * witness: values are read in batches of at most 20 ids, at most one batch per refresh.
 */

const namespaces = 20;
const bindingsPerNamespace = 10;
const keyCount = 10;
const refreshSeconds = 10;
const refreshesObserved = 3;

function operations(requests: readonly ProxiedRequest[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of requests) {
    const op = r.target.replace(/^secretsmanager\./, '') || `${r.method} ${r.path}`;
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}

describe('deduplication of backend calls on AWS Secrets Manager (200 bindings, 10 keys, one ClusterSecretBackend)', () => {
  const name = `dedup-aws-${randomBytes(3).toString('hex')}`;
  const keys = Array.from({ length: keyCount }, (_, i) => `${name}/k${i}`);
  const moto = new MotoFleet(name, keys);

  afterAll(async () => {
    await moto.cleanup();
  }, 120_000);

  it('reads each of the 10 secrets once, in batches of at most 20 ids, and no batch per refresh while versions stand still', async () => {
    const { fleet, proxy } = await moto.start({ namespaces, bindingsPerNamespace, backend: { refreshInterval: `${refreshSeconds}s` } });

    const startedAt = Date.now();
    fleet.startController();
    await fleet.waitAllReady(180_000);
    const readyAt = Date.now();
    const readyMs = readyAt - startedAt;
    await sleep(refreshesObserved * refreshSeconds * 1000);
    const elapsedMs = Date.now() - startedAt;
    const requests = proxy.requests();
    const counts = operations(requests);
    process.stdout.write(`dedup aws: ${fleet.total} bindings, ${keyCount} keys, Ready after ${readyMs} ms; over ${elapsedMs} ms: ${JSON.stringify(counts)}\n`);

    const batchCalls = requests.filter((r) => r.target === 'secretsmanager.BatchGetSecretValue');
    const batches = batchCalls.length;
    const idsRead = batchCalls.flatMap((r) => r.secretIds).sort();
    const batchesAfterReady = batchCalls.filter((r) => r.at >= readyAt).length;
    const singles = counts['GetSecretValue'] ?? 0;
    const describes = requests.filter((r) => r.target === 'secretsmanager.DescribeSecret');
    const versionChecks = describes.filter((r) => r.secretIds.some((id) => id.startsWith(`${name}/`))).length;
    const connectivityChecks = describes.length - versionChecks;
    process.stdout.write(
      `dedup aws: batch sizes ${JSON.stringify(batchCalls.map((r) => r.secretIds.length))}, ${idsRead.length} ids read, ` +
        `${batchesAfterReady} batches after Ready, ${versionChecks} version checks (DescribeSecret of a key), ${connectivityChecks} connectivity checks\n`,
    );
    const intervals = Math.ceil(elapsedMs / (refreshSeconds * 1000));
    // Values: each of the 10 secrets read exactly once (versions did not change), by batches of at
    // most 20 ids, never by single reads. Bindings start over a few hundred ms, so the first reads
    // may go out as a few batches (a batch waits 10 ms for company) while each key is still read
    // once. Over the 3 refreshes after Ready, at most one batch per refresh is the ceiling.
    expect(idsRead).toEqual([...keys].sort());
    expect(batchCalls.every((r) => r.secretIds.length >= 1 && r.secretIds.length <= 20)).toBe(true);
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(batchesAfterReady).toBeLessThanOrEqual(refreshesObserved);
    expect(batchesAfterReady).toBe(0);
    expect(singles).toBe(0);
    // Version checks: one DescribeSecret per key per refresh; twice that leaves room for phase
    // drift between bindings (one per binding would be 20 times it).
    expect(versionChecks).toBeGreaterThan(0);
    expect(versionChecks).toBeLessThanOrEqual(2 * keyCount * (intervals + 1));
    // The backend's own check: about one per refresh interval.
    expect(connectivityChecks).toBeLessThanOrEqual(intervals + 1);
    // Nothing else was asked (credentials are static keys, no STS).
    expect(Object.keys(counts).sort()).toEqual(['BatchGetSecretValue', 'DescribeSecret']);
  }, 300_000);
});
