import { describe, expect, it } from '@jest/globals';
import * as promClient from 'prom-client';
import { Counter, Gauge, Histogram, Registry } from './prom-client-core.ts';

describe('prom-client-core', () => {
  it('exports the very classes of the prom-client index', () => {
    expect(Counter).toBe(promClient.Counter);
    expect(Gauge).toBe(promClient.Gauge);
    expect(Histogram).toBe(promClient.Histogram);
    expect(Registry).toBe(promClient.Registry);
  });

  it('registers and renders metrics in a registry of its own', async () => {
    const registry = new Registry();
    new Gauge({ name: 'core_test_gauge', help: 'a gauge', registers: [registry] }).set(3);
    new Counter({ name: 'core_test_total', help: 'a counter', registers: [registry] }).inc(2);
    new Histogram({ name: 'core_test_seconds', help: 'a histogram', buckets: [1], registers: [registry] }).observe(0.5);
    const text = await registry.metrics();
    expect(text).toContain('core_test_gauge 3');
    expect(text).toContain('core_test_total 2');
    expect(text).toContain('core_test_seconds_bucket{le="1"} 1');
  });
});
