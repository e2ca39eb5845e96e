import type { Registry } from 'prom-client';
import { defineCounter, type CounterMetric } from '../../observability/metrics.ts';

/** The kind label: the restartable kinds, bare pods, and anything else we refused to restart. */
export const rolloutKinds = ['Deployment', 'StatefulSet', 'DaemonSet', 'Pod', 'Other'] as const;
export type RolloutKind = (typeof rolloutKinds)[number];

/**
 * How a restart ended: `triggered` (template patched or pod evicted), `blocked` (a
 * PodDisruptionBudget refused the eviction; retried), `failed` (unsupported owner or an API error).
 */
export const rolloutResults = ['triggered', 'blocked', 'failed'] as const;
export type RolloutResult = (typeof rolloutResults)[number];

export interface RotationMetrics {
  readonly rollouts: CounterMetric<{ kind: typeof rolloutKinds; result: typeof rolloutResults }>;
}

export function createRotationMetrics(registry: Registry): RotationMetrics {
  return {
    rollouts: defineCounter(registry, {
      name: 'secretbinder_rollouts_total',
      help: 'Restarts of consuming workloads caused by a content change, by workload kind and result.',
      labels: { kind: rolloutKinds, result: rolloutResults },
    }),
  };
}
