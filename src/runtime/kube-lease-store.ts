import type { KubeTransport } from './kube-request.ts';
import { KubeApiError } from './kube-api-error.ts';
import { requestJson } from './kube-request.ts';
import type { LeaderRecord, LeaseStore, ObservedLease } from './leader-election.ts';

/** A coordination.k8s.io/v1 Lease as JSON (times are MicroTime strings). */
interface LeaseJson {
  readonly metadata?: { readonly resourceVersion?: string };
  readonly spec?: {
    readonly holderIdentity?: string | null;
    readonly leaseDurationSeconds?: number;
    readonly acquireTime?: string | null;
    readonly renewTime?: string | null;
    readonly leaseTransitions?: number;
  };
}

/** MicroTime wants exactly six fractional digits. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function parseTime(value: string | null | undefined): Date | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

function toObserved(lease: LeaseJson): ObservedLease {
  const spec = lease.spec ?? {};
  return {
    version: lease.metadata?.resourceVersion ?? '',
    record: {
      holderIdentity: spec.holderIdentity ?? undefined,
      leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
      acquireTime: parseTime(spec.acquireTime),
      renewTime: parseTime(spec.renewTime),
      leaseTransitions: spec.leaseTransitions ?? 0,
    },
  };
}

/** Keeps the leader record in a Lease object (`kubectl get lease -n <ns> <name>` shows the holder). */
export class KubeLeaseStore implements LeaseStore {
  readonly description: string;
  readonly #kubeConfig: KubeTransport;
  readonly #namespace: string;
  readonly #name: string;

  constructor(kubeConfig: KubeTransport, lease: { readonly namespace: string; readonly name: string }) {
    this.#kubeConfig = kubeConfig;
    this.#namespace = lease.namespace;
    this.#name = lease.name;
    this.description = `lease ${lease.namespace}/${lease.name}`;
  }

  async get(signal: AbortSignal): Promise<ObservedLease | undefined> {
    try {
      return toObserved((await requestJson(this.#kubeConfig, { method: 'GET', path: this.#itemPath(), signal })) as LeaseJson);
    } catch (error) {
      if (error instanceof KubeApiError && error.code === 404) return undefined;
      throw error;
    }
  }

  async create(record: LeaderRecord, signal: AbortSignal): Promise<ObservedLease> {
    const body = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.#name, namespace: this.#namespace }, spec: this.#spec(record) };
    return toObserved((await requestJson(this.#kubeConfig, { method: 'POST', path: this.#collectionPath(), body, signal })) as LeaseJson);
  }

  async update(record: LeaderRecord, version: string, signal: AbortSignal): Promise<ObservedLease> {
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.#name, namespace: this.#namespace, resourceVersion: version },
      spec: this.#spec(record),
    };
    return toObserved((await requestJson(this.#kubeConfig, { method: 'PUT', path: this.#itemPath(), body, signal })) as LeaseJson);
  }

  #spec(record: LeaderRecord): Record<string, unknown> {
    return {
      ...(record.holderIdentity === undefined || record.holderIdentity === '' ? {} : { holderIdentity: record.holderIdentity }),
      leaseDurationSeconds: record.leaseDurationSeconds,
      ...(record.acquireTime === undefined ? {} : { acquireTime: microTime(record.acquireTime) }),
      ...(record.renewTime === undefined ? {} : { renewTime: microTime(record.renewTime) }),
      leaseTransitions: record.leaseTransitions,
    };
  }

  #collectionPath(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#namespace)}/leases`;
  }

  #itemPath(): string {
    return `${this.#collectionPath()}/${encodeURIComponent(this.#name)}`;
  }
}
