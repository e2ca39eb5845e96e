/**
 * `npm run bench -- --tier scale --series 500,1000,2000,5000 [--docs] [--peers-up-to N] [tier options]`: the scale
 * tier once per size (ADR 0271), each in a world of its own, then SVG charts of how cost grows
 * with work — controller RSS, time to all Ready, API requests — with the peers' points (`--peers
 * eso`) on the same axes. Writes bench-results/series.json and bench-results/scale-*.svg; with
 * `--docs`, copies the charts to docs/performance/. The node and webhook rows do not depend on the
 * number of bindings: each point runs them at token sizes unless their options are given.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeReportJson } from './scale-world.ts';
import { scaleFigures } from './scale-report.ts';
import { runScaleBench } from './scale.ts';
import { writeCharts, type Chart, type SeriesPoint } from './scale-charts.ts';

const tokenNodeSizes = ['--nodes', '1', '--volumes', '1', '--plugin-volumes', '1', '--concurrent-mounts', '1', '--admissions', '5'];

/** Removes `--name value` / `--name=value` (and a bare `--name` flag) from argv. */
function without(argv: readonly string[], name: string, takesValue: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === `--${name}`) {
      if (takesValue) i++;
      continue;
    }
    if (arg.startsWith(`--${name}=`)) continue;
    out.push(arg);
  }
  return out;
}

function valueOf(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

export async function runScaleSeries(argv: readonly string[]): Promise<string> {
  const sizes = (valueOf(argv, 'series') ?? '').split(',').map(Number);
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--series must be a comma-separated list of binding counts, e.g. 500,1000,2000,5000');
  const docs = argv.includes('--docs');
  const outDir = 'bench-results';
  // Peers can take far longer than we do (ESO: ~100 s per 1,000 objects here): `--peers-up-to N`
  // runs them only at sizes ≤ N, so a long series still has their points where they ran.
  const peersUpTo = Number(valueOf(argv, 'peers-up-to') ?? Number.POSITIVE_INFINITY);
  if (Number.isNaN(peersUpTo)) throw new Error('--peers-up-to must be a number of bindings');
  let base = without(without(without(without(without(argv, 'series', true), 'docs', false), 'bindings', true), 'out', true), 'peers-up-to', true);
  if (!base.includes('--nodes') && !base.some((a) => a.startsWith('--nodes='))) base = [...base, ...tokenNodeSizes];
  const points: { bindings: number; rows: unknown; peers: unknown; syncApiRequests: number | undefined }[] = [];
  const rss: SeriesPoint[] = [];
  const ready: SeriesPoint[] = [];
  const api: SeriesPoint[] = [];
  const tables: string[] = [];
  for (const [i, n] of sizes.entries()) {
    process.stderr.write(`[series] ${String(n)} bindings (${String(i + 1)} of ${String(sizes.length)})\n`);
    const args = n > peersUpTo ? without(base, 'peers', true) : base;
    const result = await runScaleBench([...args, '--bindings', String(n), '--out', join(outDir, `scale-${String(n)}.json`), ...(i > 0 ? ['--skip-build'] : [])]);
    points.push({ bindings: n, rows: result.rows, peers: result.peers, syncApiRequests: result.syncApiRequests });
    tables.push(`### ${String(n)} bindings\n\n${result.markdown}\n`);
    const numbers = (figure: (typeof scaleFigures)[number]): Readonly<Record<string, number>> => result.rows.find((r) => r.figure === figure)?.numbers ?? {};
    const at = numbers(scaleFigures[1]);
    if (at.settledMiB !== undefined) rss.push({ bindings: n, series: 'secret-binder, settled', value: at.settledMiB });
    if (at.peakMiB !== undefined) rss.push({ bindings: n, series: 'secret-binder, peak', value: at.peakMiB });
    const idle = numbers(scaleFigures[0]).rssMiB;
    if (idle !== undefined) rss.push({ bindings: n, series: 'secret-binder, idle (no object yet)', value: idle });
    const allReady = numbers(scaleFigures[3]).ms;
    if (allReady !== undefined) ready.push({ bindings: n, series: 'secret-binder', value: allReady / 1000 });
    if (result.syncApiRequests !== undefined) api.push({ bindings: n, series: 'secret-binder', value: result.syncApiRequests });
    for (const peer of result.peers) {
      const figure = (prefix: string): number | undefined => peer.figures.find((f) => f.figure.startsWith(prefix) || f.figure.includes(prefix))?.theirs;
      const peak = figure('objects: peak RSS');
      const settled = figure('objects: settled RSS');
      const synced = figure('objects → all Ready');
      const requests = figure('API requests');
      if (peak !== undefined) rss.push({ bindings: n, series: `${peer.peer}, peak`, value: peak });
      if (settled !== undefined) rss.push({ bindings: n, series: `${peer.peer}, settled`, value: settled });
      if (synced !== undefined) ready.push({ bindings: n, series: peer.peer, value: synced });
      if (requests !== undefined) api.push({ bindings: n, series: peer.peer, value: requests });
    }
  }
  writeReportJson(join(outDir, 'series.json'), { date: new Date().toISOString(), sizes, args: base, points });
  const charts: Chart[] = [
    { file: 'scale-rss.svg', title: 'Controller RSS vs bindings', yTitle: 'RSS (MiB)', points: rss },
    { file: 'scale-ready.svg', title: 'Bindings created at once → all Ready', yTitle: 'seconds', points: ready },
    { file: 'scale-api-requests.svg', title: 'API requests to sync (at the API server)', yTitle: 'requests', points: api },
  ];
  const written = await writeCharts(charts, outDir);
  if (docs) {
    mkdirSync('docs/performance', { recursive: true });
    for (const path of written) copyFileSync(path, join('docs/performance', basename(path)));
  }
  return `${tables.join('\n')}\ncharts: ${written.join(', ')}${docs ? ' (copied to docs/performance/)' : ''}\n`;
}
