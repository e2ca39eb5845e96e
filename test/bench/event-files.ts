/**
 * `npm run bench -- --tier event-files [--volumes N] [--nodes N]`: the "rotation, event-driven" row
 * as issue 17 defines it — a KV write in the real OpenBao → the new file in every one of N volumes
 * (default 1,000) on ≥ 4 node plugins, detected through the OpenBao `socket` audit device (bindings
 * poll once an hour, so only the event path explains the delivery). Beside it, for comparison, the
 * polling row of the refresh suite. Starts (or reuses, with SECRET_BINDER_WORLD) a world with
 * OpenBao; the controller, broker and node plugins run in this process, as in the rotation suites.
 * Not a test: it prints figures and asserts nothing. With SECRET_BINDER_BENCH_CPU_PROFILE=<file>, the
 * process's CPU profile from the write to the last arrival is written there (open it in Chrome's
 * DevTools or any `.cpuprofile` viewer): where the fan-out spends its time (ADR 0224).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { disableAuditDevice, enableSocketAuditDevice } from '../harness/openbao.ts';
import { down, isWorldAlive, up } from '../harness/world.ts';
import { readWorldState, worldEnvVar, worldStatePath, type WorldState } from '../harness/world-state.ts';
import { inParallel, metricSum, sleep, startDeliveryWorld } from '../integration/rotation/delivery-world.ts';
import { startRotationBackend } from '../integration/rotation/rotation-backends.ts';

/**
 * The observer: a worker thread that reads every file until it holds `expected` (every 10 ms) and
 * answers each arrival in ms after `written`. Off the main thread on purpose: controller, broker and
 * plugins share this process's event loop here (in a cluster the plugins are processes of their
 * own), and 1,000 synchronous reads every 50 ms on that loop were part of what the row measured.
 */
const watcherSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const { files, expected, written, timeoutMs } = workerData;
const arrived = new Array(files.length).fill(null);
let left = files.length;
const tick = () => {
  for (let i = 0; i < files.length; i++) {
    if (arrived[i] !== null) continue;
    let text;
    try { text = readFileSync(files[i], 'utf8'); } catch { text = undefined; }
    if (text === expected) { arrived[i] = Date.now() - written; left--; }
  }
  if (left === 0 || Date.now() - written > timeoutMs) parentPort.postMessage(arrived);
  else setTimeout(tick, 10);
};
tick();
`;

function watchArrivals(files: readonly string[], expected: string, written: number, timeoutMs: number): Promise<(number | null)[]> {
  const worker = new Worker(watcherSource, { eval: true, workerData: { files, expected, written, timeoutMs } });
  return new Promise((resolve, reject) => {
    worker.once('message', (arrived: (number | null)[]) => {
      resolve(arrived);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;

export async function runEventFilesBench(argv: readonly string[]): Promise<string> {
  const { values } = parseArgs({ args: [...argv], strict: false, options: { volumes: { type: 'string', default: '1000' }, nodes: { type: 'string', default: '4' } } });
  const volumes = Number(values.volumes);
  const nodes = Number(values.nodes);
  const log = (line: string): void => { process.stderr.write(`[event-files] ${line}\n`); };

  let world: WorldState | undefined;
  const named = process.env[worldEnvVar];
  if (named !== undefined && named !== '' && (await isWorldAlive(readWorldState(named)))) world = readWorldState(named);
  const own = world === undefined;
  if (world === undefined) {
    const dir = join(tmpdir(), 'secret-binder-worlds', `bench-event-files-${new Date().toISOString().replace(/[:.]/g, '-')}-${String(process.pid)}`);
    log(`starting a world in ${dir}`);
    world = await up({ dir, backends: ['openbao'], maxLifetimeSeconds: 3600 });
    process.env[worldEnvVar] = worldStatePath(world.dir);
  }
  const socketDir = mkdtempSync(join(tmpdir(), 'sb-bench-evt-'));
  const socketPath = join(socketDir, 'audit', 'audit.sock');
  const backend = await startRotationBackend('openbao');
  const delivery = await startDeliveryWorld({ prefix: 'bench-evt', nodes, backend, controllerArgs: () => ['--vault-audit-socket', socketPath] });
  const device = `sb-bench-${delivery.suffix}`;
  try {
    const source = delivery.operator.noticeSources[0];
    for (let i = 0; i < 300 && source?.address() === undefined; i++) await sleep(100);
    await enableSocketAuditDevice(delivery.bao, device, socketPath);
    const key = `bench-evt-${delivery.suffix}/db`;
    await backend.write(key, { password: `before-${randomBytes(8).toString('hex')}` });
    await delivery.createBinding('fleet', { podSelector: { matchLabels: { binding: 'fleet' } }, refreshInterval: '1h', files: [{ path: 'password', key, property: 'password' }] });
    log(`publishing ${String(volumes)} volumes on ${String(nodes)} node plugins`);
    const mounts = await inParallel(Array.from({ length: volumes }, (_, i) => i), 8, async (i) => (await delivery.podWithVolume(`fleet-${String(i)}`, 'fleet', i % nodes)).mount);
    const files = mounts.map((m) => join(m.targetPath, 'password'));
    await sleep(2000);

    const detected = (s: 'poll' | 'event'): Promise<number> => metricSum(delivery.registry, 'secretbinder_backend_changes_detected_total', { provider: 'vault', source: s });
    const [eventBefore, pollBefore] = [await detected('event'), await detected('poll')];
    const callsBefore = await backend.calls(key, delivery.registry);
    // The figures are CPU-bound (controller, broker, node plugins and this poller share one process).
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const after = `after-${randomBytes(8).toString('hex')}`;
    const profilePath = process.env.SECRET_BINDER_BENCH_CPU_PROFILE;
    const profiler = profilePath === undefined || profilePath === '' ? undefined : new Session();
    if (profiler !== undefined) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    const written = Date.now();
    const watching = watchArrivals(files, after, written, 120_000);
    await backend.write(key, { password: after });
    const arrived = await watching;
    if (profiler !== undefined && profilePath !== undefined) {
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(profilePath, JSON.stringify(profile));
      profiler.disconnect();
      log(`CPU profile of the rotation written to ${profilePath}`);
    }
    await sleep(1500);
    const times = arrived.map((t) => t ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
    const calls = await backend.calls(key, delivery.registry);
    const p99 = percentile(times, 99);
    const row =
      `| rotation, event-driven (OpenBao audit socket): write → files in ${String(volumes)} volumes on ${String(nodes)} node plugins, refreshInterval 1h ` +
      `| first ${String(times[0])} ms, median ${String(percentile(times, 50))} ms, p99 ${String(p99)} ms, max ${String(times.at(-1))} ms ` +
      `| ≤ 1 s p99: ${p99 <= 1000 ? 'pass' : 'FAIL'} ` +
      `| value reads ${String(calls.valueReads - callsBefore.valueReads)}; detected by event +${String((await detected('event')) - eventBefore)}, by poll +${String((await detected('poll')) - pollBefore)}; load average ${load} |`;
    return `| scenario | arrival after the write | target | backend |\n|---|---|---|---|\n${row}\n` +
      '| rotation, polling (refresh suite, 200 volumes on 3 nodes, refreshInterval 10s, written right after a check) | one interval: 10.2 / 10.3 / 9.8 s max (OpenBao / moto / Key Vault double) | the first check after the write | 1 value read |\n';
  } finally {
    await disableAuditDevice(delivery.bao, device).catch(() => undefined);
    await delivery.close();
    await backend.close();
    rmSync(socketDir, { recursive: true, force: true });
    if (own) await down(world);
  }
}
