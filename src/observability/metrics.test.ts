import { describe, expect, it } from '@jest/globals';
import { Registry, register as globalRegistry } from 'prom-client';
import { defineCounter, defineGauge, defineHistogram, durationBucketsSeconds } from './metrics.ts';

const results = ['ok', 'error'] as const;

describe('metric helpers', () => {
  it('register in the passed registry only, with closed label sets', async () => {
    const registry = new Registry();
    const before = (await globalRegistry.getMetricsAsJSON()).length;
    const calls = defineCounter(registry, { name: 'secretbinder_test_calls_total', help: 'Calls.', labels: { result: results } });
    const depth = defineGauge(registry, { name: 'secretbinder_test_depth', help: 'Depth.', labels: {} });
    const duration = defineHistogram(registry, {
      name: 'secretbinder_test_duration_seconds',
      help: 'Duration.',
      labels: { result: results },
      buckets: durationBucketsSeconds,
    });
    calls.inc({ result: 'ok' });
    calls.inc({ result: 'ok' }, 2);
    depth.set({}, 7);
    duration.observe({ result: 'error' }, 0.2);
    const text = await registry.metrics();
    expect(text).toContain('secretbinder_test_calls_total{result="ok"} 3');
    expect(text).toContain('secretbinder_test_depth 7');
    expect(text).toContain('secretbinder_test_duration_seconds_bucket{le="0.25",result="error"} 1');
    expect((await globalRegistry.getMetricsAsJSON()).length).toBe(before);
  });

  it('refuses a label value outside the declared list without echoing it', () => {
    const registry = new Registry();
    const calls = defineCounter(registry, { name: 'secretbinder_test_calls_total', help: 'Calls.', labels: { result: results } });
    const smuggled = { result: 'app/db-password' } as unknown as { result: 'ok' };
    expect(() => {
      calls.inc(smuggled);
    }).toThrow(/label result does not allow this value/);
    try {
      calls.inc(smuggled);
    } catch (err) {
      expect(String(err)).not.toContain('app/db-password');
    }
  });

  it('enforces Prometheus naming: prefix, _total counters, base-unit histograms', () => {
    const registry = new Registry();
    expect(() => defineCounter(registry, { name: 'secretbinder_calls', help: 'x', labels: {} })).toThrow(/_total/);
    expect(() => defineCounter(registry, { name: 'calls_total', help: 'x', labels: {} })).toThrow(/must match/);
    expect(() => defineGauge(registry, { name: 'secretbinder_things_total', help: 'x', labels: {} })).toThrow(/must not end/);
    expect(() =>
      defineHistogram(registry, { name: 'secretbinder_latency_ms', help: 'x', labels: {}, buckets: [1] }),
    ).toThrow(/base unit/);
    expect(() => defineCounter(registry, { name: 'secretbinder_x_total', help: 'x', labels: { bad: [] } })).toThrow(/no allowed values/);
  });
});
