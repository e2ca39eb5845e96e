import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { RenderedFile } from '../delivery/files/file-set.ts';
import { SecretValue } from '../observability/secret-value.ts';

/**
 * What the controller keeps of one issued credential, in the backend's KV mount (ADR 0260): the
 * lease, its data (so any replica, and the controller after a restart, serves the same credential
 * without issuing another), its timing, and the lease it replaced until that one is revoked. Never
 * in etcd, never logged: it travels as a {@link SecretValue}.
 */
export interface LeaseRecord {
  readonly version: 1;
  /** The binding that issued it; a record of an earlier binding of the same name is revoked. */
  readonly bindingUid: string;
  /** `pod/<uid>` (perPod) or `workload` (perWorkload). */
  readonly consumer: string;
  /** The pod a perPod lease belongs to. */
  readonly pod?: { readonly name: string; readonly uid: string };
  readonly leaseId: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** How many times this consumer's credential was issued (1 = first). */
  readonly serial: number;
  /** Epoch ms: issued, last renewed, and when the lease ends unless renewed. */
  readonly issuedAt: number;
  readonly renewedAt: number;
  readonly expiresAt: number;
  /** The lease duration at issue: renewals ask for it again; a shorter answer means the max TTL is near. */
  readonly ttlSeconds: number;
  readonly renewable: boolean;
  /** Set once a renewal was capped: the lease cannot outlive this, a new one is issued before. */
  readonly maxExpiresAt?: number;
  /** `certificate` for a pki binding: leaseId is then the certificate's serial number, data empty. */
  readonly kind?: 'lease' | 'certificate';
  /** A certificate's file-set hash, which the pod's volume holds while the certificate is current. */
  readonly contentHash?: string;
  /** The lease this one replaced, revoked once every consumer holds the new credential (or it expires). */
  readonly previous?: { readonly leaseId: string; readonly expiresAt: number };
}

export function consumerOf(binding: SecretBinding, podUid: string): string {
  return binding.spec.dynamic?.scope === 'perWorkload' ? 'workload' : `pod-${podUid}`;
}

/** The names a pod's certificate is requested for: the binding's pki templates over the pod. */
export function certificateNames(binding: SecretBinding, pod: { readonly name: string; readonly namespace: string; readonly serviceAccount: string }): { commonName: string; dnsNames: string[]; uris: string[] } {
  const pki = binding.spec.pki;
  const values: Readonly<Record<string, string>> = { podName: pod.name, namespace: pod.namespace, serviceAccount: pod.serviceAccount };
  const render = (template: string): string =>
    template.replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (_, name: string) => {
      const value = values[name];
      if (value === undefined) throw new MissingFieldError(name, 'pki templates know podName, namespace and serviceAccount');
      return value;
    });
  return {
    commonName: render(pki?.commonName ?? ''),
    dnsNames: (pki?.dnsNames ?? []).map(render),
    uris: pki?.spiffeId === undefined ? [] : [render(pki.spiffeId)],
  };
}

/** The record key under the lease prefix: `<namespace>/<binding>/<consumer>`. */
export function recordKey(namespace: string, binding: string, consumer: string): string {
  return `${namespace}/${binding}/${consumer}`;
}

export function serializeRecord(record: LeaseRecord): SecretValue {
  return SecretValue.fromString(JSON.stringify(record));
}

/** A stored record, or undefined when the text is not one of ours (it is then replaced). */
export function parseRecord(value: SecretValue): LeaseRecord | undefined {
  try {
    const parsed = JSON.parse(value.revealText()) as Partial<LeaseRecord>;
    if (parsed.version !== 1 || typeof parsed.leaseId !== 'string' || typeof parsed.bindingUid !== 'string' || typeof parsed.expiresAt !== 'number') return undefined;
    if (typeof parsed.data !== 'object' || (parsed.data as unknown) === null || typeof parsed.ttlSeconds !== 'number' || typeof parsed.renewedAt !== 'number') return undefined;
    return parsed as LeaseRecord;
  } catch {
    return undefined;
  }
}

/** Default permission bits of a dynamic file: 0440. */
const defaultMode = 0o440;

/**
 * The binding's files from a credential's data: a field as is, or a template whose every
 * `{{ field }}` is replaced by that field. A field the credential lacks is an error naming it
 * (never a value); non-string fields are written as JSON.
 */
export function renderDynamicFiles(binding: SecretBinding, data: Readonly<Record<string, unknown>>): RenderedFile[] {
  const files = binding.spec.dynamic?.files ?? [];
  const text = (field: string): string => {
    if (!Object.hasOwn(data, field)) throw new MissingFieldError(field);
    const value = data[field];
    return typeof value === 'string' ? value : JSON.stringify(value);
  };
  return files.map((f) => ({
    path: f.path,
    mode: f.mode ?? defaultMode,
    content: SecretValue.fromString(f.field !== undefined ? text(f.field) : (f.template ?? '').replace(/\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g, (_, name: string) => text(name))),
  }));
}

export class MissingFieldError extends Error {
  constructor(field: string, detail = 'the credential has no such field') {
    super(`unknown field "${field.slice(0, 100)}": ${detail}`);
    this.name = 'MissingFieldError';
  }
}
