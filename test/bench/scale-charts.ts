/**
 * SVG charts of a scale series (ADR 0271), drawn by Vega-Lite compiled to Vega and rendered
 * headless to SVG (no browser, no canvas): controller RSS, time to all Ready and API requests
 * against the number of bindings, with the peers' points on the same axes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** One measured point: a size, who was measured, which figure, its value. */
export interface SeriesPoint {
  readonly bindings: number;
  /** `secret-binder (settled)`, `External Secrets Operator v0.16.2 (peak)`, ... */
  readonly series: string;
  readonly value: number;
}

export interface Chart {
  readonly file: string;
  readonly title: string;
  readonly yTitle: string;
  readonly points: readonly SeriesPoint[];
}

function spec(chart: Chart): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: chart.title,
    width: 520,
    height: 300,
    background: 'white',
    data: { values: chart.points.map((p) => ({ ...p })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'bindings', type: 'quantitative', title: 'SecretBindings (4 pods each) / ExternalSecrets' },
      y: { field: 'value', type: 'quantitative', title: chart.yTitle, scale: { zero: true } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 360 } },
    },
  };
}

export async function renderSvg(chart: Chart): Promise<string> {
  const view = new View(parse(compile(spec(chart)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes every chart as `<dir>/<file>`; returns the paths. */
export async function writeCharts(charts: readonly Chart[], dir: string): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const chart of charts) {
    const path = join(dir, chart.file);
    writeFileSync(path, `${await renderSvg(chart)}\n`);
    paths.push(path);
  }
  return paths;
}
