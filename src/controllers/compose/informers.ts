import pLimit from 'p-limit';
import type { KubernetesObject, V1ContainerStatus, V1Namespace, V1Pod, V1Volume } from '@kubernetes/client-node';
import { agentContainerName } from '../../broker/agent.protocol.ts';
import { brokerAudience } from '../../broker/broker.protocol.ts';
import type { KubeTransport } from '../../runtime/kube-request.ts';
import { group, resources, version, type AnyBackend, type SecretBinding } from '../../api/v1alpha1/index.ts';
import type { ControllerConfig } from '../../config/controller.config.ts';
import type { Logger } from '../../observability/logger.ts';
import { Informer, type InformerObserver } from '../../runtime/informer.ts';
import { KubeListWatch, type ResourceType } from '../../runtime/kube-list-watch.ts';
import { NamespacedInformers } from '../../runtime/namespaced-informers.ts';
import type { Runnable, SyncStatus } from '../../runtime/runnable.ts';
import { backendRefKeys } from '../binding/binding-backends.ts';
import { bindingSelectorIndex, bindingSelectorValues, podLabelIndex, podLabelValues } from '../binding/pod-selection.ts';

/** A cache of one resource: cluster-wide, or one informer per watched namespace. */
export type WatchedCache<T extends KubernetesObject> = Informer<T> | NamespacedInformers<T>;

/** The operator's caches (never Secrets or ConfigMaps; pods only in namespaces that have bindings). */
export interface OperatorInformers {
  readonly clusterBackends: Informer<AnyBackend>;
  readonly namespacedBackends: WatchedCache<AnyBackend>;
  /** Indexed by backend under `backendIndex`, by selector under `bindingSelectorIndex`. */
  readonly bindings: WatchedCache<SecretBinding>;
  readonly namespaces: Informer<V1Namespace>;
  /** Indexed by label under `podLabelIndex`. */
  readonly pods: NamespacedInformers<V1Pod>;
}

/** The bindings index whose values are the queue keys of every backend a binding names. */
export const backendIndex = 'backendRef';

export interface InformersOptions {
  readonly config: ControllerConfig;
  readonly kubeConfig: KubeTransport;
  readonly logger: Logger;
  readonly observer: InformerObserver;
}

export function createInformers({ config, kubeConfig, logger, observer }: InformersOptions): OperatorInformers {
  const informerOptions = { logger: logger.child({ component: 'informer' }), observer };

  const crd = (plural: string): ResourceType => ({ group, version, plural });
  const scoped = <T extends KubernetesObject>(resource: string, type: ResourceType, transform?: (obj: T) => T): WatchedCache<T> => {
    const make = (namespace?: string): Informer<T> =>
      new Informer<T>({
        resource,
        source: new KubeListWatch<T>(kubeConfig, type, namespace === undefined ? {} : { namespace }),
        ...(transform === undefined ? {} : { transform }),
        ...informerOptions,
      });
    if (config.watchNamespaces.length === 0) return make();
    const set = new NamespacedInformers<T>({ resource, newInformer: make, logger: informerOptions.logger });
    set.setNamespaces(config.watchNamespaces);
    return set;
  };

  const clusterBackends = new Informer<AnyBackend>({
    resource: resources.ClusterSecretBackend.plural,
    source: new KubeListWatch<AnyBackend>(kubeConfig, crd(resources.ClusterSecretBackend.plural)),
    ...informerOptions,
  });
  const namespacedBackends = scoped<AnyBackend>(resources.SecretBackend.plural, crd(resources.SecretBackend.plural));
  const bindings = scoped<SecretBinding>(resources.SecretBinding.plural, crd(resources.SecretBinding.plural));
  const namespaces = new Informer<V1Namespace>({
    resource: 'namespaces',
    source: new KubeListWatch<V1Namespace>(kubeConfig, { group: '', version: 'v1', plural: 'namespaces' }),
    transform: (ns) => ({ apiVersion: ns.apiVersion, kind: ns.kind, metadata: ns.metadata }),
    ...informerOptions,
  });
  // The namespaces' pod caches start together when bindings first appear: two lists at a time
  // keep the transient memory of their pages bounded (ADR 0208).
  const podLists = pLimit(2);
  const pods = new NamespacedInformers<V1Pod>({
    resource: 'pods',
    newInformer: (namespace) =>
      new Informer<V1Pod>({
        resource: 'pods',
        source: new KubeListWatch<V1Pod>(kubeConfig, { group: '', version: 'v1', plural: 'pods' }, { namespace }, { listSlots: podLists }),
        transform: slimPod,
        ...informerOptions,
      }),
    logger: informerOptions.logger,
  });
  bindings.addIndex(backendIndex, backendRefKeys);
  // Pods of a binding and bindings of a pod without scanning the namespace (ADR 0201).
  bindings.addIndex(bindingSelectorIndex, bindingSelectorValues);
  pods.addIndex(podLabelIndex, podLabelValues);
  return { clusterBackends, namespacedBackends, bindings, namespaces, pods };
}

/** The informers in the order the manager starts them. */
export function informerList(informers: OperatorInformers): readonly (Runnable & SyncStatus)[] {
  const { clusterBackends, namespacedBackends, bindings, namespaces, pods } = informers;
  return [clusterBackends, namespacedBackends, bindings, namespaces, pods];
}

/**
 * Whether an update moved the generation or the deletion timestamp (our status writes do neither),
 * or is another object of the same name: a delete and re-create the watch missed (e.g. while the
 * API server restarted) reaches the cache as one update, with a new uid and often generation 1 again.
 */
export function specChanged(a: KubernetesObject, b: KubernetesObject): boolean {
  return (
    a.metadata?.generation !== b.metadata?.generation ||
    a.metadata?.deletionTimestamp !== b.metadata?.deletionTimestamp ||
    a.metadata?.uid !== b.metadata?.uid
  );
}

export function labelsChanged(a: KubernetesObject, b: KubernetesObject): boolean {
  return JSON.stringify(a.metadata?.labels ?? {}) !== JSON.stringify(b.metadata?.labels ?? {});
}

/** What the controller keeps of a pod: identity, labels, owners, service account, node, phase. */
function slimPod(pod: V1Pod): V1Pod {
  return {
    apiVersion: pod.apiVersion,
    kind: pod.kind,
    metadata: {
      name: pod.metadata?.name,
      namespace: pod.metadata?.namespace,
      uid: pod.metadata?.uid,
      resourceVersion: pod.metadata?.resourceVersion,
      labels: pod.metadata?.labels,
      ownerReferences: pod.metadata?.ownerReferences,
      deletionTimestamp: pod.metadata?.deletionTimestamp,
    },
    spec: {
      serviceAccountName: pod.spec?.serviceAccountName,
      nodeName: pod.spec?.nodeName,
      containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name, volumeMounts: c.volumeMounts })),
      // The broker checks every container that mounts a bound volume, init and ephemeral ones too.
      initContainers: pod.spec?.initContainers?.map((c) => ({ name: c.name, volumeMounts: c.volumeMounts })),
      ephemeralContainers: pod.spec?.ephemeralContainers?.map((c) => ({ name: c.name, volumeMounts: c.volumeMounts })),
      // CSI volumes; for agent pods (ADR 0250) memory emptyDirs and secretbinder.dev token volumes.
      volumes: pod.spec?.volumes?.filter((v) => v.csi !== undefined || v.emptyDir?.medium === 'Memory' || isBrokerTokenVolume(v)),
    },
    status: {
      phase: pod.status?.phase,
      // The agent's state, for its AgentFailed Event (the termination message names no value).
      ...(agentStatuses(pod) === undefined ? {} : { initContainerStatuses: agentStatuses(pod) }),
    },
  };
}

function isBrokerTokenVolume(volume: V1Volume): boolean {
  return (volume.projected?.sources ?? []).some((s) => s.serviceAccountToken?.audience === brokerAudience);
}

function agentStatuses(pod: V1Pod): V1ContainerStatus[] | undefined {
  const agent = pod.status?.initContainerStatuses?.filter((s) => s.name === agentContainerName);
  return agent === undefined || agent.length === 0 ? undefined : agent.map((s) => ({ name: s.name, image: s.image, imageID: s.imageID, ready: s.ready, restartCount: s.restartCount, state: s.state, lastState: s.lastState }));
}
