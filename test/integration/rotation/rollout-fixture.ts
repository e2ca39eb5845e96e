import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Deployment,
  type V1PodTemplateSpec,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import { group, resources, version, type SecretBinding } from '../../../src/api/v1alpha1/index.ts';
import { contentHashAnnotation, workloadContentHash } from '../../../src/controllers/rotation/rollout-hash.ts';
import { operatorNamespace, type ControllerProcess } from '../../harness/controller-process.ts';
import { adminKubeConfig, eventually, installCrds } from '../support/cluster.ts';

/**
 * RollingRestart as the API server and kube-controller-manager see it, for the suites that count
 * rollouts (the RollingRestart suite, the leader-kill chaos drill): a namespace with a fake
 * SecretBackend, bindings whose rotation is a change of a file's path (the content HMAC changes at
 * once, with no backend polling in between), and workloads whose rollouts are counted as the
 * revisions their controllers create.
 */

export type WorkloadKind = 'Deployment' | 'StatefulSet';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** A RollingRestart binding of one file (`path` ← `key`) for the pods `selector` matches. */
export function rollingRestartBinding(name: string, selector: Record<string, string>, key: string, path: string, debounceSeconds: number): object {
  return {
    apiVersion: `${group}/${version}`,
    kind: 'SecretBinding',
    metadata: { name },
    spec: {
      backendRef: { kind: 'SecretBackend', name: 'fake' },
      podSelector: { matchLabels: selector },
      containers: ['app'],
      files: [{ path, key }],
      rotation: { strategy: 'RollingRestart', debounce: `${debounceSeconds}s` },
    },
  };
}

/** A pod template whose image never pulls: pods of a world without a kubelet stay Pending anyway. */
export function podTemplate(labels: Record<string, string>): V1PodTemplateSpec {
  return { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } };
}

export class RolloutFixture {
  readonly kc: KubeConfig;
  readonly ns: string;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly #bindingRef: { group: string; version: string; plural: string; namespace: string };

  /**
   * The CRDs, the operator namespace (its Leases), and namespace `ns` with its SecretBackend
   * `fake`, serving `keys` from `seed`.
   */
  static async start(ns: string, seed: string, keys: readonly string[]): Promise<RolloutFixture> {
    const fx = new RolloutFixture(adminKubeConfig(), ns);
    await installCrds(fx.kc);
    await fx.core.createNamespace({ body: { metadata: { name: operatorNamespace } } }).catch(() => undefined);
    await fx.core.createNamespace({ body: { metadata: { name: ns } } });
    await fx.custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: ns,
      body: {
        apiVersion: `${group}/${version}`,
        kind: 'SecretBackend',
        metadata: { name: 'fake', namespace: ns },
        spec: { fake: { seed, keys: keys.map((key) => ({ key })) }, refreshInterval: '10m' },
      },
    });
    return fx;
  }

  private constructor(kc: KubeConfig, ns: string) {
    this.kc = kc;
    this.ns = ns;
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.#bindingRef = { group, version, plural: resources.SecretBinding.plural, namespace: ns };
  }

  async createBinding(body: object): Promise<void> {
    await this.custom.createNamespacedCustomObject({ ...this.#bindingRef, body });
  }

  async getBinding(name: string): Promise<SecretBinding> {
    return (await this.custom.getNamespacedCustomObject({ ...this.#bindingRef, name })) as SecretBinding;
  }

  /** Points a binding's file at a new path: its content HMAC changes with the next reconcile. */
  async rotate(name: string, path: string): Promise<void> {
    const current = await this.getBinding(name);
    const file = current.spec.files[0];
    if (file === undefined) throw new Error(`${name} has no file`);
    await this.custom.patchNamespacedCustomObject({ ...this.#bindingRef, name, body: { spec: { files: [{ ...file, path }] } } }, mergePatch);
  }

  /** The hash a workload consuming `bindings` should carry, once every one has concluded on its current spec. */
  async expectedHash(bindings: readonly string[]): Promise<string | undefined> {
    const hashes: string[] = [];
    for (const name of bindings) {
      const b = await this.getBinding(name);
      const settled = b.status?.observedGeneration === b.metadata.generation && b.status?.contentHmac !== undefined;
      if (!settled || b.status?.contentHmac === undefined) return undefined;
      hashes.push(b.status.contentHmac);
    }
    return workloadContentHash(hashes);
  }

  async readWorkload(kind: WorkloadKind, name: string): Promise<V1Deployment | V1StatefulSet> {
    return kind === 'StatefulSet'
      ? this.apps.readNamespacedStatefulSet({ name, namespace: this.ns })
      : this.apps.readNamespacedDeployment({ name, namespace: this.ns });
  }

  /** The hash the template carries (a rollout), the one recorded on the workload, and its generation. */
  async annotations(kind: WorkloadKind, name: string): Promise<{ template: string | undefined; recorded: string | undefined; generation: number | undefined }> {
    const w = await this.readWorkload(kind, name);
    return {
      template: w.spec?.template.metadata?.annotations?.[contentHashAnnotation],
      recorded: w.metadata?.annotations?.[contentHashAnnotation],
      generation: w.metadata?.generation,
    };
  }

  /**
   * Pod templates the workload has run: ReplicaSets of a Deployment, ControllerRevisions of a
   * StatefulSet (one per distinct template; pods need not start for them to appear).
   */
  async revisions(kind: WorkloadKind, name: string): Promise<number> {
    const owned = (o: { metadata?: { ownerReferences?: { kind: string; name: string }[] } }): boolean =>
      o.metadata?.ownerReferences?.some((r) => r.kind === kind && r.name === name) ?? false;
    if (kind === 'Deployment') return (await this.apps.listNamespacedReplicaSet({ namespace: this.ns })).items.filter(owned).length;
    return (await this.apps.listNamespacedControllerRevision({ namespace: this.ns })).items.filter(owned).length;
  }

  /** Waits until the workload's template carries the hash of `bindings`' current content. */
  async rolledTo(kind: WorkloadKind, name: string, bindings: readonly string[], timeoutMs = 30_000): Promise<string> {
    return eventually(`${name} rolled to the current hash`, async () => {
      const want = await this.expectedHash(bindings);
      const got = (await this.annotations(kind, name)).template;
      return want !== undefined && got === want ? got : undefined;
    }, timeoutMs);
  }

  /** Waits until the controller has adopted the workload: its metadata records the hash of `bindings`. */
  async adopted(kind: WorkloadKind, name: string, bindings: readonly string[]): Promise<void> {
    await eventually(`${name} adopted`, async () => {
      const want = await this.expectedHash(bindings);
      return want !== undefined && (await this.annotations(kind, name)).recorded === want ? true : undefined;
    }, 60_000);
  }

  /** Stops the suite's controllers and deletes the namespace. */
  async close(controllers: readonly ControllerProcess[]): Promise<void> {
    await Promise.all(controllers.map((c) => c.stop()));
    await this.core.deleteNamespace({ name: this.ns }).catch(() => undefined);
  }

  /** Events of `reason` about one object. */
  async events(reason: string, kind: string, name: string): Promise<number> {
    const list = await this.core.listNamespacedEvent({ namespace: this.ns });
    return list.items.filter((e) => e.reason === reason && e.involvedObject.kind === kind && e.involvedObject.name === name).length;
  }
}
