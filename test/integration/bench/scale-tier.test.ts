import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScaleBench } from '../../bench/scale.ts';
import { scaleFigures, type Row } from '../../bench/scale-report.ts';

/**
 * The scale tier of `npm run bench` at a tiny size, so the bench cannot rot (ADR 0200): it builds
 * the compiled JavaScript, runs the controller from it against this run's world, and produces every
 * row of the table, in the Markdown and in the JSON file. No figure is asserted: speed and memory
 * are the bench's to report, not a test's to judge.
 */
describe('npm run bench -- --tier scale, tiny', () => {
  it('completes and reports every figure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-bench-scale-'));
    try {
      const out = join(dir, 'scale.json');
      const { rows, markdown } = await runScaleBench([
        '--tier', 'scale', '--bindings', '6', '--pods-per-binding', '1', '--unrelated', '10', '--namespaces', '2', '--keys', '4',
        '--refresh-seconds', '10', '--idle-intervals', '1', '--new-bindings', '2', '--replicas', '1', '--settle-seconds', '1', '--samples', '1',
        '--churn-seconds', '2', '--churn-bindings', '2',
        '--nodes', '2', '--volumes', '6', '--plugin-volumes', '2', '--concurrent-mounts', '2', '--admissions', '10',
        '--out', out,
      ]);
      expect(rows.map((r) => r.figure)).toEqual([...scaleFigures]);
      for (const figure of scaleFigures) expect(markdown).toContain(`| ${figure} |`);
      const written = JSON.parse(readFileSync(out, 'utf8')) as { rows: Row[] };
      expect(written.rows.map((r) => r.figure)).toEqual([...scaleFigures]);
      // Measured rows carry a number; the others say why not.
      for (const r of written.rows) {
        if (r.verdict === 'not measured') expect(r.value).toMatch(/^not measured yet/);
        else expect(Object.values(r.numbers ?? {}).every((n) => Number.isFinite(n))).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
