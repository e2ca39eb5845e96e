import { describe, expect, it } from '@jest/globals';
import { runCrdFuzz } from './crd-fuzz.ts';

/**
 * Fuzz 1 of issue #15 item 7 in CI: a few hundred random SecretBindings and backends against the
 * real API server and an in-process controller (crd-fuzz.ts); `npm run bench -- fuzz` runs 10,000.
 * SECRET_BINDER_FUZZ_CASES and SECRET_BINDER_FUZZ_SEED override the count and replay a seed.
 */

const cases = Number(process.env.SECRET_BINDER_FUZZ_CASES ?? '200');
const seed = process.env.SECRET_BINDER_FUZZ_SEED;

describe('random custom resources against the API server and the controller', () => {
  it(`${String(cases)} objects: each refused by the schema or CEL, or reconciled to a reason of the closed list`, async () => {
    const report = await runCrdFuzz({ cases, statusTimeoutMs: 20_000, timeLimitMs: 300_000, ...(seed === undefined ? {} : { seed: Number(seed) }) });
    process.stdout.write(`crd fuzz: ${JSON.stringify(report)}\n`);
    expect(report.cases).toBeGreaterThanOrEqual(cases);
    // Both halves of the property were exercised, for every kind.
    for (const kind of ['SecretBinding', 'SecretBackend', 'ClusterSecretBackend'] as const) {
      expect(report.refused[kind]).toBeGreaterThan(0);
      expect(report.accepted[kind]).toBeGreaterThan(0);
    }
  }, 900_000);
});
