/**
 * `npm run bench -- fuzz [cases] [seed]` runs the fuzz bench instead (fuzz.ts); `npm run bench -- cli`
 * the kubectl plugin's (cli.ts).
 * `npm run bench -- --tier scale [--bindings N ...]` runs the scale tier (scale.ts, ADR 0200), with
 * `--peers eso` the peers beside it (scale-peers.ts, ADR 0270), with `--series 500,1000,...` once per
 * size and SVG charts (scale-series.ts, ADR 0271);
 * `npm run bench -- --tier event-files [--volumes N] [--nodes N]` the event-driven delivery row (event-files.ts).
 * `npm run bench -- --tier dynamic [--consumers N] [--ttl S] [--minutes M]` renewals and backend writes per minute of
 * perPod database credentials over a real OpenBao and PostgreSQL (dynamic.ts, issue 21).
 * `flock /tmp/sb-real-node.lock npm run bench -- --tier agent [--pods N]` the agent rows on the real node (agent.ts, ADR 0250).
 *
 * `npm run bench`: performance targets of DESIGN.md that can be measured in one process, printed as
 * a table (medians and ratios from one run). Not a test: nothing here asserts.
 *
 * - Backend reads per refresh interval, with 1 → 1,000 consuming bindings over 10 unique secrets
 *   (the target: equal to the number of unique secrets, flat in the number of consumers).
 * - Binding resolution latency (median, p99) at 1,000 and 5,000 bindings.
 * - Controller heap for 5,000 bindings' resolved content.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AnyBackend, SecretBinding } from '../../src/api/v1alpha1/index.ts';
import { FakeSecretStore } from '../../src/backends/fake/index.ts';
import { BindingContentResolver } from '../../src/controllers/binding/binding-content.ts';
import { contentWorld } from './content-world.ts';
import { realClock } from '../../src/runtime/clock.ts';
import { ObjectStore } from '../../src/runtime/object-store.ts';
import { eventDrivenRow } from './event-driven.ts';
import { footprintRows } from './image-size.ts';
import { runMultiBackendBench } from './multi-backend.bench.ts';

if (process.argv[2] === 'cli') {
  await (await import('./cli.ts')).runCliBench(process.argv.slice(3));
  process.exit(0);
}

if (process.argv[2] === 'fuzz') {
  await (await import('./fuzz.ts')).runFuzzBench(process.argv.slice(3));
  process.exit(0);
}
if (process.argv.slice(2).join(' ').includes('--tier event-files') || process.argv.includes('--tier=event-files')) {
  process.stdout.write(await (await import('./event-files.ts')).runEventFilesBench(process.argv.slice(2)));
  process.exit(0);
}
if ((process.argv.slice(2).join(' ').includes('--tier scale') || process.argv.includes('--tier=scale')) && process.argv.some((a) => a === '--series' || a.startsWith('--series='))) {
  process.stdout.write(await (await import('./scale-series.ts')).runScaleSeries(process.argv.slice(2)));
  process.exit(0);
}
if (process.argv.slice(2).join(' ').includes('--tier dynamic') || process.argv.includes('--tier=dynamic')) {
  process.stdout.write(await (await import('./dynamic.ts')).runDynamicBench(process.argv.slice(2)));
  process.exit(0);
}
if (process.argv.slice(2).join(' ').includes('--tier agent') || process.argv.includes('--tier=agent')) {
  process.stdout.write(await (await import('./agent.ts')).runAgentBench(process.argv.slice(2)));
  process.exit(0);
}
if (process.argv.slice(2).join(' ').includes('--tier scale') || process.argv.includes('--tier=scale')) {
  const { markdown } = await (await import('./scale.ts')).runScaleBench(process.argv.slice(2));
  process.stdout.write(`${markdown}\n`);
  process.exit(0);
}

const uniqueKeys = 10;
const refreshMs = 300;

interface World {
  readonly store: FakeSecretStore;
  readonly content: BindingContentResolver;
  readonly bindings: SecretBinding[];
}

function world(bindingCount: number): World {
  const store = new FakeSecretStore({ clock: realClock });
  for (let k = 0; k < uniqueKeys; k++) store.setJson(`app/key-${k}`, { user: `u${k}`, password: randomBytes(8).toString('hex') });
  const backend = {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBackend',
    metadata: { name: 'bench', namespace: 'bench', uid: 'bench-uid', generation: 1 },
    spec: { fake: { keys: [] }, refreshInterval: `${refreshMs}ms` },
  } as unknown as AnyBackend;
  const backends = new ObjectStore<AnyBackend>();
  backends.upsert(backend);
  const { content } = contentWorld(backends, () => store);
  const bindings = Array.from({ length: bindingCount }, (_, i): SecretBinding => ({
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name: `b${i}`, namespace: 'bench', generation: 1 },
    spec: {
      backendRef: { kind: 'SecretBackend', name: 'bench' },
      podSelector: { matchLabels: { app: `a${i}` } },
      containers: ['app'],
      files: [
        { path: 'user', key: `app/key-${i % uniqueKeys}`, property: 'user' },
        { path: 'password', key: `app/key-${i % uniqueKeys}`, property: 'password' },
        { path: 'env', format: 'dotenv', items: [{ name: 'NEXT', key: `app/key-${(i + 1) % uniqueKeys}`, property: 'password' }] },
      ],
    },
  }));
  return { store, content, bindings };
}

async function resolveAll(w: World): Promise<number[]> {
  const signal = new AbortController().signal;
  return Promise.all(
    w.bindings.map(async (binding) => {
      const t = performance.now();
      const result = await w.content.resolve(binding, signal);
      if (result.kind !== 'resolved') throw new Error(`bench binding failed: ${result.reason}`);
      return performance.now() - t;
    }),
  );
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

const rows: string[][] = [];
for (const n of [1, 10, 100, 1000]) {
  const w = world(n);
  const perRound: { reads: number; checks: number }[] = [];
  for (let round = 0; round < 3; round++) {
    const before = { reads: w.store.stats.reads, checks: w.store.stats.versionChecks };
    await resolveAll(w);
    perRound.push({ reads: w.store.stats.reads - before.reads, checks: w.store.stats.versionChecks - before.checks });
    await sleep(refreshMs + 50);
  }
  rows.push([
    `reads per refresh, ${n} binding${n === 1 ? '' : 's'}`,
    perRound.map((r) => r.reads).join(' / '),
    perRound.map((r) => r.checks).join(' / '),
    `${Math.min(n + 1, uniqueKeys)} (unique secrets used)`,
  ]);
}

const latency: string[][] = [];
for (const n of [1000, 5000]) {
  const w = world(n);
  await resolveAll(w); // warm: first reads
  await sleep(refreshMs + 50);
  const times = await resolveAll(w);
  const heapBefore = process.memoryUsage().heapUsed;
  latency.push([`${n} bindings resolved at once, after a refresh: time to each`, `${quantile(times, 0.5).toFixed(1)} ms`, `${quantile(times, 0.99).toFixed(1)} ms`, `heap ${(heapBefore / 2 ** 20).toFixed(0)} MiB, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`]);
}

latency.push(await eventDrivenRow());

const print = (header: string[], table: string[][]): void => {
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  process.stdout.write(`${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${table.map(line).join('\n')}\n\n`);
};
process.stdout.write('secret-binder bench (one run; fake backend in process)\n\n');
print(['scenario', 'value reads (round 1/2/3)', 'version checks (round 1/2/3)', 'target'], rows);
print(['scenario', 'median', 'p99', 'memory'], latency);
print(['image', 'size on disk'], footprintRows(process.cwd()));
print(['scenario', 'value reads per backend (round 1/2/3)', 'version checks per backend (round 1/2/3)', 'resolution time (round 3)', 'target'], await runMultiBackendBench());
