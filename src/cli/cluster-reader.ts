import type { KubeConfig, V1ObjectMeta, V1Pod } from '@kubernetes/client-node';
import { group, resources, version, type SecretBinding } from '../api/v1alpha1/index.ts';
import { requestJson } from '../runtime/kube-request.ts';
import { apiFailure } from './cli-errors.ts';

/** A workload kind the sprawl audit reads (Pods' owners), with its API path. */
export const workloadKinds = {
  Deployment: '/apis/apps/v1/{ns}deployments',
  StatefulSet: '/apis/apps/v1/{ns}statefulsets',
  DaemonSet: '/apis/apps/v1/{ns}daemonsets',
  Job: '/apis/batch/v1/{ns}jobs',
  CronJob: '/apis/batch/v1/{ns}cronjobs',
} as const;
export type WorkloadKind = keyof typeof workloadKinds;

/** Any object with metadata and a spec, as the API returns it. */
export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: V1ObjectMeta;
  readonly spec?: unknown;
}

interface ObjectList<T> {
  readonly items?: T[];
  readonly metadata?: { readonly continue?: string };
}

const pageSize = '500';
const bindingsPath = `/apis/${group}/${version}/{ns}${resources.SecretBinding.plural}`;

function scoped(template: string, namespace: string | undefined): string {
  return template.replace('{ns}', namespace === undefined ? '' : `namespaces/${encodeURIComponent(namespace)}/`);
}

/**
 * The CLI's reads and writes against the API server: plain JSON over the kubeconfig's transport
 * (src/runtime/kube-request.ts). Lists page through `continue`; every error becomes a one-line
 * {@link CliError}. Secrets are only ever listed as metadata (PartialObjectMetadataList): their data
 * never reaches this process.
 */
export class ClusterReader {
  readonly #kubeConfig: KubeConfig;
  readonly #signal: AbortSignal;

  constructor(kubeConfig: KubeConfig, signal: AbortSignal) {
    this.#kubeConfig = kubeConfig;
    this.#signal = signal;
  }

  async getPod(namespace: string, name: string): Promise<V1Pod> {
    return this.#get<V1Pod>(`/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`, `pods "${name}" in namespace "${namespace}"`);
  }

  listPods(namespace: string | undefined): Promise<V1Pod[]> {
    return this.#list<V1Pod>(scoped('/api/v1/{ns}pods', namespace), 'pods');
  }

  getBinding(namespace: string, name: string): Promise<SecretBinding> {
    return this.#get<SecretBinding>(`${scoped(bindingsPath, namespace)}/${encodeURIComponent(name)}`, `secretbindings.${group} "${name}" in namespace "${namespace}"`);
  }

  listBindings(namespace: string | undefined): Promise<SecretBinding[]> {
    return this.#list<SecretBinding>(scoped(bindingsPath, namespace), `secretbindings.${group}`);
  }

  /** SecretBackends (their credentials' Secret names count as references). */
  listBackends(namespace: string | undefined): Promise<KubeObject[]> {
    return this.#list<KubeObject>(scoped(`/apis/${group}/${version}/{ns}${resources.SecretBackend.plural}`, namespace), `secretbackends.${group}`);
  }

  listWorkloads(kind: WorkloadKind, namespace: string | undefined): Promise<KubeObject[]> {
    return this.#list<KubeObject>(scoped(workloadKinds[kind], namespace), kind);
  }

  /** Secrets as metadata only: names, labels, annotations, owners — never `data`. */
  listSecretMetadata(namespace: string | undefined): Promise<KubeObject[]> {
    return this.#list<KubeObject>(scoped('/api/v1/{ns}secrets', namespace), 'secrets (metadata only)', 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1');
  }

  /** A JSON merge patch of a SecretBinding's metadata (e.g. the refresh-requested annotation). */
  async patchBindingAnnotations(namespace: string, name: string, annotations: Record<string, string>): Promise<SecretBinding> {
    return this.#patch<SecretBinding>(`${scoped(bindingsPath, namespace)}/${encodeURIComponent(name)}`, { metadata: { annotations } }, `secretbindings.${group} "${name}"`);
  }

  /** A JSON merge patch of a Deployment, StatefulSet or DaemonSet (the pod template annotation of a restart). */
  async patchWorkload(kind: 'Deployment' | 'StatefulSet' | 'DaemonSet', namespace: string, name: string, patch: unknown): Promise<KubeObject> {
    const path = `${scoped(workloadKinds[kind], namespace)}/${encodeURIComponent(name)}`;
    return this.#patch<KubeObject>(path, patch, `${kind} "${name}"`);
  }

  async getWorkload(kind: WorkloadKind, namespace: string, name: string): Promise<KubeObject> {
    return this.#get<KubeObject>(`${scoped(workloadKinds[kind], namespace)}/${encodeURIComponent(name)}`, `${kind} "${name}" in namespace "${namespace}"`);
  }

  async #get<T>(path: string, what: string): Promise<T> {
    try {
      return (await requestJson(this.#kubeConfig, { method: 'GET', path, signal: this.#signal })) as T;
    } catch (error) {
      throw apiFailure(error, what);
    }
  }

  async #patch<T>(path: string, body: unknown, what: string): Promise<T> {
    try {
      return (await requestJson(this.#kubeConfig, { method: 'PATCH', path, body, contentType: 'application/merge-patch+json', signal: this.#signal })) as T;
    } catch (error) {
      throw apiFailure(error, what);
    }
  }

  async #list<T>(path: string, what: string, accept?: string): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined;
    try {
      do {
        const query: Record<string, string> = next === undefined ? { limit: pageSize } : { limit: pageSize, continue: next };
        const page = (await requestJson(this.#kubeConfig, { method: 'GET', path, query, signal: this.#signal, ...(accept === undefined ? {} : { accept }) })) as ObjectList<T>;
        items.push(...(page.items ?? []));
        next = page.metadata?.continue === '' ? undefined : page.metadata?.continue;
      } while (next !== undefined);
    } catch (error) {
      throw apiFailure(error, `list ${what}`);
    }
    return items;
  }
}
