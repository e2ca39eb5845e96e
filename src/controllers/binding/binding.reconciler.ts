import type { V1Pod } from '@kubernetes/client-node';
import {
  apiVersion,
  findCondition,
  group,
  resources,
  setConditions,
  version,
  type ConditionUpdate,
  type SecretBinding,
  type SecretBindingStatus,
} from '../../api/v1alpha1/index.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import { RetryError, type ReconcileContext, type ReconcileResult, type Reconciler } from '../../runtime/reconciler.ts';
import { publishStatus, type StatusPublisher } from '../status-sync.ts';
import { pollSchedule, type BackendHealth, type BindingContent, type BindingContentResolver } from './binding-content.ts';
import { countConsumers } from './consumers.ts';
import { consumingPods as consumingPodsOf } from './pod-selection.ts';
import type { KeyPoller } from './key-poller.ts';
import type { LeaseKeeper } from '../../dynamic/lease-keeper.ts';

export { backendRefKey } from './binding-content.ts';

export interface BindingReconcilerDeps {
  readonly bindings: CacheReader<SecretBinding>;
  /** Indexed under `podLabelIndex` (pod-selection.ts). */
  readonly pods: CacheReader<V1Pod>;
  /** Whether the pod cache of a namespace has listed: consumer counts from a cold cache would be wrong writes. */
  readonly podsSynced: (namespace: string) => boolean;
  readonly content: BindingContentResolver;
  /** Dynamic bindings' leases (issue 21); absent: dynamic bindings are refused. */
  readonly leases?: Pick<LeaseKeeper, 'reconcile' | 'release'>;
  readonly publisher: StatusPublisher;
  /** Which hash each consuming pod holds (the broker's change hub); absent without a broker. */
  readonly deliveries?: { staleConsumers(namespace: string, name: string, podUids: readonly string[], current: string): number };
  /**
   * Polls the secrets of healthy bindings once per interval and queues a binding when one of them
   * moves (ADR 0203); absent, every binding is reconciled once per refresh interval.
   */
  readonly poller?: Pick<KeyPoller, 'track' | 'untrack'>;
  readonly clock: Clock;
  readonly logger: Logger;
}

type Conclusion = BindingContent;

/** Annotation whose every new value asks for a check of the binding's secrets now (`kubectl-secretbinder refresh`). */
export const refreshRequestedAnnotation = 'secretbinder.dev/refresh-requested';

/**
 * Converges a SecretBinding: resolves its backend and access, computes its file set through the
 * resolver (one read per unique secret, shared with every other binding), and publishes what it
 * found — content HMAC, versions, consumers, conditions — never a value, and only when changed.
 */
export class BindingReconciler implements Reconciler {
  readonly #deps: BindingReconcilerDeps;
  /** The refresh-requested value last acted on, per binding: in memory only, never written to status. */
  readonly #refreshHandled = new Map<string, string>();
  /** Per binding, the {@link statusFingerprint} of the status this replica last concluded. */
  readonly #concluded = new Map<string, string>();

  constructor(deps: BindingReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string, context: ReconcileContext): Promise<ReconcileResult> {
    const binding = this.#deps.bindings.get(key);
    // Gone or going: nothing to publish; consumers lose access through the broker's own checks.
    if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) {
      this.#refreshHandled.delete(key);
      this.#concluded.delete(key);
      this.#deps.poller?.untrack(key);
      // A deleted dynamic binding's leases are revoked; a backend failure throws and is retried.
      if (binding === undefined) await this.#deps.leases?.release(key, context.signal);
      return {};
    }
    // The namespace's pod cache starts when its first binding appears; publishing before it has
    // listed would count zero consumers and write a status that is wrong a moment later. Its first
    // sync queues the namespace's bindings (compose/binding.ts); the requeue is only a safety net.
    if (!this.#deps.podsSynced(binding.metadata.namespace ?? '')) return { requeueAfterMs: 5000 };
    const refreshMs = this.#deps.content.refreshIntervalMs(binding);
    if (binding.spec.dynamic !== undefined || binding.spec.pki !== undefined) return this.#reconcileDynamic(key, binding, refreshMs, context.signal);
    // A new refresh-requested value bypasses the cache's freshness once; the same value seen
    // again (any other reconcile) is a no-op. After a controller restart a present value counts
    // as new: one extra version check, nothing written.
    const requested = binding.metadata.annotations?.[refreshRequestedAnnotation];
    const refresh = requested !== undefined && this.#refreshHandled.get(key) !== requested;
    if (requested === undefined) this.#refreshHandled.delete(key);
    else this.#refreshHandled.set(key, requested);
    const conclusion = await this.#deps.content.resolve(binding, context.signal, { refresh });
    const { staleConsumers } = await this.#publish(binding, conclusion);
    const poller = this.#deps.poller;
    if (poller !== undefined) {
      const healthy =
        conclusion.kind === 'resolved' &&
        conclusion.polled !== undefined &&
        conclusion.stale === undefined &&
        (conclusion.backends ?? []).every((b) => b.state === 'Current') &&
        (staleConsumers ?? 0) === 0;
      if (healthy) {
        // Current and every consumer holds it: the key poller checks its secrets from now on
        // and queues it when one moves (ADR 0203). A slow resync stays, so an event the caches
        // never delivered heals within it.
        poller.track(key, conclusion.polled ?? [], refreshMs);
        return { requeueAfterMs: healthyResyncMs(refreshMs, Math.random) };
      }
      // Degraded, failed, or consumers still to catch up: looked at again every interval, as below.
      poller.untrack(key);
    }
    if (conclusion.kind === 'failed' && conclusion.retry) {
      // Outages and throttling: retried with the queue's per-key backoff (the resolver's failure
      // hold keeps the backend from being hammered meanwhile), but at least once per refresh
      // interval, so a binding sees its backend back within its interval (ADR 0106, ADR 0171).
      throw new RetryError(conclusion.reason, `${key}: ${conclusion.reason}`, pollSchedule(refreshMs).nextInMs);
    }
    // Healthy or refused for a reason that only a change elsewhere fixes: look again at the next
    // refresh (a missing key may be created, a refused credential replaced).
    return { requeueAfterMs: pollSchedule(refreshMs).nextInMs };
  }

  /**
   * Whether the binding's status (as the cache now holds it) is not what this replica last
   * concluded: a status written elsewhere, or a conclusion that skipped its write because the cache
   * still held an older status that happened to equal it (a watch gap, e.g. an API server restart).
   * The binding controller queues such a binding again; our own writes come back equal and queue
   * nothing. Healthy bindings are not reconciled every interval any more (ADR 0203), so this is
   * what heals a write skipped against a stale cache.
   */
  statusDiverged(binding: SecretBinding): boolean {
    const concluded = this.#concluded.get(`${binding.metadata.namespace ?? ''}/${binding.metadata.name ?? ''}`);
    return concluded !== undefined && concluded !== statusFingerprint(binding.status);
  }

  /**
   * A dynamic binding: its leases renewed, re-issued or revoked, and a status that names the source
   * and the consumers, with a content hash of the binding's dynamic spec (each pod holds its own
   * credential, so no single hash of content exists; ADR 0262).
   */
  async #reconcileDynamic(key: string, binding: SecretBinding, refreshMs: number, signal: AbortSignal): Promise<ReconcileResult> {
    const pods = this.#deps.pods.listNamespace(binding.metadata.namespace ?? '');
    const outcome =
      this.#deps.leases === undefined
        ? ({ kind: 'failed', reason: 'InvalidSpec', message: 'dynamic bindings are not supported by this controller', retry: false } as const)
        : await this.#deps.leases.reconcile(binding, pods, signal);
    const conclusion: Conclusion =
      'ok' in outcome
        ? { kind: 'resolved', files: [], hmac: outcome.result.hmac, versions: [{ key: binding.spec.dynamic?.path ?? `${binding.spec.pki?.mount ?? 'pki'}/sign/${binding.spec.pki?.role ?? ''}`, version: 'leased' }], stale: undefined }
        : outcome;
    await this.#publish(binding, conclusion);
    const poll = pollSchedule(refreshMs).nextInMs;
    if (conclusion.kind === 'failed' && conclusion.retry) throw new RetryError(conclusion.reason, `${key}: ${conclusion.reason}`, poll);
    // Next look: the next renewal, re-issue or revocation due, else the refresh interval.
    return { requeueAfterMs: 'ok' in outcome ? Math.min(poll, outcome.result.nextDueMs ?? poll) : poll };
  }

  /**
   * Consumers known to hold another hash than the published one. Counted when the reconcile runs
   * (at least once per interval), not on every delivery: a rotation costs at most one more write,
   * when the count settles (invariant 5).
   */
  #stale(binding: SecretBinding, consumers: readonly V1Pod[], hmac: string | undefined): { stale?: number } {
    if (this.#deps.deliveries === undefined || hmac === undefined) return {};
    const uids = consumers.flatMap((p) => (p.metadata?.uid === undefined ? [] : [p.metadata.uid]));
    const stale = this.#deps.deliveries.staleConsumers(binding.metadata.namespace ?? '', binding.metadata.name ?? '', uids, hmac);
    // Each pod of a dynamic binding holds its own hash: a count against the binding's would be wrong.
    return binding.spec.dynamic === undefined && binding.spec.pki === undefined ? { stale } : {};
  }

  /** Publishes the conclusion; says how many consumers hold another hash (when the broker tells). */
  async #publish(binding: SecretBinding, conclusion: Conclusion): Promise<{ staleConsumers: number | undefined }> {
    const now = this.#deps.clock.wallNow();
    const current = binding.status;
    const generation = binding.metadata.generation;
    const consumingPods = consumingPodsOf(binding, this.#deps.pods);
    const consumers = countConsumers(consumingPods);
    let updates: ConditionUpdate[];
    let content: Pick<SecretBindingStatus, 'contentHmac' | 'backendVersions' | 'lastSyncTime' | 'lastRotationTime' | 'backends' | 'sources'>;
    if (conclusion.kind === 'failed') {
      updates = [
        { type: 'Ready', status: 'False', reason: conclusion.reason, message: conclusion.message, observedGeneration: generation },
        { type: 'Degraded', status: 'False', reason: conclusion.reason, message: 'not serving', observedGeneration: generation },
      ];
      // Keep what was last published: it is what running pods hold.
      content = {
        contentHmac: current?.contentHmac,
        backendVersions: current?.backendVersions,
        lastSyncTime: current?.lastSyncTime,
        lastRotationTime: current?.lastRotationTime,
        // Which backend blocks (when the binding got as far as its backends); sources as last served.
        backends: conclusion.backends === undefined ? current?.backends : healthStatus(conclusion.backends),
        sources: current?.sources,
      };
    } else {
      const files = binding.spec.dynamic?.files.length ?? (binding.spec.pki === undefined ? binding.spec.files.length : 3);
      updates = [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Reconciled',
          message: `${files} file${files === 1 ? '' : 's'} resolved`,
          observedGeneration: generation,
        },
        conclusion.stale === undefined
          ? { type: 'Degraded', status: 'False', reason: 'Reconciled', message: 'content is current', observedGeneration: generation }
          : { type: 'Degraded', status: 'True', reason: conclusion.stale.reason, message: conclusion.stale.message, observedGeneration: generation },
      ];
      const changed = current?.contentHmac !== conclusion.hmac;
      const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
      content = {
        contentHmac: conclusion.hmac,
        backendVersions: conclusion.versions,
        lastSyncTime: changed ? stamp : current.lastSyncTime,
        lastRotationTime: changed && current?.contentHmac !== undefined ? stamp : current?.lastRotationTime,
        backends: conclusion.backends === undefined ? undefined : healthStatus(conclusion.backends),
        sources: conclusion.sources === undefined || conclusion.sources.length === 0 ? undefined : conclusion.sources.map((s) => ({ ...s })),
      };
    }
    const desiredHmac = content.contentHmac;
    const stale = this.#stale(binding, consumingPods, desiredHmac);
    const desired: SecretBindingStatus = {
      observedGeneration: generation,
      conditions: setConditions(current?.conditions, updates, now),
      ...content,
      consumers: { ...current?.consumers, pods: consumers.pods, workloads: consumers.workloads, ...stale },
    };
    const name = binding.metadata.name ?? '';
    const namespace = binding.metadata.namespace;
    this.#concluded.set(`${namespace ?? ''}/${name}`, statusFingerprint(desired));
    const wrote = await publishStatus(this.#deps.publisher, {
      ref: { group, version, plural: resources.SecretBinding.plural, namespace, name },
      subject: { apiVersion, kind: 'SecretBinding', namespace, name, uid: binding.metadata.uid },
      current,
      desired,
    });
    if (wrote && desired.lastRotationTime !== current?.lastRotationTime) {
      // One Event per content change (never on a restart: the HMAC is stable), naming versions only.
      const versions = (desired.backendVersions ?? []).map((v) => `${v.backend === undefined ? '' : `${v.backend}:`}${v.key}@${v.version}`).join(', ');
      await this.#deps.publisher.events.record(
        { apiVersion, kind: 'SecretBinding', namespace, name, uid: binding.metadata.uid },
        { type: 'Normal', reason: 'Rotated', message: `content changed to ${desired.contentHmac ?? ''} (${versions})` },
      );
    }
    if (wrote) {
      this.#deps.logger.info('binding status updated', {
        binding: `${namespace ?? ''}/${name}`,
        ready: updates[0]?.status,
        reason: updates[0]?.reason,
        contentHmac: desired.contentHmac,
      });
    }
    return { staleConsumers: stale.stale };
  }
}

/** What decides whether a status is the one concluded: readiness, content, generation, consumers. */
function statusFingerprint(status: SecretBindingStatus | undefined): string {
  const ready = findCondition(status?.conditions, 'Ready');
  const degraded = findCondition(status?.conditions, 'Degraded');
  return JSON.stringify([
    ready?.status, ready?.reason, degraded?.status, degraded?.reason, status?.contentHmac, status?.observedGeneration,
    status?.consumers?.pods, status?.consumers?.workloads, status?.consumers?.stale,
  ]);
}

/** How often a healthy binding the key poller watches is reconciled anyway: 10 intervals, at least 5 minutes, ±10 %. */
export function healthyResyncMs(refreshMs: number, random: () => number): number {
  return Math.max(10 * refreshMs, 300_000) * (0.9 + 0.2 * random());
}

/** status.backends: plain objects in a stable order (the binding's order), no message when healthy. */
function healthStatus(health: readonly BackendHealth[]): SecretBindingStatus['backends'] {
  return health.map((h) => ({
    name: h.name,
    kind: h.kind,
    backendName: h.backendName,
    state: h.state,
    reason: h.reason,
    ...(h.message === undefined ? {} : { message: h.message.slice(0, 1024) }),
  }));
}
