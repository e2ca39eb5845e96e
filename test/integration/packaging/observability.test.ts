import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import { root } from './helm.support.ts';

/**
 * The alert rules, the Grafana dashboard and docs/metrics.md against the metrics the code defines:
 * no alert or panel on a metric that does not exist, no metric left out of the reference.
 */

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Every metric name defined in src/ (`name: 'secretbinder_…'`), with the file defining it. */
const defined = new Map<string, string>();
for (const file of sourceFiles(join(root, 'src'))) {
  for (const match of readFileSync(file, 'utf8').matchAll(/name: '(secretbinder_[a-z0-9_]+)'/g)) defined.set(match[1] ?? '', relative(root, file));
}

/** Metric names an expression uses, histogram series mapped to their histogram. */
function usedMetrics(expr: string): string[] {
  return [...expr.matchAll(/\b(secretbinder_[a-z0-9_]+)/g)].map((m) => (m[1] ?? '').replace(/_(bucket|sum|count)$/, ''));
}

interface Rule {
  alert?: string;
  expr?: string;
  for?: string;
  labels?: { severity?: string };
  annotations?: { summary?: string };
}

const rules = (parse(readFileSync(join(root, 'deploy/prometheus/secret-binder.rules.yaml'), 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);

interface Panel {
  id: number;
  title: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync(join(root, 'deploy/grafana/secret-binder.json'), 'utf8')) as { uid: string; panels: Panel[] };

describe('observability assets', () => {
  it('finds the metrics the code defines', () => {
    expect(defined.size).toBeGreaterThanOrEqual(15);
    expect(defined.has('secretbinder_leader')).toBe(true);
  });

  it('alert rules are well formed and use only defined metrics', () => {
    expect(rules.length).toBeGreaterThan(5);
    const names = new Set<string>();
    for (const rule of rules) {
      expect(rule.alert).toMatch(/^SecretBinder[A-Za-z]+$/);
      expect(names.has(rule.alert ?? '')).toBe(false);
      names.add(rule.alert ?? '');
      expect(['critical', 'warning']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary).toBeTruthy();
      const used = usedMetrics(rule.expr ?? '');
      expect(used.length).toBeGreaterThan(0);
      for (const metric of used) expect({ alert: rule.alert, metric, defined: defined.has(metric) }).toEqual({ alert: rule.alert, metric, defined: true });
    }
  });

  it('dashboard panels query only defined metrics (or process_* defaults)', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.targets?.length).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        const used = usedMetrics(target.expr);
        if (used.length === 0) expect(target.expr).toMatch(/^process_/);
        for (const metric of used) expect({ panel: panel.title, metric, defined: defined.has(metric) }).toEqual({ panel: panel.title, metric, defined: true });
      }
    }
  });

  it('docs/metrics.md describes every defined metric and no other', () => {
    const doc = readFileSync(join(root, 'docs/metrics.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/^\| `(secretbinder_[a-z0-9_]+)`/gm)].map((m) => m[1] ?? ''));
    expect([...documented].sort()).toEqual([...defined.keys()].sort());
  });
});
