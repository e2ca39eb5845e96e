import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { matchesLabelSelector } from './label-selector.ts';

/** Whether a pod is a consumer of the binding: selected by podSelector and service account, and alive. */
export function isConsumer(binding: SecretBinding, pod: V1Pod): boolean {
  if (pod.metadata?.namespace !== binding.metadata.namespace) return false;
  if (pod.metadata?.deletionTimestamp !== undefined) return false;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return false;
  if (!matchesLabelSelector(binding.spec.podSelector, pod.metadata?.labels)) return false;
  const accounts = binding.spec.serviceAccountNames;
  if (accounts !== undefined && accounts.length > 0 && !accounts.includes(pod.spec?.serviceAccountName ?? 'default')) return false;
  return true;
}

/**
 * The workload a pod belongs to: its controller owner, with a ReplicaSet named after its
 * Deployment (the `pod-template-hash` label tells the suffix), so both ReplicaSets of a rollout
 * count as one workload. Bare pods are their own workload.
 */
export function workloadOf(pod: V1Pod): string {
  const owner = pod.metadata?.ownerReferences?.find((ref) => ref.controller === true);
  if (owner === undefined) return `Pod/${pod.metadata?.name ?? ''}`;
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (owner.kind === 'ReplicaSet' && hash !== undefined && owner.name.endsWith(`-${hash}`)) {
    return `Deployment/${owner.name.slice(0, -(hash.length + 1))}`;
  }
  return `${owner.kind}/${owner.name}`;
}

/** Pods and workloads among a binding's consuming pods (pod-selection.ts). */
export function countConsumers(consumers: readonly V1Pod[]): { pods: number; workloads: number } {
  return { pods: consumers.length, workloads: new Set(consumers.map(workloadOf)).size };
}
