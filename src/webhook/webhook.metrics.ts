import type { Registry } from 'prom-client';
import { defineHistogram, type HistogramMetric } from '../observability/metrics.ts';

/** Admission latency, seconds, by webhook and outcome (closed label sets, ADR 0051). */
export const webhookLabels = {
  webhook: ['mutate', 'validate'],
  outcome: ['allowed', 'patched', 'denied', 'error'],
} as const;

export type WebhookMetrics = HistogramMetric<typeof webhookLabels>;

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  return defineHistogram(registry, {
    name: 'secretbinder_webhook_admission_duration_seconds',
    help: 'Time to answer one AdmissionReview, from the request body read to the response written.',
    labels: webhookLabels,
    // Target p99 is 5 ms (DESIGN); buckets resolve well below and around it.
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  });
}
