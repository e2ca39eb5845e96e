import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import type { ChangeHub } from '../../broker/change-hub.ts';
import { Controller } from '../../runtime/controller.ts';
import { objectKey } from '../../runtime/object-store.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import type { BindingContentResolver } from '../binding/binding-content.ts';
import { BindingReconciler, refreshRequestedAnnotation } from '../binding/binding.reconciler.ts';
import type { StatusPublisher } from '../status-sync.ts';
import type { OperatorContext } from './context.ts';
import type { LeaseKeeper } from '../../dynamic/lease-keeper.ts';
import { backendIndex, labelsChanged, specChanged } from './informers.ts';

export interface BindingComposition {
  /** The binding controller (leader only). */
  readonly controller: Controller;
  /** Queues every binding that refers to a backend. */
  readonly enqueueBindingsOf: (backend: AnyBackend) => void;
}

export interface BindingCompositionDeps {
  readonly content: BindingContentResolver;
  readonly publisher: StatusPublisher;
  /** What the broker last delivered to each consuming pod (read only when the broker is enabled). */
  readonly hub: ChangeHub;
  /** Dynamic bindings' leases: renewed, re-issued and revoked by the binding reconciler. */
  readonly leases: LeaseKeeper;
}

/** The binding controller, fed by bindings, namespace labels and pods in namespaces with bindings. */
export function composeBinding({ config, clock, logger, runtimeMetrics, informers }: OperatorContext, deps: BindingCompositionDeps): BindingComposition {
  const { clusterBackends, namespacedBackends, bindings, namespaces, pods } = informers;
  const bindingController = new Controller({
    name: 'binding',
    workers: config.workers.bindings,
    reconciler: new BindingReconciler({
      bindings,
      pods,
      podsSynced: (ns) => pods.hasSyncedNamespace(ns),
      content: deps.content,
      leases: deps.leases,
      publisher: deps.publisher,
      ...(config.broker.enabled ? { deliveries: deps.hub } : {}),
      clock,
      logger: logger.child({ controller: 'binding' }),
    }),
    waitForSync: [bindings, clusterBackends, namespacedBackends, namespaces],
    logger: logger.child({ controller: 'binding' }),
    observer: runtimeMetrics,
  });
  // A credential issued by the broker is scheduled for renewal by the next reconcile of its binding.
  deps.leases.onIssued((key) => { bindingController.enqueue(key); });
  const enqueueBindingsIn = (namespace: string | undefined): void => {
    if (namespace === undefined) return;
    for (const b of bindings.listNamespace(namespace)) bindingController.enqueue(objectKey(b));
  };
  bindings.addHandler({
    add: (b) => {
      pods.addNamespace(b.metadata.namespace ?? '');
      bindingController.enqueue(objectKey(b));
    },
    update: (old, b) => {
      // A new refresh-requested value asks for a check now (an annotation does not move the generation).
      const refreshRequested = old.metadata.annotations?.[refreshRequestedAnnotation] !== b.metadata.annotations?.[refreshRequestedAnnotation];
      if (specChanged(old, b) || refreshRequested) bindingController.enqueue(objectKey(b));
    },
    delete: (b) => {
      // Its leases are revoked by the reconcile of its key, which no longer finds the object.
      deps.leases.bindingDeleted(b);
      const ns = b.metadata.namespace ?? '';
      if (bindings.listNamespace(ns).length === 0) pods.removeNamespace(ns);
      bindingController.enqueue(objectKey(b));
    },
  });
  namespaces.addHandler({
    update: (old, ns) => {
      if (labelsChanged(old, ns)) enqueueBindingsIn(ns.metadata?.name);
    },
  });
  pods.addHandler({
    add: (p) => { enqueueBindingsIn(p.metadata?.namespace); },
    update: (old, p) => {
      const relevant =
        labelsChanged(old, p) ||
        old.status?.phase !== p.status?.phase ||
        old.metadata?.deletionTimestamp !== p.metadata?.deletionTimestamp;
      if (relevant) enqueueBindingsIn(p.metadata?.namespace);
    },
    delete: (p) => { enqueueBindingsIn(p.metadata?.namespace); },
  });
  return {
    controller: bindingController,
    enqueueBindingsOf: (backend) => {
      for (const b of bindings.byIndex(backendIndex, backendQueueKey(backend))) bindingController.enqueue(objectKey(b));
    },
  };
}
