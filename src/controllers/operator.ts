import type { KubeConfig, KubernetesObject, V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { group, reasons, resources, version, type AnyBackend, type SecretBinding } from '../api/v1alpha1/index.ts';
import type { BackendContext } from '../backends/backend.port.ts';
import { createBackendMetrics, loginCounter } from '../backends/backends.metrics.ts';
import { createBackend, parseBackendSpec } from '../backends/registry.ts';
import { SecretResolver } from '../backends/resolver/resolver.ts';
import type { ControllerConfig } from '../config/controller.config.ts';
import { createEventRecorder } from '../kube/event-recorder.ts';
import type { KubeClients } from '../kube/kube-clients.ts';
import { readOperatorSecret } from '../kube/operator-secrets.ts';
import { requestServiceAccountToken } from '../kube/service-account-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import type { SecretValue } from '../observability/secret-value.ts';
import { realClock, type Clock } from '../runtime/clock.ts';
import { Controller } from '../runtime/controller.ts';
import { HealthServer } from '../runtime/health-server.ts';
import { Informer } from '../runtime/informer.ts';
import { KubeLeaseStore } from '../runtime/kube-lease-store.ts';
import { KubeListWatch, type ResourceType } from '../runtime/kube-list-watch.ts';
import { Manager } from '../runtime/manager.ts';
import { NamespacedInformers } from '../runtime/namespaced-informers.ts';
import { objectKey } from '../runtime/object-store.ts';
import type { Runnable } from '../runtime/runnable.ts';
import { RuntimeMetrics } from '../runtime/runtime.metrics.ts';
import { BackendPool } from './backend/backend-pool.ts';
import { BackendReconciler, backendQueueKey } from './backend/backend.reconciler.ts';
import { Broker } from '../broker/broker.ts';
import { createBrokerMetrics } from '../broker/broker.metrics.ts';
import { BrokerServer } from '../broker/broker.server.ts';
import { ChangeHub, FreshContentResolver, RecordingContentResolver } from '../broker/change-hub.ts';
import { BindingContentResolver } from './binding/binding-content.ts';
import { CachingTokenReviewer, KubeTokenReviewer, TokenReviewCache } from '../broker/token-review.ts';
import { describeKubeError, isNotFound } from '../kube/kube-errors.ts';
import type { AuditLog } from '../observability/audit.ts';
import { BindingReconciler, backendRefKey, refreshRequestedAnnotation } from './binding/binding.reconciler.ts';
import { webhookRunnable } from '../webhook/webhook.ts';
import { kubeWorkloadApi } from './rotation/kube-workloads.ts';
import { createRotationMetrics } from './rotation/rotation.metrics.ts';
import { RotationReconciler, rotationKeyOfConsumer, rotationKeysOfBinding } from './rotation/rotation.reconciler.ts';

export interface OperatorDeps {
  readonly config: ControllerConfig;
  readonly kubeConfig: KubeConfig;
  readonly clients: KubeClients;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Key of content HMACs (status) and of versions of unversioned stores. */
  readonly contentKey: SecretValue;
  /** The audit channel; required when the broker is enabled. */
  readonly audit?: AuditLog;
  readonly clock?: Clock;
}

export interface Operator {
  readonly manager: Manager;
  readonly health: HealthServer;
  /** The broker's HTTPS server, when enabled (runs on every replica). */
  readonly broker: BrokerServer | undefined;
  /** Releases backend clients after the manager stopped. */
  close(): Promise<void>;
}

const backendIndex = 'backendRef';

/**
 * The composition of the controller: informers (never Secrets or ConfigMaps; pods only in
 * namespaces that have bindings), the backend and binding controllers (leader only), the resolver
 * with its backend pool, and the health server. Wiring only; behaviour lives in the reconcilers.
 */
export function buildOperator(deps: OperatorDeps): Operator {
  const { config, kubeConfig, clients, logger, registry } = deps;
  const clock = deps.clock ?? realClock;
  const runtimeMetrics = new RuntimeMetrics(registry, {
    controllers: ['backend', 'binding', 'rotation'],
    resources: [resources.ClusterSecretBackend.plural, resources.SecretBackend.plural, resources.SecretBinding.plural, 'namespaces', 'pods'],
    errorReasons: reasons,
  });
  const backendMetrics = createBackendMetrics(registry);
  const informerOptions = { logger: logger.child({ component: 'informer' }), observer: runtimeMetrics };

  const crd = (plural: string): ResourceType => ({ group, version, plural });
  const scoped = <T extends KubernetesObject>(resource: string, type: ResourceType, transform?: (obj: T) => T): Informer<T> | NamespacedInformers<T> => {
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
  const pods = new NamespacedInformers<V1Pod>({
    resource: 'pods',
    newInformer: (namespace) =>
      new Informer<V1Pod>({
        resource: 'pods',
        source: new KubeListWatch<V1Pod>(kubeConfig, { group: '', version: 'v1', plural: 'pods' }, { namespace }),
        transform: slimPod,
        ...informerOptions,
      }),
    logger: informerOptions.logger,
  });
  bindings.addIndex(backendIndex, (b) => [backendRefKey(b)]);

  const resolver = new SecretResolver({ clock, metrics: backendMetrics, contentKey: deps.contentKey });
  const onLogin = loginCounter(backendMetrics);
  const contextFor = (backend: AnyBackend): BackendContext => {
    const credentialsNamespace = backend.kind === 'ClusterSecretBackend' ? config.operatorNamespace : (backend.metadata.namespace ?? '');
    return {
      namespace: credentialsNamespace,
      requestServiceAccountToken: (request) => requestServiceAccountToken(clients.core, request),
      readOperatorSecret: (name, key) => readOperatorSecret(clients.core, credentialsNamespace, name, key),
      onLogin,
    };
  };
  const pool = new BackendPool(resolver, { parseBackendSpec, createBackend }, contextFor);
  // Every resolution (reconciler or broker) feeds the change stream's current hashes.
  const hub = new ChangeHub();
  const contentDeps = {
    clusterBackends,
    namespacedBackends,
    namespaces,
    pool,
    resolver,
    contentKey: deps.contentKey,
    resolveTimeoutMs: 20_000,
  };
  const content = new RecordingContentResolver(contentDeps, hub);
  const publisher = {
    custom: clients.custom,
    events: createEventRecorder(clients.core, 'secret-binder-controller', config.identity, (error, subject) => {
      logger.warn('could not record an Event', { kind: subject.kind, name: subject.name, namespace: subject.namespace, error: describeKubeError(error).message });
    }),
  };

  const backendController = new Controller({
    name: 'backend',
    workers: config.workers.backends,
    reconciler: new BackendReconciler({
      clusterBackends,
      namespacedBackends,
      pool,
      publisher,
      clock,
      logger: logger.child({ controller: 'backend' }),
      checkTimeoutMs: 10_000,
    }),
    waitForSync: [clusterBackends, namespacedBackends],
    logger: logger.child({ controller: 'backend' }),
    observer: runtimeMetrics,
  });
  const bindingController = new Controller({
    name: 'binding',
    workers: config.workers.bindings,
    reconciler: new BindingReconciler({
      bindings,
      pods,
      podsSynced: (ns) => pods.hasSyncedNamespace(ns),
      content,
      publisher,
      ...(config.broker.enabled ? { deliveries: hub } : {}),
      clock,
      logger: logger.child({ controller: 'binding' }),
    }),
    waitForSync: [bindings, clusterBackends, namespacedBackends, namespaces],
    logger: logger.child({ controller: 'binding' }),
    observer: runtimeMetrics,
  });

  // Rolling restarts (leader only): keyed by workload, fed by binding hashes and consuming pods.
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
    for (const key of rotationKeysOfBinding(b, pods.listNamespace(b.metadata.namespace ?? ''))) rotationController.enqueue(key);
  };
  const enqueueRotationOf = (p: V1Pod): void => {
    const key = rotationKeyOfConsumer(p, bindings.listNamespace(p.metadata?.namespace ?? ''));
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
      if (JSON.stringify(old.metadata?.labels ?? {}) !== JSON.stringify(p.metadata?.labels ?? {})) enqueueRotationOf(p);
    },
  });

  const enqueueBindingsOf = (backend: AnyBackend): void => {
    for (const b of bindings.byIndex(backendIndex, backendQueueKey(backend))) bindingController.enqueue(objectKey(b));
  };
  const enqueueBindingsIn = (namespace: string | undefined): void => {
    if (namespace === undefined) return;
    for (const b of bindings.listNamespace(namespace)) bindingController.enqueue(objectKey(b));
  };
  const specChanged = (a: KubernetesObject, b: KubernetesObject): boolean =>
    a.metadata?.generation !== b.metadata?.generation || a.metadata?.deletionTimestamp !== b.metadata?.deletionTimestamp;

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
  bindings.addHandler({
    // The leader writes the content HMAC to status: how replicas that do not reconcile learn it.
    add: (b) => {
      if (b.status?.contentHmac !== undefined && hub.current(b.metadata.namespace ?? '', b.metadata.name ?? '') === undefined) {
        hub.set(b.metadata.namespace ?? '', b.metadata.name ?? '', { kind: 'hash', hash: b.status.contentHmac });
      }
    },
    update: (old, b) => {
      const ns = b.metadata.namespace ?? '';
      const name = b.metadata.name ?? '';
      if (b.status?.contentHmac !== undefined && b.status.contentHmac !== old.status?.contentHmac) hub.set(ns, name, { kind: 'hash', hash: b.status.contentHmac });
      // Selector, service accounts or containers may have changed: waiters re-check entitlement.
      if (specChanged(old, b)) hub.touch(ChangeHub.bindingKey(ns, name));
    },
    delete: (b) => {
      hub.forget(b.metadata.namespace ?? '', b.metadata.name ?? '');
    },
  });
  pods.addHandler({
    update: (_old, p) => {
      hub.touch(ChangeHub.podKey(p.metadata?.namespace ?? '', p.metadata?.name ?? ''));
    },
    delete: (p) => {
      hub.touch(ChangeHub.podKey(p.metadata?.namespace ?? '', p.metadata?.name ?? ''));
    },
  });
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
      const ns = b.metadata.namespace ?? '';
      if (bindings.listNamespace(ns).length === 0) pods.removeNamespace(ns);
      bindingController.enqueue(objectKey(b));
    },
  });
  namespaces.addHandler({
    update: (old, ns) => {
      if (JSON.stringify(old.metadata?.labels ?? {}) !== JSON.stringify(ns.metadata?.labels ?? {})) enqueueBindingsIn(ns.metadata?.name);
    },
  });
  pods.addHandler({
    add: (p) => { enqueueBindingsIn(p.metadata?.namespace); },
    update: (old, p) => {
      const relevant =
        JSON.stringify(old.metadata?.labels ?? {}) !== JSON.stringify(p.metadata?.labels ?? {}) ||
        old.status?.phase !== p.status?.phase ||
        old.metadata?.deletionTimestamp !== p.metadata?.deletionTimestamp;
      if (relevant) enqueueBindingsIn(p.metadata?.namespace);
    },
    delete: (p) => { enqueueBindingsIn(p.metadata?.namespace); },
  });

  const health = new HealthServer({ host: config.http.host, port: config.http.port, registry, logger: logger.child({ component: 'health' }) });
  const manager = new Manager({
    health,
    logger: logger.child({ component: 'manager' }),
    observer: runtimeMetrics,
    ...(config.leaderElection.enabled
      ? {
          leaderElection: {
            store: new KubeLeaseStore(kubeConfig, { namespace: config.operatorNamespace, name: config.leaderElection.leaseName }),
            identity: config.identity,
            leaseDurationMs: config.leaderElection.leaseDurationSeconds * 1000,
            renewDeadlineMs: config.leaderElection.renewDeadlineSeconds * 1000,
            retryPeriodMs: config.leaderElection.retryPeriodSeconds * 1000,
          },
        }
      : {}),
  });
  for (const informer of [clusterBackends, namespacedBackends, bindings, namespaces, pods]) manager.addInformer(informer);
  manager.add(backendController);
  manager.add(bindingController);
  manager.add(rotationController);
  manager.add(sweeper(resolver, clock));

  let brokerServer: BrokerServer | undefined;
  if (config.broker.enabled) {
    if (deps.audit === undefined) throw new Error('the broker needs an audit log');
    const tokens = new KubeTokenReviewer(clients.auth);
    // Pod tokens: two minutes, as the kubelet's webhook authentication cache (ADR 0130).
    const podTokens = new TokenReviewCache({ ttlMs: 120_000, maxEntries: 10_000 });
    pods.addHandler({
      delete: (p) => {
        if (p.metadata?.uid !== undefined) podTokens.forgetPod(p.metadata.uid);
      },
    });
    const broker = new Broker({
      tokens,
      podTokens,
      callerTokens: new CachingTokenReviewer(tokens, { ttlMs: 10_000 }),
      nodePlugin: config.broker.nodePlugin,
      bindings,
      pods,
      podsSynced: (ns) => pods.hasSyncedNamespace(ns),
      readPod: async (namespace, name) => {
        try {
          return await clients.core.readNamespacedPod({ namespace, name });
        } catch (error) {
          if (isNotFound(error)) return undefined;
          throw error;
        }
      },
      content: new BindingContentResolver(contentDeps),
      freshContent: new FreshContentResolver(contentDeps),
      hub,
      audit: deps.audit,
      metrics: createBrokerMetrics(registry),
      logger: logger.child({ component: 'broker' }),
    });
    brokerServer = new BrokerServer({
      host: config.broker.host,
      port: config.broker.port,
      tls: config.broker.tls,
      broker,
      logger: logger.child({ component: 'broker' }),
    });
    manager.add(brokerServer);
  }
  if (config.webhook.enabled) {
    manager.add(
      webhookRunnable({ config: config.webhook, bindings, operatorNamespace: config.operatorNamespace, kubeConfig, registry, logger: logger.child({ component: 'webhook' }), clock }),
    );
  }

  return {
    manager,
    health,
    broker: brokerServer,
    close: async () => {
      await pool.close();
      await resolver.close();
    },
  };
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
      volumes: pod.spec?.volumes?.filter((v) => v.csi !== undefined),
    },
    status: { phase: pod.status?.phase },
  };
}

/** Drops resolver entries no binding asked for in an hour (deleted bindings, changed keys). */
function sweeper(resolver: SecretResolver, clock: Clock): Runnable {
  return {
    name: 'resolver-sweeper',
    needLeaderElection: false,
    start: async (signal) => {
      while (!signal.aborted) {
        resolver.sweep(3_600_000);
        await new Promise<void>((resolve) => {
          const timer = clock.setTimeout(resolve, 600_000);
          signal.addEventListener('abort', () => { clock.clearTimeout(timer); resolve(); }, { once: true });
        });
      }
    },
  };
}
