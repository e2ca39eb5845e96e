import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { procMount } from '../../../src/delivery/csi/tmpfs.mounter.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { inParallel, readText, sleep, startDeliveryWorld, type DeliveryWorld } from './delivery-world.ts';

/**
 * Revocation acceptance: deleting a binding empties every volume it fed, on every node, within
 * 5 s, and the audit trail records `revoked` for each of them. A binding next to it keeps its files.
 */

const volumes = 30;
let world: DeliveryWorld;

const visibleEntries = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((e) => !e.startsWith('..'));

describe('revocation', () => {
  beforeAll(async () => {
    world = await startDeliveryWorld({ prefix: 'rev', nodes: 2 });
  }, 120_000);

  afterAll(async () => {
    await world.close();
  }, 120_000);

  it('empties every volume of a deleted binding within 5 s and audits each revocation', async () => {
    const path = `rev-${world.suffix}/db`;
    const value = `marker-${randomBytes(8).toString('hex')}`;
    await writeKvSecret(world.bao, path, { password: value });
    for (const name of ['doomed', 'kept']) {
      await world.createBinding(name, {
        podSelector: { matchLabels: { binding: name } },
        refreshInterval: '10s',
        files: [{ path: 'password', key: path, property: 'password' }],
      });
    }
    const doomed = await inParallel(Array.from({ length: volumes }, (_, i) => i), 6, async (i) => world.podWithVolume(`doomed-${String(i)}`, 'doomed', i % 2));
    const kept = await world.podWithVolume('kept-0', 'kept', 0);
    for (const { mount } of [...doomed, kept]) expect(await readText(join(mount.targetPath, 'password'))).toBe(value);

    const deletedAt = Date.now();
    await world.custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: world.ns, name: 'doomed' });
    const emptiedMs = new Array<number | undefined>(doomed.length).fill(undefined);
    while (emptiedMs.some((t) => t === undefined) && Date.now() - deletedAt < 15_000) {
      await Promise.all(
        doomed.map(async ({ mount }, i) => {
          if (emptiedMs[i] === undefined && (await visibleEntries(mount.targetPath)).length === 0) emptiedMs[i] = Date.now() - deletedAt;
        }),
      );
      await sleep(50);
    }
    const times = emptiedMs.map((t) => t ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
    process.stdout.write(
      `revocation: ${String(volumes)} volumes on 2 nodes emptied: median ${String(times[Math.floor(times.length / 2)])} ms, max ${String(times.at(-1))} ms after the delete\n`,
    );
    expect(times.at(-1)).toBeLessThanOrEqual(5000);
    // The pods keep their (empty) tmpfs mounts; the other binding's volume keeps its file.
    for (const { mount } of doomed) expect((await procMount(mount.targetPath))?.fsType).toBe('tmpfs');
    expect(await readText(join(kept.mount.targetPath, 'password'))).toBe(value);

    const revoked = (await world.auditOut.lines()).filter(
      (l) => l['event'] === 'revoked' && (l['binding'] as { name?: string } | undefined)?.name === 'doomed',
    );
    const revokedPods = new Set(revoked.map((l) => (l['pod'] as { name?: string } | undefined)?.name));
    for (const { pod } of doomed) expect(revokedPods).toContain(pod.metadata?.name);
    expect((await world.auditOut.text())).not.toContain(value);
  }, 240_000);
});
