import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import type { NoticeSourceKind } from '../../backends/change-notice.port.ts';
import { createNoticeMetrics } from '../../backends/notices/notice.metrics.ts';
import type { SecretResolver } from '../../backends/resolver/resolver.ts';
import { VaultAuditSource } from '../../backends/vault/vault.audit-source.ts';
import type { Runnable } from '../../runtime/runnable.ts';
import type { BackendPool } from '../backend/backend-pool.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import { NoticeDispatcher } from '../binding/notice-dispatcher.ts';
import type { OperatorContext } from './context.ts';

/** A running notice source, as tests and the composition see it. */
export interface NoticeSourceHandle {
  readonly kind: NoticeSourceKind;
  /** Where it listens, once started. */
  address(): string | undefined;
  /** Stops this source alone (polling goes on); resolves when it has closed. */
  stop(): Promise<void>;
}

export interface ChangeNoticesComposition {
  readonly runnables: readonly Runnable[];
  readonly sources: readonly NoticeSourceHandle[];
}

/**
 * The change-notice sources the configuration enables and the dispatcher they feed (ADR 0220).
 * Leader only: notices queue binding reconciles, which run on the leader. Without a configured
 * source, nothing is built and polling alone detects changes.
 */
export function composeChangeNotices(
  { config, clock, logger, registry, informers }: OperatorContext,
  deps: { readonly pool: BackendPool; readonly resolver: SecretResolver; readonly enqueueBinding: (key: string) => void },
): ChangeNoticesComposition {
  const vault = config.changeNotices.vaultAudit;
  if (vault === undefined) return { runnables: [], sources: [] };
  const { bindings, clusterBackends, namespacedBackends } = informers;
  const backendOf = (binding: { spec: { backendRef: { kind?: string; name: string } }; metadata: { namespace?: string } }): AnyBackend | undefined =>
    binding.spec.backendRef.kind === 'ClusterSecretBackend'
      ? clusterBackends.get(binding.spec.backendRef.name)
      : namespacedBackends.get(`${binding.metadata.namespace ?? ''}/${binding.spec.backendRef.name}`);
  const dispatcher = new NoticeDispatcher({
    bindings,
    backendOf,
    backendIdOf: (backend) => deps.pool.get(backendQueueKey(backend))?.backendId,
    invalidate: (backendId, key) => { deps.resolver.invalidate(backendId, key, 'event'); },
    enqueue: deps.enqueueBinding,
    clock,
    metrics: createNoticeMetrics(registry),
    windowMs: config.changeNotices.windowMs,
  });
  const reindex = { add: () => { dispatcher.invalidateIndex(); }, update: () => { dispatcher.invalidateIndex(); }, delete: () => { dispatcher.invalidateIndex(); } };
  bindings.addHandler(reindex);
  clusterBackends.addHandler(reindex);
  namespacedBackends.addHandler(reindex);

  const log = logger.child({ component: 'change-notices' });
  const source = new VaultAuditSource({
    listen: vault.listen,
    prefixFile: vault.prefixFile,
    maxLineBytes: 1024 * 1024,
    maxLinesPerSecond: vault.maxLinesPerSecond,
    maxConnections: 8,
    clock,
    logger: log,
  });
  const { runnable, handle } = sourceRunnable(source, dispatcher);
  return { runnables: [runnable], sources: [handle] };
}

function sourceRunnable(source: VaultAuditSource, dispatcher: NoticeDispatcher): { runnable: Runnable; handle: NoticeSourceHandle } {
  const own = new AbortController();
  let running: Promise<void> = Promise.resolve();
  const runnable: Runnable = {
    name: `change-notices-${source.kind}`,
    needLeaderElection: true,
    start: async (signal) => {
      const started = source.start(dispatcher, AbortSignal.any([signal, own.signal]));
      running = started.catch(() => undefined);
      await started;
      // Stopped alone (a test, an operator's choice): polling goes on until the manager stops.
      if (!signal.aborted) {
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => { resolve(); }, { once: true });
        });
      }
      dispatcher.close();
    },
  };
  const handle: NoticeSourceHandle = {
    kind: source.kind,
    address: () => source.address,
    stop: async () => {
      own.abort();
      await running;
    },
  };
  return { runnable, handle };
}
