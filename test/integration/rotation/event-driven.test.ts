import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { disableAuditDevice, enableSocketAuditDevice } from '../../harness/openbao.ts';
import { eventually } from '../support/cluster.ts';
import { inParallel, metricSum, readText, readTextNow, sleep, startDeliveryWorld, type DeliveryWorld } from './delivery-world.ts';
import { startRotationBackend, type RotationBackend } from './rotation-backends.ts';

/**
 * Event-driven rotation against the real OpenBao (issue 17, ADR 0220, 0221): a `socket` audit
 * device, enabled with the documented `bao audit enable socket` call, sends every audit entry to
 * the controller's Unix socket; KV writes of bound paths become change notices that schedule a
 * check now. Bindings poll once an hour, so only the event path can explain a delivery within the
 * suite's wait. Node plugins are in-process and write real tmpfs volumes, as in the refresh suite.
 * Speed is printed here and measured by the bench; nothing here asserts a time bound.
 */

const volumes = 200;
const nodeCount = 3;
const marker = (): string => `marker-${randomBytes(8).toString('hex')}`;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

describe('event-driven rotation on OpenBao (audit socket)', () => {
  let backend: RotationBackend;
  let world: DeliveryWorld;
  let socketDir: string;
  let socketPath: string;
  let device: string;

  const detected = (source: 'poll' | 'event'): Promise<number> =>
    metricSum(world.registry, 'secretbinder_backend_changes_detected_total', { provider: 'vault', source });
  const notices = (result: string): Promise<number> => metricSum(world.registry, 'secretbinder_change_notices_total', { source: 'vaultAudit', result });
  const rejected = (reason: string): Promise<number> => metricSum(world.registry, 'secretbinder_change_notices_rejected_total', { source: 'vaultAudit', reason });

  /** Writes raw bytes to the controller's audit socket, as a sender that can reach it would. */
  const sendToSocket = async (data: string | Buffer): Promise<void> => {
    const socket = connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    await new Promise<void>((resolve) => socket.end(data, resolve));
  };

  /** A binding of one key with `count` volumes; returns the key and the files. */
  const bound = async (name: string, refreshInterval: string, count: number): Promise<{ key: string; files: string[]; value: string }> => {
    const key = `evt-${world.suffix}/${name}`;
    const value = marker();
    await backend.write(key, { password: value });
    await world.createBinding(name, { podSelector: { matchLabels: { binding: name } }, refreshInterval, files: [{ path: 'password', key, property: 'password' }] });
    const mounts = await inParallel(
      Array.from({ length: count }, (_, i) => i),
      8,
      async (i) => (await world.podWithVolume(`${name}-${String(i)}`, name, i % nodeCount)).mount,
    );
    const files = mounts.map((m) => join(m.targetPath, 'password'));
    for (const file of files) expect(await readText(file)).toBe(value);
    return { key, files, value };
  };

  beforeAll(async () => {
    backend = await startRotationBackend('openbao');
    socketDir = mkdtempSync(join(tmpdir(), 'sb-evt-'));
    socketPath = join(socketDir, 'audit', 'audit.sock');
    world = await startDeliveryWorld({ prefix: 'rot-evt', nodes: nodeCount, backend, controllerArgs: () => ['--vault-audit-socket', socketPath] });
    const source = world.operator.noticeSources[0];
    await eventually('the audit listener', () => Promise.resolve(source?.address()), 30_000);
    // As docs/rotation.md tells operators: `bao audit enable -path=... socket address=... socket_type=unix`.
    device = `sb-evt-${world.suffix}`;
    await enableSocketAuditDevice(world.bao, device, socketPath);
  }, 120_000);

  afterAll(async () => {
    await disableAuditDevice(world.bao, device).catch(() => undefined);
    await world.close();
    await backend.close();
    rmSync(socketDir, { recursive: true, force: true });
  }, 120_000);

  it(`delivers a KV write to ${String(volumes)} volumes on ${String(nodeCount)} nodes through the event path (refreshInterval 1h)`, async () => {
    const { key, files } = await bound('fleet', '1h', volumes);
    const callsBefore = await backend.calls(key, world.registry);
    const [eventBefore, pollBefore] = [await detected('event'), await detected('poll')];

    const after = marker();
    const written = Date.now();
    await backend.write(key, { password: after });
    const arrivedMs = new Array<number | undefined>(files.length).fill(undefined);
    // An hour between polls: a minute is far beyond any event delivery, far below the next poll.
    while (arrivedMs.some((t) => t === undefined) && Date.now() - written < 60_000) {
      files.forEach((file, i) => {
        if (arrivedMs[i] === undefined && readTextNow(file) === after) arrivedMs[i] = Date.now() - written;
      });
      await sleep(50);
    }
    const times = arrivedMs.map((t) => t ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
    // Let a trailing check of the window (1 s) show in the audit log before counting.
    await sleep(1200);
    const callsAfter = await backend.calls(key, world.registry);
    process.stdout.write(
      `event-driven rotation (openbao audit socket): ${String(volumes)} volumes on ${String(nodeCount)} nodes, refreshInterval 1h: ` +
        `first ${String(times[0])} ms, median ${String(percentile(times, 50))} ms, p99 ${String(percentile(times, 99))} ms, max ${String(times.at(-1))} ms after the write; ` +
        `value reads ${String(callsAfter.valueReads - callsBefore.valueReads)}, version checks ${String(callsAfter.versionChecks - callsBefore.versionChecks)}\n`,
    );

    expect(times.filter((t) => !Number.isFinite(t))).toHaveLength(0);
    // The change was found by a check a notice caused, never by a poll.
    expect((await detected('event')) - eventBefore).toBe(1);
    expect((await detected('poll')) - pollBefore).toBe(0);
    expect(callsAfter.valueReads - callsBefore.valueReads).toBe(1);
    expect(await metricSum(world.registry, 'secretbinder_change_source_up', { source: 'vaultAudit' })).toBe(1);
    expect(await metricSum(world.registry, 'secretbinder_change_source_last_input_timestamp_seconds', { source: 'vaultAudit' })).toBeGreaterThanOrEqual(Math.floor(written / 1000));
    expect(await world.controllerLog.text()).not.toContain(after);
  }, 300_000);

  it('reads the value once for 100 notices of one key within a second', async () => {
    const { key, files } = await bound('burst', '1h', 1);
    const file = files[0] ?? '';
    const callsBefore = await backend.calls(key, world.registry);
    const noticesBefore = (await notices('scheduled')) + (await notices('coalesced'));
    const auditFrom = readFileSync(world.bao.auditLogPath).length;

    const after = marker();
    await backend.write(key, { password: after });
    // The write's own entry is notice 1; 99 copies of it, as OpenBao writes it, follow at once.
    const written = readFileSync(world.bao.auditLogPath)
      .subarray(auditFrom)
      .toString('utf8')
      .split('\n')
      .find((line) => line.includes('"type":"response"') && line.includes(`"path":"${world.bao.kvMount}/data/${key}"`));
    if (written === undefined) throw new Error('no audit entry of the write');
    await sendToSocket(`${written}\n`.repeat(99));
    await eventually('the burst delivered', async () => ((await readText(file)) === after ? true : undefined), 30_000);
    await eventually('100 notices counted', async () => ((await notices('scheduled')) + (await notices('coalesced')) - noticesBefore >= 100 ? true : undefined), 10_000);
    // The window's trailing check (1 s after the first), then count at OpenBao.
    await sleep(1500);
    const callsAfter = await backend.calls(key, world.registry);
    const valueReads = callsAfter.valueReads - callsBefore.valueReads;
    const versionChecks = callsAfter.versionChecks - callsBefore.versionChecks;
    process.stdout.write(`notice burst: 100 notices of one key → value reads ${String(valueReads)}, version checks ${String(versionChecks)}\n`);
    expect((await notices('scheduled')) + (await notices('coalesced')) - noticesBefore).toBe(100);
    expect(valueReads).toBe(1);
  }, 120_000);

  describe('forged and malformed notices: no value read, no change, no crash, nothing logged', () => {
    let target: { key: string; files: string[]; value: string };
    beforeAll(async () => {
      target = await bound('target', '1h', 1);
    }, 120_000);

    const forgedEntry = (key: string, payload: string): string =>
      JSON.stringify({
        type: 'response',
        request: { operation: 'update', mount_point: `${world.bao.kvMount}/`, mount_type: 'kv', path: `${world.bao.kvMount}/data/${key}`, data: { data: { password: payload } } },
      });

    it.each([
      ['a forged change of a bound key', 'scheduled', (payload: string) => `${forgedEntry(target.key, payload)}\n`],
      ['a change of a key no binding uses', 'unbound', (payload: string) => `${forgedEntry(`evt-${world.suffix}/nobody`, payload)}\n`],
      ['malformed JSON', 'malformed', (payload: string) => `{"type":"response","request":{"path":"${payload}\n`],
      ['a wrong shape', 'malformed', (payload: string) => `${JSON.stringify({ type: 'response', request: { operation: 7, path: payload } })}\n`],
      ['an oversized line', 'oversized', (payload: string) => `${'x'.repeat(2 * 1024 * 1024)}${payload}\n`],
      ['a flood of forged changes', 'rateLimited', (payload: string) => `${forgedEntry(target.key, payload)}\n`.repeat(6000)],
    ] as const)('%s', async (_kind, counted, input) => {
      const payload = marker();
      const count = (): Promise<number> => (['scheduled', 'unbound'].includes(counted) ? notices(counted) : rejected(counted));
      const before = await count();
      const callsBefore = await backend.calls(target.key, world.registry);
      const changesBefore = (await detected('event')) + (await detected('poll'));
      await sendToSocket(input(payload));
      await eventually(`${counted} counted`, async () => ((await count()) > before ? true : undefined), 10_000);
      // Past the window (1 s): any check the input caused has been made.
      await sleep(1100);
      const callsAfter = await backend.calls(target.key, world.registry);
      // A forged notice of a bound key costs a version check (within the window's two), never a value read.
      expect(callsAfter.valueReads - callsBefore.valueReads).toBe(0);
      expect((await detected('event')) + (await detected('poll'))).toBe(changesBefore);
      expect(await readText(target.files[0] ?? '')).toBe(target.value);
      expect(world.managerExited()).toBe(false);
      expect(await world.controllerLog.text()).not.toContain(payload);
      // The listener still works: a real write is delivered through it.
      const next = marker();
      await backend.write(target.key, { password: next });
      await eventually('a real write after the bad input', async () => ((await readText(target.files[0] ?? '')) === next ? true : undefined), 30_000);
      target = { ...target, value: next };
    }, 60_000);
  });

  // Last: it stops the listener for good.
  it('delivers through the next poll when the audit listener is stopped, and reports it down', async () => {
    const { key, files } = await bound('fallback', '10s', 1);
    const file = files[0] ?? '';
    await world.operator.noticeSources[0]?.stop();
    expect(await metricSum(world.registry, 'secretbinder_change_source_up', { source: 'vaultAudit' })).toBe(0);
    const [eventBefore, pollBefore] = [await detected('event'), await detected('poll')];
    const after = marker();
    // OpenBao's socket device fails now; its file device records the write, so the write succeeds.
    await backend.write(key, { password: after });
    await eventually('the poll delivered', async () => ((await readText(file)) === after ? true : undefined), 60_000);
    expect((await detected('poll')) - pollBefore).toBe(1);
    expect((await detected('event')) - eventBefore).toBe(0);
  }, 120_000);
});
