import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { currentWorld } from '../../harness/world-state.ts';
import { VaultEventsDouble } from '../../harness/vault-events-double.ts';
import { eventually } from '../support/cluster.ts';
import { metricSum, readText, startDeliveryWorld, type DeliveryWorld } from './delivery-world.ts';

/**
 * Event-driven rotation through Vault Enterprise's events API (ADR 0226). OpenBao has no events API
 * and Vault Enterprise cannot run here, so the events source subscribes at the project's double of
 * the API (test/harness/vault-events-double.ts), which passes every other request through to the
 * world's real OpenBao: the secret is written in OpenBao, the double sends the `kv-v2/data-write`
 * event Vault documents for that write, and the files come from OpenBao through the real node
 * plugin writers. Bindings poll once an hour: only the event explains the delivery.
 */

const marker = (): string => `marker-${randomBytes(8).toString('hex')}`;

describe('event-driven rotation through the Vault events API (double in front of the real OpenBao)', () => {
  let world: DeliveryWorld;
  let double: VaultEventsDouble;

  const detected = (source: 'poll' | 'event'): Promise<number> => metricSum(world.registry, 'secretbinder_backend_changes_detected_total', { provider: 'vault', source });

  beforeAll(async () => {
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    double = await VaultEventsDouble.start({ token: bao.rootToken, upstream: bao.address, maxLifetimeMs: 5 * 60_000 });
    const eventsBackend = { vault: { address: double.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'backend-credentials', key: 'token' } } } } };
    world = await startDeliveryWorld({
      prefix: 'rot-vevt',
      nodes: 1,
      moreBackends: { 'vault-enterprise': { spec: eventsBackend, credentials: {} } },
      controllerArgs: (ns) => ['--vault-events-backend', `SecretBackend/${ns}/vault-enterprise`],
    });
    await eventually('the events subscription', () => Promise.resolve(double.subscribers === 1 ? true : undefined), 60_000);
  }, 120_000);

  afterAll(async () => {
    await world.close();
    await double.close();
  }, 120_000);

  it('delivers a KV write announced by a kv-v2/data-write event to every volume (refreshInterval 1h)', async () => {
    const bao = world.bao;
    const key = `vevt-${world.suffix}/db`;
    const write = async (value: string): Promise<void> => {
      const answer = await fetch(`${bao.address}/v1/${bao.kvMount}/data/${key}`, { method: 'POST', headers: { 'x-vault-token': bao.rootToken }, body: JSON.stringify({ data: { password: value } }) });
      expect(answer.status).toBe(200);
    };
    await write(marker());
    await world.createBinding('vevt', { podSelector: { matchLabels: { binding: 'vevt' } }, refreshInterval: '1h', files: [{ path: 'password', key, property: 'password' }] });
    const files = [];
    for (let i = 0; i < 3; i++) files.push(join((await world.podWithVolume(`vevt-${String(i)}`, 'vevt', 0)).mount.targetPath, 'password'));

    const [eventBefore, pollBefore] = [await detected('event'), await detected('poll')];
    const value = marker();
    await write(value);
    const sent = Date.now();
    double.emit({ eventType: 'kv-v2/data-write', mountPath: `${bao.kvMount}/`, path: `${bao.kvMount}/data/${key}`, metadata: { current_version: '2' } });
    for (const file of files) await eventually('the event delivered', async () => ((await readText(file)) === value ? true : undefined), 60_000);
    process.stdout.write(`event-driven rotation (vault events API, double): event → files in 3 volumes in ${String(Date.now() - sent)} ms\n`);
    expect((await detected('event')) - eventBefore).toBe(1);
    expect((await detected('poll')) - pollBefore).toBe(0);
  }, 120_000);
});
