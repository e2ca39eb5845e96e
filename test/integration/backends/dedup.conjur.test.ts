import { afterAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startConjurDouble, type ConjurDouble, type ConjurRequestRecord } from '../../harness/conjur-double.ts';
import { Fleet } from './backends.support.ts';

/**
 * Dedup witness for the Conjur provider (ADR 0243), against the Conjur API double: 50
 * SecretBindings in 5 namespaces read the same 10 variables through ONE ClusterSecretBackend,
 * served by a controller process. The double's request log is the witness: each variable's value
 * is read once, in batches (`GET /secrets?variable_ids=…`), never alone; while versions stand
 * still no batch is read at all, only version checks (`GET /resources/…`) at about one per
 * variable per interval; a rotation of one variable costs one batch of that one variable.
 */

const namespaces = 5;
const bindingsPerNamespace = 10;
const keyCount = 10;
const refreshSeconds = 10;
const refreshesObserved = 1;
const account = 'dedup';
const login = 'host/secret-binder/dedup';

describe('deduplication of backend calls on Conjur (50 bindings, 10 variables, one ClusterSecretBackend)', () => {
  const name = `dedup-conjur-${randomBytes(3).toString('hex')}`;
  const keys = Array.from({ length: keyCount }, (_, i) => `${name}/k${String(i)}`);
  const apiKey = `dedup-api-key-${randomBytes(8).toString('hex')}`;
  let double: ConjurDouble | undefined;
  let fleet: Fleet | undefined;

  afterAll(async () => {
    await fleet?.cleanup();
    await double?.stop();
  }, 120_000);

  it('reads each variable once in batches, no batch while versions stand still, one batch of one variable after a rotation', async () => {
    double = await startConjurDouble({ account, hosts: { [login]: { apiKey, privileged: true } }, maxLifetimeMs: 600_000 });
    for (const key of keys) double.write(key, JSON.stringify({ value: randomBytes(12).toString('hex') }));
    fleet = new Fleet({
      name,
      namespaces,
      bindingsPerNamespace,
      keys,
      backendSpec: {
        conjur: { applianceUrl: double.url, account, caBundle: Buffer.from(double.caPem).toString('base64'), auth: { apiKey: { login, secretRef: { name, key: 'api-key' } } } },
        refreshInterval: `${String(refreshSeconds)}s`,
      },
    });
    await fleet.prepare();
    await fleet.operatorSecret(name, { 'api-key': apiKey });
    await fleet.createBackend();
    await fleet.createBindings();

    const startedAt = Date.now();
    fleet.startController();
    await fleet.waitAllReady(180_000);
    const readyAt = Date.now();
    await sleep(refreshesObserved * refreshSeconds * 1000);
    const quietUntil = Date.now();
    const requests = double.requests();
    const batches = requests.filter((r) => r.kind === 'batch');
    const idsRead = batches.flatMap((r) => r.ids).sort();
    const singles = requests.filter((r) => r.kind === 'secret').length;
    const versionChecks = requests.filter((r) => r.kind === 'resource').length;
    const logins = requests.filter((r) => r.kind === 'authn').length;
    const intervals = Math.ceil((quietUntil - startedAt) / (refreshSeconds * 1000));
    process.stdout.write(
      `dedup conjur: ${String(fleet.total)} bindings, ${String(keyCount)} variables, Ready after ${String(readyAt - startedAt)} ms; ` +
        `batches ${JSON.stringify(batches.map((b) => b.ids.length))}, ${String(batches.filter((b) => b.at >= readyAt).length)} after Ready, ` +
        `${String(versionChecks)} version checks over ${String(intervals)} intervals, ${String(singles)} single reads, ${String(logins)} logins\n`,
    );
    expect(idsRead).toEqual([...keys].sort());
    expect(batches.filter((b) => b.at >= readyAt)).toHaveLength(0);
    expect(singles).toBe(0);
    expect(versionChecks).toBeGreaterThan(0);
    expect(versionChecks).toBeLessThanOrEqual(2 * keyCount * (intervals + 1));
    expect(logins).toBe(1);

    // One variable rotates: within an interval (and a reconcile), one batch of that variable only.
    const rotated = keys[3] ?? '';
    double.write(rotated, JSON.stringify({ value: randomBytes(12).toString('hex') }));
    const batchesSince = (): ConjurRequestRecord[] => (double?.requests() ?? []).filter((r) => r.kind === 'batch' && r.at >= quietUntil);
    const deadline = Date.now() + 2 * refreshSeconds * 1000;
    while (batchesSince().length === 0 && Date.now() < deadline) await sleep(250);
    // Other bindings' checks of the same variable land within the interval's slack: give them it.
    await sleep(2000);
    const after = batchesSince();
    process.stdout.write(`dedup conjur: after rotating one variable, batches ${JSON.stringify(after.map((b) => b.ids))}\n`);
    expect(after.map((b) => b.ids)).toEqual([[rotated]]);
  }, 300_000);
});
