import type { V1DaemonSet, V1Deployment, V1StatefulSet } from '@kubernetes/client-node';
import type { AppsApi, CoreApi } from '../../kube/kube-clients.ts';
import { describeKubeError, isNotFound, kubeErrorCode } from '../../kube/kube-errors.ts';
import { contentHashAnnotation } from './rollout-hash.ts';
import type { EvictionResult, PodView, RestartableKind, WorkloadApi, WorkloadView } from './workloads.port.ts';

type AppsObject = V1Deployment | V1StatefulSet | V1DaemonSet;

/**
 * {@link WorkloadApi} over the apps/v1 and core/v1 clients (patches are merge patches). Calls are
 * short single requests with their own time limit, so the signal is not passed on.
 */
export function kubeWorkloadApi(apps: AppsApi, core: CoreApi): WorkloadApi {
  const read = async (kind: RestartableKind, namespace: string, name: string): Promise<AppsObject | undefined> => {
    try {
      switch (kind) {
        case 'Deployment':
          return await apps.readNamespacedDeployment({ name, namespace });
        case 'StatefulSet':
          return await apps.readNamespacedStatefulSet({ name, namespace });
        case 'DaemonSet':
          return await apps.readNamespacedDaemonSet({ name, namespace });
      }
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  };
  return {
    async getWorkload(kind, namespace, name) {
      const object = await read(kind, namespace, name);
      if (object === undefined) return undefined;
      return {
        kind,
        namespace,
        name,
        uid: object.metadata?.uid,
        templateLabels: object.spec?.template.metadata?.labels ?? {},
        serviceAccountName: object.spec?.template.spec?.serviceAccountName,
        templateHash: object.spec?.template.metadata?.annotations?.[contentHashAnnotation],
        recordedHash: object.metadata?.annotations?.[contentHashAnnotation],
        rolledOut: rolledOut(kind, object),
      } satisfies WorkloadView;
    },
    async stampWorkload(kind, namespace, name, hash, restart) {
      const annotations = { [contentHashAnnotation]: hash };
      const body = restart
        ? { metadata: { annotations }, spec: { template: { metadata: { annotations } } } }
        : { metadata: { annotations } };
      switch (kind) {
        case 'Deployment':
          await apps.patchNamespacedDeployment({ name, namespace, body });
          return;
        case 'StatefulSet':
          await apps.patchNamespacedStatefulSet({ name, namespace, body });
          return;
        case 'DaemonSet':
          await apps.patchNamespacedDaemonSet({ name, namespace, body });
          return;
      }
    },
    async getPod(namespace, name) {
      try {
        const pod = await core.readNamespacedPod({ name, namespace });
        return { namespace, name, uid: pod.metadata?.uid, recordedHash: pod.metadata?.annotations?.[contentHashAnnotation] } satisfies PodView;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    async stampPod(namespace, name, hash) {
      await core.patchNamespacedPod({ name, namespace, body: { metadata: { annotations: { [contentHashAnnotation]: hash } } } });
    },
    async evictPod(namespace, name): Promise<EvictionResult> {
      try {
        await core.createNamespacedPodEviction({
          name,
          namespace,
          body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } },
        });
        return { kind: 'evicted' };
      } catch (error) {
        if (isNotFound(error)) return { kind: 'gone' };
        // 429: a PodDisruptionBudget refuses the disruption for now.
        if (kubeErrorCode(error) === 429) {
          return { kind: 'blocked', message: describeKubeError(error).message };
        }
        throw error;
      }
    },
  };
}

/**
 * Whether the last rollout is complete, by the same rules as `kubectl rollout status`: the
 * controller observed the current generation and every replica is updated and available.
 */
export function rolledOut(kind: RestartableKind, object: AppsObject): boolean {
  const generation = object.metadata?.generation ?? 0;
  switch (kind) {
    case 'Deployment': {
      const d: V1Deployment = object;
      const want = d.spec?.replicas ?? 1;
      const s = d.status;
      return (
        (s?.observedGeneration ?? 0) >= generation &&
        (s?.updatedReplicas ?? 0) >= want &&
        (s?.replicas ?? 0) === (s?.updatedReplicas ?? 0) &&
        (s?.availableReplicas ?? 0) >= (s?.updatedReplicas ?? 0)
      );
    }
    case 'StatefulSet': {
      const st = object as V1StatefulSet;
      const want = st.spec?.replicas ?? 1;
      const s = st.status;
      return (
        (s?.observedGeneration ?? 0) >= generation &&
        (s?.updatedReplicas ?? 0) >= want &&
        (s?.readyReplicas ?? 0) >= want &&
        (s?.updateRevision === undefined || s.currentRevision === s.updateRevision)
      );
    }
    case 'DaemonSet': {
      const s = (object as V1DaemonSet).status;
      return (
        (s?.observedGeneration ?? 0) >= generation &&
        (s?.updatedNumberScheduled ?? 0) >= (s?.desiredNumberScheduled ?? 0) &&
        (s?.numberAvailable ?? 0) >= (s?.desiredNumberScheduled ?? 0)
      );
    }
  }
}
