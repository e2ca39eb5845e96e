import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloudSecretEvent, gridSecretEvent, gridValidationEvent } from '../../../src/backends/azure/azure.event-grid.test-fixtures.ts';
import { doubleStats } from '../../harness/keyvault-double/stats-client.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { metricSum, readText, sleep, startDeliveryWorld, type DeliveryWorld } from './delivery-world.ts';
import { startRotationBackend, type RotationBackend } from './rotation-backends.ts';

/**
 * Event-driven rotation on Azure Key Vault (issue 17, ADR 0223): the controller's Event Grid
 * webhook receiver, against the project's Key Vault double (ADR 0070). The double has no Event
 * Grid, so the suite writes the secret in the double and then delivers the event itself, shaped
 * as Microsoft documents it (src/backends/azure/azure.event-grid.test-fixtures.ts), after the
 * subscription's validation handshake. Bindings poll once an hour: only the event explains a
 * delivery within the suite's wait.
 */

const marker = (): string => `marker-${randomBytes(8).toString('hex')}`;
const sharedSecret = randomBytes(24).toString('hex');

describe('event-driven rotation on Azure Key Vault (Event Grid webhook, Key Vault double)', () => {
  let backend: RotationBackend;
  let world: DeliveryWorld;
  let dir: string;
  let endpoint: string;

  const detected = (source: 'poll' | 'event'): Promise<number> =>
    metricSum(world.registry, 'secretbinder_backend_changes_detected_total', { provider: 'azureKeyVault', source });
  const vaultUrl = (): string => ((backend.spec.azureKeyVault as { vaultUrl: string }).vaultUrl);
  const deliver = (body: unknown, code: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${endpoint}?code=${encodeURIComponent(code)}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  beforeAll(async () => {
    // Right after a fresh world started, the double's first TLS connections were seen to hang up
    // here (1 run in 2): wait until it answers its control API before the suite depends on it.
    const double = currentWorld().azureKeyVault;
    if (double?.kind !== 'double') throw new Error('the world has no Key Vault double');
    await eventually('the Key Vault double answers', () => doubleStats(double).then(() => true, () => undefined), 30_000);
    backend = await startRotationBackend('azureKeyVault');
    dir = mkdtempSync(join(tmpdir(), 'sb-grid-'));
    writeFileSync(join(dir, 'secret'), sharedSecret, { mode: 0o600 });
    world = await startDeliveryWorld({
      prefix: 'rot-grid',
      nodes: 1,
      backend,
      controllerArgs: () => ['--azure-event-grid-address', '127.0.0.1:0', '--azure-event-grid-secret-file', join(dir, 'secret')],
    });
    const source = world.operator.noticeSources.find((s) => s.kind === 'azureEventGrid');
    const address = await eventually('the Event Grid receiver', () => Promise.resolve(source?.address()), 30_000);
    endpoint = `http://${address}/eventgrid`;
  }, 120_000);

  afterAll(async () => {
    await world.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('validates the subscription, then delivers a SecretNewVersionCreated event in either schema (refreshInterval 1h)', async () => {
    const validation = await deliver(gridValidationEvent('512d38b6-c7b8-40c8-89fe-f46f9e9622b6'), sharedSecret, { 'aeg-event-type': 'SubscriptionValidation' });
    expect(await validation.json()).toEqual({ validationResponse: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6' });

    const key = backend.key(`grid-${world.suffix}-db`);
    await backend.write(key, { password: marker() });
    await world.createBinding('grid', { podSelector: { matchLabels: { binding: 'grid' } }, refreshInterval: '1h', files: [{ path: 'password', key, property: 'password' }] });
    const file = join((await world.podWithVolume('grid-0', 'grid', 0)).mount.targetPath, 'password');

    for (const [schema, body, headers] of [
      ['Event Grid', (): unknown => gridSecretEvent(vaultUrl(), key), { 'aeg-event-type': 'Notification' }],
      ['CloudEvents', (): unknown => cloudSecretEvent(vaultUrl(), key), { 'content-type': 'application/cloudevents+json' }],
    ] as const) {
      const [eventBefore, pollBefore] = [await detected('event'), await detected('poll')];
      const value = marker();
      await backend.write(key, { password: value });
      const sent = Date.now();
      expect((await deliver(body(), sharedSecret, headers)).status).toBe(200);
      await eventually(`the ${schema} event delivered`, async () => ((await readText(file)) === value ? true : undefined), 60_000);
      process.stdout.write(`event-driven rotation (azure event grid, ${schema} schema): event → file in ${String(Date.now() - sent)} ms\n`);
      expect((await detected('event')) - eventBefore).toBe(1);
      expect((await detected('poll')) - pollBefore).toBe(0);
      // Past the dedup window before the next write.
      await sleep(1100);
    }
  }, 180_000);

  it('refuses a forged event without the shared secret: nothing read, nothing delivered', async () => {
    const key = backend.key(`grid-${world.suffix}-forged`);
    const value = marker();
    await backend.write(key, { password: value });
    await world.createBinding('forged', { podSelector: { matchLabels: { binding: 'forged' } }, refreshInterval: '1h', files: [{ path: 'password', key, property: 'password' }] });
    const file = join((await world.podWithVolume('forged-0', 'forged', 0)).mount.targetPath, 'password');
    const rejected = (): Promise<number> => metricSum(world.registry, 'secretbinder_change_notices_rejected_total', { source: 'azureEventGrid', reason: 'unauthenticated' });
    const before = await rejected();
    const changed = marker();
    await backend.write(key, { password: changed });
    expect((await deliver(gridSecretEvent(vaultUrl(), key), 'not-the-secret')).status).toBe(401);
    expect((await rejected()) - before).toBe(1);
    await sleep(1500);
    // The change is real, but the forged announcement of it does not count: the file waits for the poll.
    expect(await readText(file)).toBe(value);
    expect(world.managerExited()).toBe(false);
  }, 120_000);
});
