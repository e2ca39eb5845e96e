import type { Registry } from 'prom-client';
import { Counter, Gauge, Histogram } from './prom-client-core.ts';

/**
 * Metric helpers over a passed-in prom-client {@link Registry} (never the global one). Every
 * metric declares its labels with the complete list of values each may take, so no label can
 * carry a secret path, a namespace or any other unbounded name: the type checker refuses an
 * unknown value and the helper throws on one that slipped past it. Names follow Prometheus
 * conventions, checked at creation: `secretbinder_` prefix, counters end in `_total`, histograms
 * in a base unit (`_seconds`, `_bytes`). ADR 0051.
 */

/** Each label name with every value it may take. */
export type LabelSpec = Readonly<Record<string, readonly string[]>>;
/** One value for every label of a spec. */
export type LabelValues<S extends LabelSpec> = { readonly [K in keyof S]: S[K][number] };

export interface MetricDefinition<S extends LabelSpec> {
  readonly name: string;
  readonly help: string;
  readonly labels: S;
}

export interface CounterMetric<S extends LabelSpec> {
  inc(labels: LabelValues<S>, value?: number): void;
}

export interface GaugeMetric<S extends LabelSpec> {
  set(labels: LabelValues<S>, value: number): void;
  inc(labels: LabelValues<S>, value?: number): void;
  dec(labels: LabelValues<S>, value?: number): void;
}

export interface HistogramMetric<S extends LabelSpec> {
  /** Records one observation in the metric's base unit (seconds for durations). */
  observe(labels: LabelValues<S>, value: number): void;
}

/** Buckets for backend and API call durations, in seconds (5 ms .. 30 s). */
export const durationBucketsSeconds: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const namePattern = /^secretbinder_[a-z][a-z0-9_]*$/;
const labelNamePattern = /^[a-z][a-z0-9_]*$/;

export function defineCounter<const S extends LabelSpec>(registry: Registry, def: MetricDefinition<S>): CounterMetric<S> {
  checkDefinition(def);
  if (!def.name.endsWith('_total')) throw new TypeError(`counter ${def.name} must end in _total`);
  const counter = new Counter({ name: def.name, help: def.help, labelNames: Object.keys(def.labels), registers: [registry] });
  return {
    inc: (labels, value = 1) => {
      counter.inc(checkedLabels(def, labels), value);
    },
  };
}

export function defineGauge<const S extends LabelSpec>(registry: Registry, def: MetricDefinition<S>): GaugeMetric<S> {
  checkDefinition(def);
  if (def.name.endsWith('_total')) throw new TypeError(`gauge ${def.name} must not end in _total`);
  const gauge = new Gauge({ name: def.name, help: def.help, labelNames: Object.keys(def.labels), registers: [registry] });
  return {
    set: (labels, value) => {
      gauge.set(checkedLabels(def, labels), value);
    },
    inc: (labels, value = 1) => {
      gauge.inc(checkedLabels(def, labels), value);
    },
    dec: (labels, value = 1) => {
      gauge.dec(checkedLabels(def, labels), value);
    },
  };
}

export function defineHistogram<const S extends LabelSpec>(
  registry: Registry,
  def: MetricDefinition<S> & { readonly buckets: readonly number[] },
): HistogramMetric<S> {
  checkDefinition(def);
  if (!/_(seconds|bytes)$/.test(def.name)) throw new TypeError(`histogram ${def.name} must end in a base unit (_seconds or _bytes)`);
  const histogram = new Histogram({
    name: def.name,
    help: def.help,
    labelNames: Object.keys(def.labels),
    buckets: [...def.buckets],
    registers: [registry],
  });
  return {
    observe: (labels, value) => {
      histogram.observe(checkedLabels(def, labels), value);
    },
  };
}

function checkDefinition(def: MetricDefinition<LabelSpec>): void {
  if (!namePattern.test(def.name)) throw new TypeError(`metric name ${def.name} must match ${namePattern.source}`);
  for (const [label, values] of Object.entries(def.labels)) {
    if (!labelNamePattern.test(label)) throw new TypeError(`metric ${def.name}: bad label name ${label}`);
    if (values.length === 0) throw new TypeError(`metric ${def.name}: label ${label} has no allowed values`);
  }
}

function checkedLabels<S extends LabelSpec>(def: MetricDefinition<S>, labels: LabelValues<S>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [label, allowed] of Object.entries(def.labels)) {
    const value: unknown = (labels as Record<string, unknown>)[label];
    // A value outside the declared list is a programming error (the types already forbid it);
    // throwing here keeps an unbounded or secret-bearing label out of the registry for good.
    if (typeof value !== 'string' || !allowed.includes(value)) {
      throw new TypeError(`metric ${def.name}: label ${label} does not allow this value`);
    }
    out[label] = value;
  }
  return out;
}
