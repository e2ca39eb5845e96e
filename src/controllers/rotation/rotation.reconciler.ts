import type { V1Pod } from '@kubernetes/client-node';
import { apiVersion, defaults, type SecretBinding } from '../../api/v1alpha1/index.ts';
import { parseDurationMs } from '../../api/v1alpha1/duration.ts';
import type { EventRecorder, EventSubject } from '../../kube/event-recorder.ts';
import { describeKubeError } from '../../kube/kube-errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../runtime/reconciler.ts';
import { isConsumer, workloadOf } from '../binding/consumers.ts';
import { workloadContentHash } from './rollout-hash.ts';
import type { RolloutKind, RolloutResult, RotationMetrics } from './rotation.metrics.ts';
import { isRestartableKind, type RestartableKind, type WorkloadApi } from './workloads.port.ts';

export interface RotationReconcilerDeps {
  readonly bindings: CacheReader<SecretBinding>;
  readonly pods: CacheReader<V1Pod>;
  readonly api: WorkloadApi;
  readonly events: EventRecorder;
  readonly metrics: RotationMetrics;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Template rollouts in progress at once, cluster-wide (bare-pod evictions are not counted). */
  readonly maxConcurrentRollouts: number;
  /** A rollout stops counting against the cap after this long even if it never completes. */
  readonly rolloutSlotTimeoutMs: number;
}

/** How long a key waits for a free rollout slot before looking again. */
const slotRetryMs = 5_000;

/** The queue key of a workload: `Kind/namespace/name` (`Pod/namespace/name` for a bare pod). */
export function rotationKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

export function parseRotationKey(key: string): { kind: string; namespace: string; name: string } | undefined {
  const [kind, namespace, name, ...rest] = key.split('/');
  if (kind === undefined || namespace === undefined || name === undefined || rest.length > 0) return undefined;
  return { kind, namespace, name };
}

/** The rotation key of the workload a pod belongs to (see {@link workloadOf}). */
export function rotationKeyOfPod(pod: V1Pod): string {
  const [kind, name] = splitOnce(workloadOf(pod));
  return rotationKey(kind, pod.metadata?.namespace ?? '', name);
}

export function isRollingRestart(binding: SecretBinding): boolean {
  return binding.spec.rotation?.strategy === 'RollingRestart';
}

/** The workloads a RollingRestart binding's consuming pods belong to (none for other strategies). */
export function rotationKeysOfBinding(binding: SecretBinding, pods: readonly V1Pod[]): Set<string> {
  const keys = new Set<string>();
  if (!isRollingRestart(binding)) return keys;
  for (const pod of pods) if (isConsumer(binding, pod)) keys.add(rotationKeyOfPod(pod));
  return keys;
}

/** The workload of a pod, if some RollingRestart binding of its namespace selects it. */
export function rotationKeyOfConsumer(pod: V1Pod, bindings: readonly SecretBinding[]): string | undefined {
  return bindings.some((b) => isRollingRestart(b) && isConsumer(b, pod)) ? rotationKeyOfPod(pod) : undefined;
}

/**
 * Restarts the workloads that consume RollingRestart bindings when their content changes
 * (ADRs 0100-0102). The key is a workload; its desired content hash is a digest of the content
 * HMACs of every RollingRestart binding its pod template matches. The hash it was last started
 * with is recorded on the workload (and, once restarted, on its pod template). Equal hashes: no
 * write at all, so controller restarts and leader changes never roll anything. The first time a
 * workload is seen, the hash is recorded without a restart. A change waits out the bindings'
 * debounce, then takes one of a bounded number of rollout slots and patches the template with
 * the hash current at that moment — one rollout for every change within the window.
 */
export class RotationReconciler implements Reconciler {
  readonly #deps: RotationReconcilerDeps;
  /** Debounce windows: when a workload was first seen with a hash other than its recorded one. */
  readonly #windows = new Map<string, number>();
  /** Rollouts counted against the cap, with when they began. */
  readonly #inProgress = new Map<string, number>();
  /** The last hash whose failure was reported per key, so a retried failure makes one Event. */
  readonly #reportedFailure = new Map<string, string>();
  /** Owners we cannot restart: the hash first seen in this process (nothing to record it on). */
  readonly #unsupportedSeen = new Map<string, string>();

  constructor(deps: RotationReconcilerDeps) {
    this.#deps = deps;
  }

  /** Rollouts currently counted against the cap. */
  get rolloutsInProgress(): number {
    return this.#inProgress.size;
  }

  async reconcile(key: string, context: ReconcileContext): Promise<ReconcileResult> {
    const parsed = parseRotationKey(key);
    // A malformed key cannot come from our own handlers; nothing to retry.
    if (parsed === undefined) return {};
    const { kind, namespace, name } = parsed;
    if (isRestartableKind(kind)) return this.#reconcileWorkload(key, kind, namespace, name, context.signal);
    if (kind === 'Pod') return this.#reconcileBarePod(key, namespace, name, context.signal);
    return this.#reconcileUnsupported(key, kind, namespace, name);
  }

  async #reconcileWorkload(key: string, kind: RestartableKind, namespace: string, name: string, signal: AbortSignal): Promise<ReconcileResult> {
    const workload = await this.#deps.api.getWorkload(kind, namespace, name, signal);
    if (workload === undefined) return this.#forget(key);
    const template: V1Pod = {
      metadata: { namespace, labels: { ...workload.templateLabels } },
      spec: { containers: [], serviceAccountName: workload.serviceAccountName },
    };
    const bindings = this.#rollingBindings(namespace, template);
    // Until every binding that selects the workload has concluded on its current spec, the hash is
    // a partial one: adopting or rolling on it would restart the workload again when the rest
    // conclude. Their status writes enqueue the workload; a debounce window stays open meanwhile.
    if (bindings.some((b) => !concluded(b))) return {};
    const desired = desiredHash(bindings);
    // No RollingRestart binding (or none resolved yet): nothing to compare with; the annotation stays.
    if (desired === undefined) return this.#forget(key);
    const applied = workload.templateHash ?? workload.recordedHash;
    if (applied === undefined) {
      // First sight (new workload, new binding, or an upgrade): its pods already got the current
      // content when they started, so record the hash without restarting (ADR 0100).
      await this.#deps.api.stampWorkload(kind, namespace, name, desired, false, signal);
      this.#deps.logger.info('workload adopted for rolling restarts', { workload: key, contentHash: desired });
      return this.#forget(key);
    }
    if (applied === desired) return this.#forget(key);

    const wait = this.#debounce(key, bindings);
    if (wait > 0) return { requeueAfterMs: wait };
    if (!(await this.#takeSlot(key, signal))) {
      this.#deps.logger.debug('rollout waits for a free slot', { workload: key, inProgress: this.#inProgress.size });
      return { requeueAfterMs: slotRetryMs };
    }
    const subject: EventSubject = { apiVersion: 'apps/v1', kind, namespace, name, uid: workload.uid };
    try {
      await this.#deps.api.stampWorkload(kind, namespace, name, desired, true, signal);
    } catch (error) {
      this.#inProgress.delete(key);
      await this.#reportFailure(key, kind, desired, subject, bindings, `could not restart ${kind} ${namespace}/${name}: ${describeKubeError(error).message}`, 'failed');
      // API errors (conflicts, outages, missing RBAC being fixed) may pass: retried with backoff.
      throw error;
    }
    this.#windows.delete(key);
    this.#reportedFailure.delete(key);
    await this.#triggered(key, kind, desired, subject, bindings, `rolling restart of ${kind} ${namespace}/${name}: content hash ${short(desired)}`);
    return {};
  }

  async #reconcileBarePod(key: string, namespace: string, name: string, signal: AbortSignal): Promise<ReconcileResult> {
    const cached = this.#deps.pods.get(`${namespace}/${name}`);
    if (cached === undefined || cached.metadata?.deletionTimestamp !== undefined || rotationKeyOfPod(cached) !== key) return this.#forget(key);
    const bindings = this.#rollingBindings(namespace, cached);
    const desired = desiredHash(bindings);
    if (desired === undefined) return this.#forget(key);
    const pod = await this.#deps.api.getPod(namespace, name, signal);
    if (pod === undefined) return this.#forget(key);
    if (pod.recordedHash === undefined) {
      // Same as for workloads: a running pod started with the current content.
      await this.#deps.api.stampPod(namespace, name, desired, signal);
      return this.#forget(key);
    }
    if (pod.recordedHash === desired) return this.#forget(key);
    const wait = this.#debounce(key, bindings);
    if (wait > 0) return { requeueAfterMs: wait };
    const subject: EventSubject = { apiVersion: 'v1', kind: 'Pod', namespace, name, uid: pod.uid };
    const result = await this.#deps.api.evictPod(namespace, name, signal);
    switch (result.kind) {
      case 'gone':
        return this.#forget(key);
      case 'blocked':
        await this.#reportFailure(key, 'Pod', desired, subject, bindings, `eviction of pod ${namespace}/${name} refused: ${result.message}`, 'blocked');
        // A PodDisruptionBudget allows the disruption later: retried with the key's backoff.
        throw new Error(`${key}: eviction refused by a PodDisruptionBudget`);
      case 'evicted':
        this.#forget(key);
        await this.#triggered(key, 'Pod', desired, subject, bindings, `evicted bare pod ${namespace}/${name} (no controller recreates it): content hash ${short(desired)}`);
        return {};
    }
  }

  /** Pods owned by something we cannot roll (a Job, a bare ReplicaSet, a custom controller). */
  async #reconcileUnsupported(key: string, kind: string, namespace: string, name: string): Promise<ReconcileResult> {
    const pods = this.#deps.pods.listNamespace(namespace).filter((p) => rotationKeyOfPod(p) === key && p.metadata?.deletionTimestamp === undefined);
    const bindings = [...new Map(pods.flatMap((p) => this.#rollingBindings(namespace, p)).map((b) => [b.metadata.name ?? '', b])).values()];
    const desired = desiredHash(bindings);
    if (desired === undefined) {
      this.#unsupportedSeen.delete(key);
      return this.#forget(key);
    }
    const seen = this.#unsupportedSeen.get(key);
    this.#unsupportedSeen.set(key, desired);
    // First sight in this process: nothing changed yet, nothing to report.
    if (seen === undefined || seen === desired) return {};
    const subject: EventSubject = { apiVersion: 'v1', kind, namespace, name, uid: undefined };
    // Not retried: a change of owner or strategy enqueues the key again.
    await this.#reportFailure(key, 'Other', desired, subject, bindings, `cannot restart ${kind} ${namespace}/${name}: only Deployments, StatefulSets, DaemonSets and bare pods are restarted`, 'failed', false);
    return {};
  }

  #rollingBindings(namespace: string, pod: V1Pod): SecretBinding[] {
    return this.#deps.bindings
      .listNamespace(namespace)
      .filter((b) => b.metadata.deletionTimestamp === undefined && isRollingRestart(b) && isConsumer(b, pod))
      .sort((a, b) => ((a.metadata.name ?? '') < (b.metadata.name ?? '') ? -1 : 1));
  }

  /** Milliseconds still to wait before acting on a change; opens the window on first sight. */
  #debounce(key: string, bindings: readonly SecretBinding[]): number {
    const now = this.#deps.clock.now();
    const opened = this.#windows.get(key) ?? now;
    this.#windows.set(key, opened);
    // The longest debounce of the bindings involved: none of them is acted on sooner than it asked.
    const debounceMs = Math.max(...bindings.map((b) => parseDurationMs(b.spec.rotation?.debounce ?? defaults.rotation.debounce)));
    return Math.max(0, opened + debounceMs - now);
  }

  /**
   * Takes a rollout slot for `key`. When all are taken, finished rollouts (status caught up, or
   * the workload gone) and those older than the slot timeout are released first.
   */
  async #takeSlot(key: string, signal: AbortSignal): Promise<boolean> {
    if (this.#inProgress.has(key)) {
      this.#inProgress.set(key, this.#deps.clock.now());
      return true;
    }
    if (this.#inProgress.size >= this.#deps.maxConcurrentRollouts) {
      for (const [other, startedAt] of [...this.#inProgress]) {
        if (this.#deps.clock.now() - startedAt >= this.#deps.rolloutSlotTimeoutMs) {
          this.#inProgress.delete(other);
          continue;
        }
        const parsed = parseRotationKey(other);
        if (parsed === undefined || !isRestartableKind(parsed.kind)) {
          this.#inProgress.delete(other);
          continue;
        }
        const workload = await this.#deps.api.getWorkload(parsed.kind, parsed.namespace, parsed.name, signal);
        if (workload === undefined || workload.rolledOut) this.#inProgress.delete(other);
      }
    }
    if (this.#inProgress.size >= this.#deps.maxConcurrentRollouts) return false;
    this.#inProgress.set(key, this.#deps.clock.now());
    return true;
  }

  async #triggered(key: string, kind: RolloutKind, hash: string, subject: EventSubject, bindings: readonly SecretBinding[], message: string): Promise<void> {
    this.#count(kind, 'triggered');
    this.#deps.logger.info('rolling restart triggered', { workload: key, contentHash: hash, bindings: bindings.map((b) => b.metadata.name) });
    await this.#deps.events.record(subject, { type: 'Normal', reason: 'RestartTriggered', message });
    for (const b of bindings) await this.#deps.events.record(bindingSubject(b), { type: 'Normal', reason: 'RestartTriggered', message });
  }

  async #reportFailure(
    key: string,
    kind: RolloutKind,
    hash: string,
    subject: EventSubject,
    bindings: readonly SecretBinding[],
    message: string,
    result: Extract<RolloutResult, 'failed' | 'blocked'>,
    onSubject = true,
  ): Promise<void> {
    this.#count(kind, result);
    this.#deps.logger.warn('rolling restart failed', { workload: key, contentHash: hash, result, error: message });
    // One Event per workload and hash, however often the retry fails.
    if (this.#reportedFailure.get(key) === hash) return;
    this.#reportedFailure.set(key, hash);
    if (onSubject) await this.#deps.events.record(subject, { type: 'Warning', reason: 'RestartFailed', message });
    for (const b of bindings) await this.#deps.events.record(bindingSubject(b), { type: 'Warning', reason: 'RestartFailed', message });
  }

  #count(kind: RolloutKind, result: RolloutResult): void {
    this.#deps.metrics.rollouts.inc({ kind, result });
  }

  #forget(key: string): ReconcileResult {
    this.#windows.delete(key);
    this.#reportedFailure.delete(key);
    return {};
  }
}

/** Whether the binding's status describes its current spec (resolved or failed, but concluded). */
function concluded(b: SecretBinding): boolean {
  return b.status?.observedGeneration !== undefined && b.status.observedGeneration === b.metadata.generation;
}

function desiredHash(bindings: readonly SecretBinding[]): string | undefined {
  const hashes = bindings.map((b) => b.status?.contentHmac).filter((h): h is string => h !== undefined && h !== '');
  return hashes.length === 0 ? undefined : workloadContentHash(hashes);
}

function bindingSubject(b: SecretBinding): EventSubject {
  return { apiVersion, kind: 'SecretBinding', namespace: b.metadata.namespace, name: b.metadata.name ?? '', uid: b.metadata.uid };
}

function short(hash: string): string {
  return hash.slice(0, 'sha256:'.length + 12);
}

function splitOnce(value: string): [string, string] {
  const at = value.indexOf('/');
  return at < 0 ? [value, ''] : [value.slice(0, at), value.slice(at + 1)];
}
