import type { V1Pod } from '@kubernetes/client-node';
import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import type { ChangeHub } from '../../broker/change-hub.ts';
import { Controller } from '../../runtime/controller.ts';
import { objectKey } from '../../runtime/object-store.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import type { BindingContentResolver } from '../binding/binding-content.ts';
import { BindingReconciler, refreshRequestedAnnotation } from '../binding/binding.reconciler.ts';
import { bindingsSelecting } from '../binding/pod-selection.ts';
import { KeyPoller } from '../binding/key-poller.ts';
import type { SecretResolver } from '../../backends/resolver/resolver.ts';
import type { StatusPublisher } from '../status-sync.ts';
import type { OperatorContext } from './context.ts';
import type { LeaseKeeper } from '../../dynamic/lease-keeper.ts';
import { backendIndex, labelsChanged, specChanged } from './informers.ts';

export interface BindingComposition {
  /** The binding controller (leader only). */
  readonly controller: Controller;
  /** Queues every binding that refers to a backend. */
  readonly enqueueBindingsOf: (backend: AnyBackend) => void;
  /** Checks the secrets of healthy bindings once per interval (leader only, ADR 0203). */
  readonly poller: KeyPoller;
}

export interface BindingCompositionDeps {
  readonly content: BindingContentResolver;
  readonly publisher: StatusPublisher;
  /** What the broker last delivered to each consuming pod (read only when the broker is enabled). */
  readonly hub: ChangeHub;
  /** The key poller's version checks. */
  readonly resolver: Pick<SecretResolver, 'checkVersions'>;
  /** Dynamic bindings' leases: renewed, re-issued and revoked by the binding reconciler. */
  readonly leases: LeaseKeeper;
}

/** The binding controller, fed by bindings, namespace labels and pods in namespaces with bindings. */
export function composeBinding({ config, clock, logger, runtimeMetrics, informers }: OperatorContext, deps: BindingCompositionDeps): BindingComposition {
  const { clusterBackends, namespacedBackends, bindings, namespaces, pods } = informers;
  const poller = new KeyPoller({
    checkVersions: (backendId, refs, options) => deps.resolver.checkVersions(backendId, refs, options),
    enqueue: (key) => { bindingController.enqueue(key); },
    clock,
    logger: logger.child({ component: 'key-poller' }),
  });
  const reconciler = new BindingReconciler({
    bindings,
    pods,
    podsSynced: (ns) => pods.hasSyncedNamespace(ns),
    content: deps.content,
    leases: deps.leases,
    publisher: deps.publisher,
    ...(config.broker.enabled ? { deliveries: deps.hub } : {}),
    poller,
    clock,
    logger: logger.child({ controller: 'binding' }),
  });
  const bindingController = new Controller({
    name: 'binding',
    workers: config.workers.bindings,
    reconciler,
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
  // Bindings of a namespace whose pod cache has not listed yet wait for it (the reconciler cannot
  // count consumers yet); its first sync queues them all at once instead of each polling (ADR 0208).
  const awaitingPods = new Set<string>();
  const queueWhenPodsSynced = (namespace: string): void => {
    if (awaitingPods.has(namespace) || pods.hasSyncedNamespace(namespace)) return;
    awaitingPods.add(namespace);
    void pods.whenNamespaceSynced(namespace).then((synced) => {
      awaitingPods.delete(namespace);
      if (synced) enqueueBindingsIn(namespace);
    });
  };
  bindings.addHandler({
    add: (b) => {
      const namespace = b.metadata.namespace ?? '';
      pods.addNamespace(namespace);
      queueWhenPodsSynced(namespace);
      bindingController.enqueue(objectKey(b));
    },
    update: (old, b) => {
      // A new refresh-requested value asks for a check now (an annotation does not move the generation).
      const refreshRequested = old.metadata.annotations?.[refreshRequestedAnnotation] !== b.metadata.annotations?.[refreshRequestedAnnotation];
      // Or its status is not what was concluded for it (ADR 0203): a write skipped against a stale cache.
      if (specChanged(old, b) || refreshRequested || reconciler.statusDiverged(b)) bindingController.enqueue(objectKey(b));
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
  // A pod concerns only the bindings whose selector matches it (before or after the change), not
  // every binding of its namespace (ADR 0201).
  const enqueueBindingsSelecting = (p: V1Pod): void => {
    for (const b of bindingsSelecting(p, bindings)) bindingController.enqueue(objectKey(b));
  };
  pods.addHandler({
    add: enqueueBindingsSelecting,
    update: (old, p) => {
      const relevant =
        labelsChanged(old, p) ||
        old.status?.phase !== p.status?.phase ||
        old.metadata?.deletionTimestamp !== p.metadata?.deletionTimestamp;
      if (!relevant) return;
      enqueueBindingsSelecting(old);
      if (labelsChanged(old, p)) enqueueBindingsSelecting(p);
    },
    delete: enqueueBindingsSelecting,
  });
  return {
    controller: bindingController,
    poller,
    enqueueBindingsOf: (backend) => {
      for (const b of bindings.byIndex(backendIndex, backendQueueKey(backend))) bindingController.enqueue(objectKey(b));
    },
  };
}
