import {
  apiVersion,
  defaults,
  group,
  reasonForError,
  resources,
  setConditions,
  version,
  type AnyBackend,
  type ConditionUpdate,
} from '../../api/v1alpha1/index.ts';
import { parseDurationMs } from '../../api/v1alpha1/duration.ts';
import { BackendError } from '../../backends/backend.port.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../runtime/reconciler.ts';
import { publishStatus, type StatusPublisher } from '../status-sync.ts';
import type { BackendPool } from './backend-pool.ts';

/** Queue keys of this reconciler: `SecretBackend/<ns>/<name>` or `ClusterSecretBackend/<name>`. */
export function backendQueueKey(backend: Pick<AnyBackend, 'kind' | 'metadata'>): string {
  const ns = backend.metadata.namespace;
  return ns === undefined || ns === '' ? `${backend.kind}/${backend.metadata.name ?? ''}` : `${backend.kind}/${ns}/${backend.metadata.name ?? ''}`;
}

export interface BackendReconcilerDeps {
  readonly clusterBackends: CacheReader<AnyBackend>;
  readonly namespacedBackends: CacheReader<AnyBackend>;
  readonly pool: BackendPool;
  readonly publisher: StatusPublisher;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Timeout of one connectivity check. */
  readonly checkTimeoutMs: number;
}

/**
 * Converges a backend object: its provider block is valid, a client exists for its current spec,
 * and the backend answers an authenticated call. The check repeats every refreshInterval, so
 * `Ready` follows the backend's health; the status is written only when a conclusion changes.
 */
export class BackendReconciler implements Reconciler {
  readonly #deps: BackendReconcilerDeps;

  constructor(deps: BackendReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(key: string, context: ReconcileContext): Promise<ReconcileResult> {
    const slash = key.indexOf('/');
    const kind = key.slice(0, slash);
    const objectKey = key.slice(slash + 1);
    const cache = kind === 'ClusterSecretBackend' ? this.#deps.clusterBackends : this.#deps.namespacedBackends;
    const backend = cache.get(objectKey);
    if (backend === undefined || backend.metadata.deletionTimestamp !== undefined) {
      await this.#deps.pool.remove(key);
      return {};
    }
    const generation = backend.metadata.generation;
    const refreshMs = parseDurationMs(backend.spec.refreshInterval ?? defaults.refreshInterval);

    let pooled;
    try {
      pooled = await this.#deps.pool.ensure(key, backend);
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      // An invalid provider block stays invalid until the spec changes, which enqueues us again.
      await this.#publish(backend, [
        { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: error.message, observedGeneration: generation },
      ]);
      return {};
    }

    const timeout = AbortSignal.any([context.signal, AbortSignal.timeout(this.#deps.checkTimeoutMs)]);
    try {
      await this.#deps.pool.checkConnectivity(pooled, { signal: timeout });
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      const reason = reasonForError(error);
      await this.#publish(backend, [
        { type: 'Ready', status: 'False', reason, message: error.message, observedGeneration: generation },
      ]);
      // Outages and throttling are retried with the queue's backoff; refused credentials and bad
      // configuration are re-checked each refresh interval (a Secret we do not watch may change).
      if (error.retryable) throw error;
      return { requeueAfterMs: refreshMs };
    }
    await this.#publish(backend, [
      {
        type: 'Ready',
        status: 'True',
        reason: 'Reconciled',
        message: `${pooled.provider} backend answers with the configured credentials`,
        observedGeneration: generation,
      },
    ]);
    return { requeueAfterMs: refreshMs };
  }

  async #publish(backend: AnyBackend, updates: ConditionUpdate[]): Promise<void> {
    const resource = resources[backend.kind];
    const namespace = backend.metadata.namespace;
    const current = backend.status;
    const desired = {
      observedGeneration: backend.metadata.generation,
      conditions: setConditions(current?.conditions, updates, this.#deps.clock.wallNow()),
    };
    const wrote = await publishStatus(this.#deps.publisher, {
      ref: { group, version, plural: resource.plural, namespace: resource.namespaced ? namespace : undefined, name: backend.metadata.name ?? '' },
      subject: { apiVersion, kind: backend.kind, namespace: resource.namespaced ? namespace : undefined, name: backend.metadata.name ?? '', uid: backend.metadata.uid },
      current,
      desired,
    });
    if (wrote) this.#deps.logger.info('backend status updated', { backend: backendQueueKey(backend), ready: updates[0]?.status, reason: updates[0]?.reason });
  }
}
