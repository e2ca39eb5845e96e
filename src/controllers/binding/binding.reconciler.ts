import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import {
  apiVersion,
  defaults,
  group,
  reasonForBackendError,
  resources,
  setConditions,
  version,
  type AnyBackend,
  type ConditionUpdate,
  type Reason,
  type SecretBinding,
  type SecretBindingStatus,
} from '../../api/v1alpha1/index.ts';
import { parseDurationMs } from '../../api/v1alpha1/duration.ts';
import { BackendError } from '../../backends/backend.port.ts';
import { PropertyError, type ResolveOutcome, type SecretResolver } from '../../backends/resolver/resolver.ts';
import { renderFiles, valueRefId, valueRefsOf, type FileTemplate, type ValueRef } from '../../delivery/files/file-set.ts';
import { contentHmac } from '../../observability/content-hmac.ts';
import type { Logger } from '../../observability/logger.ts';
import type { SecretValue } from '../../observability/secret-value.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../runtime/reconciler.ts';
import type { BackendPool } from '../backend/backend-pool.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import { publishStatus, type StatusPublisher } from '../status-sync.ts';
import { checkAccess } from './access-rules.ts';
import { countConsumers } from './consumers.ts';
import { fileTemplates } from './file-templates.ts';

export interface BindingReconcilerDeps {
  readonly bindings: CacheReader<SecretBinding>;
  readonly clusterBackends: CacheReader<AnyBackend>;
  readonly namespacedBackends: CacheReader<AnyBackend>;
  readonly namespaces: CacheReader<V1Namespace>;
  readonly pods: CacheReader<V1Pod>;
  /** Whether the pod cache of a namespace has listed: consumer counts from a cold cache would be wrong writes. */
  readonly podsSynced: (namespace: string) => boolean;
  readonly pool: BackendPool;
  readonly resolver: SecretResolver;
  /** Key of the content HMACs in status (stable across restarts, so status does not churn). */
  readonly contentKey: SecretValue;
  readonly publisher: StatusPublisher;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How long one reconcile waits for the backend. */
  readonly resolveTimeoutMs: number;
}

/** The backend queue key a binding refers to (also the index the binding cache is keyed by). */
export function backendRefKey(binding: SecretBinding): string {
  const ref = binding.spec.backendRef;
  return ref.kind === 'ClusterSecretBackend'
    ? `ClusterSecretBackend/${ref.name}`
    : `SecretBackend/${binding.metadata.namespace ?? ''}/${ref.name}`;
}

type Conclusion =
  | { readonly kind: 'failed'; readonly reason: Reason; readonly message: string; readonly retry: boolean }
  | {
      readonly kind: 'resolved';
      readonly hmac: string;
      readonly versions: { key: string; version: string }[];
      readonly stale: { readonly reason: Reason; readonly message: string } | undefined;
    };

/**
 * Converges a SecretBinding: resolves its backend and access, computes its file set through the
 * resolver (one read per unique secret, shared with every other binding), and publishes what it
 * found — content HMAC, versions, consumers, conditions — never a value, and only when changed.
 */
export class BindingReconciler implements Reconciler {
  readonly #deps: BindingReconcilerDeps;

  constructor(deps: BindingReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string, context: ReconcileContext): Promise<ReconcileResult> {
    const binding = this.#deps.bindings.get(key);
    // Gone or going: nothing to publish; consumers lose access through the broker's own checks.
    if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) return {};
    // The namespace's pod cache starts when its first binding appears; publishing before it has
    // listed would count zero consumers and write a status that is wrong a moment later.
    if (!this.#deps.podsSynced(binding.metadata.namespace ?? '')) return { requeueAfterMs: 250 };
    const refreshMs = parseDurationMs(binding.spec.refreshInterval ?? defaults.refreshInterval);
    const conclusion = await this.#conclude(binding, context.signal, refreshMs);
    await this.#publish(binding, conclusion);
    if (conclusion.kind === 'failed' && conclusion.retry) {
      // Outages and throttling: retried with the queue's per-key backoff (the resolver's failure
      // hold keeps the backend from being hammered meanwhile).
      throw new Error(`${key}: ${conclusion.reason}`);
    }
    // Healthy or refused for a reason that only a change elsewhere fixes: look again at the next
    // refresh (a missing key may be created, a refused credential replaced).
    return { requeueAfterMs: refreshMs };
  }

  async #conclude(binding: SecretBinding, signal: AbortSignal, refreshMs: number): Promise<Conclusion> {
    const namespace = binding.metadata.namespace ?? '';
    const refKey = backendRefKey(binding);
    const ref = binding.spec.backendRef;
    const backend =
      ref.kind === 'ClusterSecretBackend'
        ? this.#deps.clusterBackends.get(ref.name)
        : this.#deps.namespacedBackends.get(`${namespace}/${ref.name}`);
    if (backend === undefined) {
      // A backend created later enqueues its bindings; no retry needed until then.
      return { kind: 'failed', reason: 'BackendNotFound', message: `${ref.kind ?? 'SecretBackend'} ${ref.name} not found`, retry: false };
    }

    let templates: FileTemplate[];
    try {
      templates = fileTemplates(binding.spec.files);
    } catch (error) {
      return { kind: 'failed', reason: 'InvalidSpec', message: error instanceof Error ? error.message : String(error), retry: false };
    }
    const refs = valueRefsOf(templates);

    if (backend.kind === 'ClusterSecretBackend') {
      const ns = this.#deps.namespaces.get(namespace);
      const decision = checkAccess(
        backend.spec.access,
        { name: namespace, labels: ns?.metadata?.labels },
        [...new Set(refs.map((r) => r.key))],
        ref.name,
      );
      // A denial lasts until the backend's rules or the namespace's labels change; both enqueue us.
      if (!decision.allowed) return { kind: 'failed', reason: 'AccessDenied', message: decision.message, retry: false };
    }

    let pooled;
    try {
      pooled = await this.#deps.pool.ensure(backendQueueKey(backend), backend);
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      return { kind: 'failed', reason: 'BackendNotReady', message: `${refKey}: ${error.message}`, retry: false };
    }

    const policy = binding.spec.onBackendUnavailable;
    const serveStaleUpToMs =
      (policy?.policy ?? defaults.onBackendUnavailable.policy) === 'ServeLastKnownGood'
        ? policy?.maxStaleness === undefined || policy.maxStaleness === ''
          ? Number.POSITIVE_INFINITY
          : parseDurationMs(policy.maxStaleness)
        : undefined;
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.#deps.resolveTimeoutMs)]);
    const secretRefs = dedupeSecretRefs(refs);
    // Cheap version checks first: a value is read only where the version moved.
    await this.#deps.resolver.checkVersions(pooled.backendId, secretRefs, { maxAgeMs: refreshMs, signal: timeout });
    const outcomes = await this.#deps.resolver.resolveAll(
      refs.map((r) => ({ backendId: pooled.backendId, ref: { key: r.key, version: r.version }, property: r.property })),
      { maxAgeMs: refreshMs, serveStaleUpToMs, signal: timeout },
    );

    const failed = outcomes.find((o): o is Extract<ResolveOutcome, { ok: false }> => !o.ok);
    if (failed !== undefined) return failure(failed);

    const values = new Map<string, SecretValue>();
    const versions = new Map<string, { key: string; version: string }>();
    let stale: { reason: Reason; message: string } | undefined;
    refs.forEach((r, i) => {
      const outcome = outcomes[i];
      if (outcome === undefined || !outcome.ok) return;
      values.set(valueRefId(r), outcome.resolution.value);
      versions.set(`${r.key}\u0000${outcome.resolution.version}`, { key: r.key, version: outcome.resolution.version });
      if (outcome.resolution.stale && stale === undefined) {
        stale = {
          reason: 'ServingLastKnownGood',
          message: `backend ${refKey} failed (${reasonForBackendError(outcome.resolution.cause.kind)}); serving last-known-good content`,
        };
      }
    });
    const files = renderFiles(templates, (r: ValueRef) => {
      const value = values.get(valueRefId(r));
      if (value === undefined) throw new Error('resolved value missing');
      return value;
    });
    return {
      kind: 'resolved',
      hmac: contentHmac(this.#deps.contentKey, files),
      versions: [...versions.values()].sort((a, b) => (a.key === b.key ? cmp(a.version, b.version) : cmp(a.key, b.key))),
      stale,
    };
  }

  async #publish(binding: SecretBinding, conclusion: Conclusion): Promise<void> {
    const now = this.#deps.clock.wallNow();
    const current = binding.status;
    const generation = binding.metadata.generation;
    const consumers = countConsumers(binding, this.#deps.pods.listNamespace(binding.metadata.namespace ?? ''));
    let updates: ConditionUpdate[];
    let content: Pick<SecretBindingStatus, 'contentHmac' | 'backendVersions' | 'lastSyncTime' | 'lastRotationTime'>;
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
      };
    } else {
      const files = binding.spec.files.length;
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
      };
    }
    const desired: SecretBindingStatus = {
      observedGeneration: generation,
      conditions: setConditions(current?.conditions, updates, now),
      ...content,
      consumers: { ...current?.consumers, pods: consumers.pods, workloads: consumers.workloads },
    };
    const name = binding.metadata.name ?? '';
    const namespace = binding.metadata.namespace;
    const wrote = await publishStatus(this.#deps.publisher, {
      ref: { group, version, plural: resources.SecretBinding.plural, namespace, name },
      subject: { apiVersion, kind: 'SecretBinding', namespace, name, uid: binding.metadata.uid },
      current,
      desired,
    });
    if (wrote) {
      this.#deps.logger.info('binding status updated', {
        binding: `${namespace ?? ''}/${name}`,
        ready: updates[0]?.status,
        reason: updates[0]?.reason,
        contentHmac: desired.contentHmac,
      });
    }
  }
}

function failure(outcome: Extract<ResolveOutcome, { ok: false }>): Conclusion {
  const { error, request } = outcome;
  const where = request.property === undefined ? `key "${request.ref.key}"` : `key "${request.ref.key}" property "${request.property}"`;
  if (error instanceof PropertyError) return { kind: 'failed', reason: 'PropertyNotFound', message: `${where}: ${error.message}`, retry: false };
  if (error instanceof BackendError) {
    return { kind: 'failed', reason: reasonForBackendError(error.kind), message: `${where}: ${error.message}`, retry: error.retryable };
  }
  // Unknown failures (a backend being replaced, a bug): retried with backoff.
  return { kind: 'failed', reason: 'InternalError', message: `${where}: ${error.message}`, retry: true };
}

function dedupeSecretRefs(refs: readonly ValueRef[]): { key: string; version: ValueRef['version'] }[] {
  const seen = new Map<string, { key: string; version: ValueRef['version'] }>();
  for (const r of refs) {
    const id = valueRefId({ key: r.key, version: r.version });
    if (!seen.has(id)) seen.set(id, { key: r.key, version: r.version });
  }
  return [...seen.values()];
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
