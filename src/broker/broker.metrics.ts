import type { Registry } from 'prom-client';
import { reasons } from '../api/v1alpha1/index.ts';
import { defineCounter, defineGauge, defineHistogram, durationBucketsSeconds } from '../observability/metrics.ts';

/** Broker metrics: closed label sets only (endpoint, result, a reason from the closed list). */

export const brokerEndpoints = ['publish', 'publish-batch', 'changes', 'agent-publish', 'agent-changes'] as const;
export type BrokerEndpoint = (typeof brokerEndpoints)[number];
export const brokerResults = ['delivered', 'denied', 'changed', 'unchanged', 'revoked'] as const;
export type BrokerResult = (typeof brokerResults)[number];
const decisionReasons = ['none', ...reasons] as const;

export type BrokerMetrics = ReturnType<typeof createBrokerMetrics>;

/** The metric types are inferred from their closed label lists. */
export function createBrokerMetrics(registry: Registry) {
  return {
    decisions: defineCounter(registry, {
      name: 'secretbinder_broker_decisions_total',
      help: 'Broker decisions by endpoint, result and reason (a reason from the closed list, or none).',
      labels: { endpoint: brokerEndpoints, result: brokerResults, reason: decisionReasons },
    }),
    duration: defineHistogram(registry, {
      name: 'secretbinder_broker_request_duration_seconds',
      help: 'Duration of broker requests in seconds (publish: until the answer; changes: including the long-poll wait).',
      labels: { endpoint: brokerEndpoints },
      buckets: [...durationBucketsSeconds, 60],
    }),
    waiting: defineGauge(registry, {
      name: 'secretbinder_broker_waiting_requests',
      help: 'Change-stream long polls currently held open.',
      labels: {},
    }),
  };
}
