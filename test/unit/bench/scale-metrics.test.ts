import { describe, expect, it } from '@jest/globals';
import { boundText, histogramBuckets, quantileBetween, requestsBetween } from '../../bench/scale-metrics.ts';
import { renderSvg } from '../../bench/scale-charts.ts';

/** The scale tier reads quantiles from histogram deltas and requests from the API server's counters (ADR 0270). */
const metrics = (fast: number, mid: number, slow: number): string =>
  [
    `secretbinder_webhook_admission_duration_seconds_bucket{webhook="mutate",outcome="patched",le="0.001"} ${String(fast)}`,
    `secretbinder_webhook_admission_duration_seconds_bucket{webhook="mutate",outcome="patched",le="0.005"} ${String(fast + mid)}`,
    `secretbinder_webhook_admission_duration_seconds_bucket{webhook="mutate",outcome="patched",le="1"} ${String(fast + mid + slow)}`,
    `secretbinder_webhook_admission_duration_seconds_bucket{webhook="mutate",outcome="patched",le="+Inf"} ${String(fast + mid + slow)}`,
    `secretbinder_webhook_admission_duration_seconds_bucket{webhook="validate",outcome="allowed",le="+Inf"} 7`,
  ].join('\n');

describe('scale tier metrics', () => {
  const name = 'secretbinder_webhook_admission_duration_seconds';

  it('puts the p99 of what happened between two readings in its bucket', () => {
    const before = histogramBuckets(metrics(100, 0, 50), name, 'webhook="mutate"');
    // Since: 98 fast, 1 mid, 1 slow → p99 is the 99th of 100: in the 5 ms bucket.
    const after = histogramBuckets(metrics(198, 1, 51), name, 'webhook="mutate"');
    expect(quantileBetween(before, after, 0.99)).toEqual({ count: 100, upperBoundSeconds: 0.005 });
    expect(quantileBetween(before, after, 0.5)).toEqual({ count: 100, upperBoundSeconds: 0.001 });
    // Two slow of 100: the p99 is slow, whatever came before the first reading.
    const slower = histogramBuckets(metrics(198, 0, 52), name, 'webhook="mutate"');
    expect(quantileBetween(before, slower, 0.99).upperBoundSeconds).toBe(1);
    expect(boundText(0.005, 1)).toBe('≤ 5 ms');
    expect(boundText(Number.POSITIVE_INFINITY, 1)).toBe('> 1 s');
  });

  it('counts API requests between readings without the bench’s own', () => {
    const series = (verb: string, resource: string, scope: string): string => `apiserver_request_total{code="200",component="apiserver",group="",resource="${resource}",scope="${scope}",subresource="",verb="${verb}",version="v1"}`;
    const before = new Map([[series('LIST', 'secretbindings', 'cluster'), 10], [series('PATCH', 'secretbindings', 'namespace'), 5]]);
    const after = new Map([[series('LIST', 'secretbindings', 'cluster'), 40], [series('PATCH', 'secretbindings', 'namespace'), 25], [series('POST', 'events', 'namespace'), 3], [series('POST', 'secretbindings', 'namespace'), 100]]);
    expect(requestsBetween(before, after, { resource: 'secretbindings', verbs: ['POST', 'LIST'] })).toBe(23);
  });

  it('draws a series as an SVG chart', async () => {
    const svg = await renderSvg({ file: 'x.svg', title: 'Controller RSS vs bindings', yTitle: 'RSS (MiB)', points: [{ bindings: 500, series: 'secret-binder, settled', value: 120 }, { bindings: 1000, series: 'secret-binder, settled', value: 140 }] });
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('Controller RSS vs bindings');
    expect(svg).toContain('secret-binder, settled');
  });
});
