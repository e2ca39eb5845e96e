/**
 * What the rotation controller needs of the API server for the workloads it restarts, as plain
 * data: read a workload's pod template and rollout status, stamp the content hash, evict a bare
 * pod. Implemented over the real API in `kube-workloads.ts`; unit tests fake it.
 */

/** The kinds whose pod template we can patch to roll them. */
export const restartableKinds = ['Deployment', 'StatefulSet', 'DaemonSet'] as const;
export type RestartableKind = (typeof restartableKinds)[number];

export function isRestartableKind(kind: string): kind is RestartableKind {
  return (restartableKinds as readonly string[]).includes(kind);
}

/** A workload as the rotation controller sees it. */
export interface WorkloadView {
  readonly kind: RestartableKind;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  /** Labels and service account of the pod template: what the bindings' selectors are matched against. */
  readonly templateLabels: Readonly<Record<string, string>>;
  readonly serviceAccountName: string | undefined;
  /** The content-hash annotation on the pod template (set only by a restart). */
  readonly templateHash: string | undefined;
  /** The content-hash annotation on the workload itself (set on adoption and on every restart). */
  readonly recordedHash: string | undefined;
  /** Whether the workload's last rollout has finished (status caught up with the spec). */
  readonly rolledOut: boolean;
}

/** A bare pod (no controller owner): its annotation is its record. */
export interface PodView {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly recordedHash: string | undefined;
}

/** The answer of the Eviction API. */
export type EvictionResult =
  | { readonly kind: 'evicted' }
  /** Refused (429): a PodDisruptionBudget does not allow it right now. */
  | { readonly kind: 'blocked'; readonly message: string }
  | { readonly kind: 'gone' };

export interface WorkloadApi {
  /** The workload, or undefined when it does not exist. */
  getWorkload(kind: RestartableKind, namespace: string, name: string, signal: AbortSignal): Promise<WorkloadView | undefined>;
  /**
   * Stamps `hash` on the workload's metadata; with `restart`, on its pod template too (which rolls
   * it). One merge patch.
   */
  stampWorkload(kind: RestartableKind, namespace: string, name: string, hash: string, restart: boolean, signal: AbortSignal): Promise<void>;
  getPod(namespace: string, name: string, signal: AbortSignal): Promise<PodView | undefined>;
  /** Records `hash` on a bare pod's metadata (no restart). */
  stampPod(namespace: string, name: string, hash: string, signal: AbortSignal): Promise<void>;
  /** Evicts a pod through the Eviction API, which honours PodDisruptionBudgets. */
  evictPod(namespace: string, name: string, signal: AbortSignal): Promise<EvictionResult>;
}
