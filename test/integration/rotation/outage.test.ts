import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { startProcessNamed, stopProcessNamed, isProcessRunning } from '../../harness/control.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { inParallel, metricSum, readText, sleep, startDeliveryWorld, type BindingStatus, type DeliveryWorld } from './delivery-world.ts';

/**
 * Backend outage acceptance (invariant 7): OpenBao stopped for two minutes under 20 published
 * volumes on 2 nodes. No file changes or disappears; the binding turns Degraded
 * (BackendUnavailable) within one refresh interval and back within one interval after OpenBao
 * returns; the controller keeps running. Stops the world's OpenBao: run this file alone
 * (`--runInBand`, as npm run test:integration does).
 */

const refreshSeconds = 10;
const outageMs = 120_000;
const volumes = 20;
// One interval, plus the time a reconcile and a status write take on a loaded machine.
const withinMs = refreshSeconds * 1000 + 1000;

let world: DeliveryWorld;

const degraded = (s: BindingStatus | undefined): { status: string; reason: string } | undefined => s?.conditions?.find((c) => c.type === 'Degraded');

/** Every visible file and the `..data` target of a volume: what an application could see. */
async function snapshot(target: string): Promise<string> {
  const entries = (await readdir(target)).sort();
  const files = await Promise.all(
    ['password', 'config/user'].map(async (p) => `${p}=${(await readText(join(target, p))) ?? '<missing>'}`),
  );
  return JSON.stringify({ entries, data: await readlink(join(target, '..data')).catch(() => '<none>'), files });
}

describe('backend outage', () => {
  beforeAll(async () => {
    world = await startDeliveryWorld({ prefix: 'out', nodes: 2 });
  }, 120_000);

  afterAll(async () => {
    // Never leave the shared world without its OpenBao.
    if (!isProcessRunning(currentWorld(), 'openbao')) await startProcessNamed(currentWorld(), 'openbao');
    await world.close();
  }, 120_000);

  it('keeps every file through two minutes without OpenBao, Degraded within one interval, Ready within one interval after', async () => {
    const path = `out-${world.suffix}/db`;
    const data = { password: `marker-${randomBytes(8).toString('hex')}`, user: `marker-${randomBytes(8).toString('hex')}` };
    await writeKvSecret(world.bao, path, data);
    await world.createBinding('steady', {
      podSelector: { matchLabels: { binding: 'steady' } },
      refreshInterval: `${String(refreshSeconds)}s`,
      files: [
        { path: 'password', key: path, property: 'password' },
        { path: 'config/user', key: path, property: 'user' },
      ],
    });
    const targets = (
      await inParallel(Array.from({ length: volumes }, (_, i) => i), 6, async (i) => (await world.podWithVolume(`steady-${String(i)}`, 'steady', i % 2)).mount)
    ).map((m) => m.targetPath);
    const before = await Promise.all(targets.map(snapshot));
    for (const s of before) expect(s).toContain(data.password);
    await eventually('binding Ready, not Degraded', async () => (degraded(await world.bindingStatus('steady'))?.status === 'False' ? true : undefined), 30_000);
    const reconcileErrorsBefore = await metricSum(world.registry, 'secretbinder_reconcile_errors_total');

    const stoppedAt = Date.now();
    await stopProcessNamed(currentWorld(), 'openbao');
    let degradedMs: number | undefined;
    let degradedReason: string | undefined;
    const changes: string[] = [];
    try {
      while (Date.now() - stoppedAt < outageMs) {
        if (degradedMs === undefined) {
          const d = degraded(await world.bindingStatus('steady'));
          if (d?.status === 'True') {
            degradedMs = Date.now() - stoppedAt;
            degradedReason = d.reason;
          }
        }
        const now = await Promise.all(targets.map(snapshot));
        now.forEach((s, i) => {
          if (s !== before[i]) changes.push(`${targets[i] ?? ''} at ${String(Date.now() - stoppedAt)} ms: ${s === '' ? 'gone' : 'changed'}`);
        });
        await sleep(1000);
      }
    } finally {
      await startProcessNamed(currentWorld(), 'openbao');
    }
    // Dev mode lost its data: the same secret again (a new KV version, the same content).
    await writeKvSecret(world.bao, path, data);
    const backAt = Date.now();
    const recoveredMs = await eventually(
      'Degraded=False after OpenBao returned',
      async () => {
        const d = degraded(await world.bindingStatus('steady'));
        return d?.status === 'False' ? Date.now() - backAt : undefined;
      },
      3 * refreshSeconds * 1000,
    );
    const after = await Promise.all(targets.map(snapshot));
    const status = await world.bindingStatus('steady');
    const reconcileErrors = (await metricSum(world.registry, 'secretbinder_reconcile_errors_total')) - reconcileErrorsBefore;
    process.stdout.write(
      `outage: ${String(outageMs / 1000)} s without OpenBao, ${String(volumes)} volumes: Degraded (${String(degradedReason)}) after ${String(degradedMs)} ms; ` +
        `Degraded=False ${String(recoveredMs)} ms after OpenBao returned; file changes ${String(changes.length)}; reconcile errors ${String(reconcileErrors)}\n`,
    );

    expect(changes).toEqual([]);
    expect(after).toEqual(before);
    expect(degradedReason).toBe('BackendUnavailable');
    expect(degradedMs).toBeLessThanOrEqual(withinMs);
    expect(recoveredMs).toBeLessThanOrEqual(withinMs);
    expect(status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    // The controller kept running and reconciling at its interval, not in a tight retry loop.
    expect(world.managerExited()).toBe(false);
    const healthz = await fetch(`http://127.0.0.1:${String(world.operator.health.port)}/healthz`);
    expect(healthz.status).toBe(200);
    expect(reconcileErrors).toBeLessThanOrEqual(outageMs / (refreshSeconds * 1000) + 2);
  }, 400_000);
});
