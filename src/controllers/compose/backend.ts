import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import { Controller } from '../../runtime/controller.ts';
import type { BackendPool } from '../backend/backend-pool.ts';
import { BackendReconciler, backendQueueKey } from '../backend/backend.reconciler.ts';
import type { StatusPublisher } from '../status-sync.ts';
import type { OperatorContext } from './context.ts';
import { specChanged } from './informers.ts';

export interface BackendCompositionDeps {
  readonly pool: BackendPool;
  readonly publisher: StatusPublisher;
  /** Also called on every backend change: its bindings follow it. */
  readonly enqueueBindingsOf: (backend: AnyBackend) => void;
}

/** The backend controller (leader only), fed by both kinds of backend. */
export function composeBackend({ config, clock, logger, runtimeMetrics, informers }: OperatorContext, deps: BackendCompositionDeps): Controller {
  const { clusterBackends, namespacedBackends } = informers;
  const { enqueueBindingsOf } = deps;
  const backendController = new Controller({
    name: 'backend',
    workers: config.workers.backends,
    reconciler: new BackendReconciler({
      clusterBackends,
      namespacedBackends,
      pool: deps.pool,
      publisher: deps.publisher,
      clock,
      logger: logger.child({ controller: 'backend' }),
      checkTimeoutMs: 10_000,
    }),
    waitForSync: [clusterBackends, namespacedBackends],
    logger: logger.child({ controller: 'backend' }),
    observer: runtimeMetrics,
  });
  for (const backends of [clusterBackends, namespacedBackends]) {
    backends.addHandler({
      add: (b) => {
        backendController.enqueue(backendQueueKey(b));
        enqueueBindingsOf(b);
      },
      // Our own status writes come back as updates; only spec changes matter to anyone.
      update: (old, b) => {
        if (!specChanged(old, b)) return;
        backendController.enqueue(backendQueueKey(b));
        enqueueBindingsOf(b);
      },
      delete: (b) => {
        backendController.enqueue(backendQueueKey(b));
        enqueueBindingsOf(b);
      },
    });
  }
  return backendController;
}
