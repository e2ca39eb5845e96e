import { describe, expect, it } from '@jest/globals';
import type { V1DaemonSet, V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import { rolledOut } from './kube-workloads.ts';

describe('rolledOut (a rollout holds its slot until this is true)', () => {
  const deployment = (status: V1Deployment['status'], generation = 2, replicas = 3): V1Deployment => ({ metadata: { generation }, spec: { replicas, selector: {}, template: {} }, status });

  it('Deployment: the new generation observed, every replica updated and available, no old ones left', () => {
    expect(rolledOut('Deployment', deployment({ observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }))).toBe(true);
    expect(rolledOut('Deployment', deployment({ observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3 }))).toBe(false);
    expect(rolledOut('Deployment', deployment({ observedGeneration: 2, replicas: 4, updatedReplicas: 3, availableReplicas: 3 }))).toBe(false);
    // Pods created but never available (no kubelet, a crash loop): still in progress.
    expect(rolledOut('Deployment', deployment({ observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 2 }))).toBe(false);
    expect(rolledOut('Deployment', deployment({ observedGeneration: 2 }, 2, 0))).toBe(true);
  });

  it('StatefulSet: updated and ready, the update revision current', () => {
    const sts = (status: V1StatefulSet['status']): V1StatefulSet => ({ metadata: { generation: 5 }, spec: { replicas: 2, selector: {}, serviceName: 's', template: {} }, status });
    expect(rolledOut('StatefulSet', sts({ observedGeneration: 5, replicas: 2, updatedReplicas: 2, readyReplicas: 2, currentRevision: 'b', updateRevision: 'b' }))).toBe(true);
    expect(rolledOut('StatefulSet', sts({ observedGeneration: 5, replicas: 2, updatedReplicas: 2, readyReplicas: 2, currentRevision: 'a', updateRevision: 'b' }))).toBe(false);
    expect(rolledOut('StatefulSet', sts({ observedGeneration: 5, replicas: 2, updatedReplicas: 2, readyReplicas: 1, currentRevision: 'b', updateRevision: 'b' }))).toBe(false);
  });

  it('DaemonSet: updated and available on every node that should run it', () => {
    const ds = (status: V1DaemonSet['status']): V1DaemonSet => ({ metadata: { generation: 3 }, spec: { selector: {}, template: {} }, status });
    const base = { currentNumberScheduled: 2, numberMisscheduled: 0, numberReady: 2, desiredNumberScheduled: 2 };
    expect(rolledOut('DaemonSet', ds({ ...base, observedGeneration: 3, updatedNumberScheduled: 2, numberAvailable: 2 }))).toBe(true);
    expect(rolledOut('DaemonSet', ds({ ...base, observedGeneration: 3, updatedNumberScheduled: 1, numberAvailable: 2 }))).toBe(false);
    expect(rolledOut('DaemonSet', ds({ ...base, observedGeneration: 2, updatedNumberScheduled: 2, numberAvailable: 2 }))).toBe(false);
  });
});
