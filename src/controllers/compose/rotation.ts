import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { Controller } from '../../runtime/controller.ts';
import { kubeWorkloadApi } from '../rotation/kube-workloads.ts';
import { createRotationMetrics } from '../rotation/rotation.metrics.ts';
import { bindingsSelecting, consumingPods } from '../binding/pod-selection.ts';
import { isRollingRestart, RotationReconciler, rotationKeyOfConsumer, rotationKeysOfBinding } from '../rotation/rotation.reconciler.ts';
import type { StatusPublisher } from '../status-sync.ts';
import type { OperatorContext } from './context.ts';
import { labelsChanged, specChanged } from './informers.ts';

/** Rolling restarts (leader only): keyed by workload, fed by binding hashes and consuming pods. */
export function composeRotation({ config, clients, registry, clock, logger, runtimeMetrics, informers }: OperatorContext, publisher: StatusPublisher): Controller {
  const { bindings, pods } = informers;
  const rotationController = new Controller({
    name: 'rotation',
    workers: 2,
    reconciler: new RotationReconciler({
      bindings,
      pods,
      api: kubeWorkloadApi(clients.apps, clients.core),
      events: publisher.events,
      metrics: createRotationMetrics(registry),
      clock,
      logger: logger.child({ controller: 'rotation' }),
      maxConcurrentRollouts: config.rotation.maxConcurrentRollouts,
      rolloutSlotTimeoutMs: config.rotation.rolloutSlotTimeoutSeconds * 1000,
    }),
    waitForSync: [bindings],
    logger: logger.child({ controller: 'rotation' }),
    observer: runtimeMetrics,
  });
  const enqueueRotationsOf = (b: SecretBinding): void => {
    // Only RollingRestart bindings have workloads to restart: no pod lookup for the others.
    if (!isRollingRestart(b)) return;
    for (const key of rotationKeysOfBinding(b, consumingPods(b, pods))) rotationController.enqueue(key);
  };
  const enqueueRotationOf = (p: V1Pod): void => {
    const key = rotationKeyOfConsumer(p, bindingsSelecting(p, bindings));
    if (key !== undefined) rotationController.enqueue(key);
  };
  bindings.addHandler({
    add: enqueueRotationsOf,
    // A new content hash, or a changed selector or strategy (the old one's workloads may lose it).
    update: (old, b) => {
      // Also when a binding concludes on a new spec without a new hash: a workload may wait for it.
      if (old.status?.contentHmac === b.status?.contentHmac && old.status?.observedGeneration === b.status?.observedGeneration && !specChanged(old, b)) return;
      enqueueRotationsOf(old);
      enqueueRotationsOf(b);
    },
    delete: enqueueRotationsOf,
  });
  pods.addHandler({
    add: enqueueRotationOf,
    update: (old, p) => {
      if (labelsChanged(old, p)) enqueueRotationOf(p);
    },
  });
  return rotationController;
}
