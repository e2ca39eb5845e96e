import type { BackendKind, SecretBinding } from '../../api/v1alpha1/index.ts';
import { defaultBackend } from '../../delivery/files/file-set.ts';

/**
 * The backends a binding reads from, by the names its files use (ADR 0240): `default` is
 * `spec.backendRef`, the others come from `spec.backends`. A SecretBackend is always one of the
 * binding's own namespace; only a ClusterSecretBackend reaches beyond it.
 */
export interface NamedBackendRef {
  /** The binding's name of the backend (`default` for backendRef). */
  readonly name: string;
  readonly kind: BackendKind;
  /** The backend object's name. */
  readonly backendName: string;
  /** The backend queue key (`backendQueueKey` of the object it names). */
  readonly queueKey: string;
}

/** Every backend a binding names, `default` first, by name. */
export function namedBackends(binding: SecretBinding): Map<string, NamedBackendRef> {
  const namespace = binding.metadata.namespace ?? '';
  const entry = (name: string, ref: { kind?: BackendKind; name: string }): NamedBackendRef => {
    const kind = ref.kind ?? 'SecretBackend';
    return {
      name,
      kind,
      backendName: ref.name,
      queueKey: kind === 'ClusterSecretBackend' ? `ClusterSecretBackend/${ref.name}` : `SecretBackend/${namespace}/${ref.name}`,
    };
  };
  const named = new Map<string, NamedBackendRef>([[defaultBackend, entry(defaultBackend, binding.spec.backendRef)]]);
  for (const b of binding.spec.backends ?? []) named.set(b.name, entry(b.name, b.backendRef));
  return named;
}

/**
 * The backend queue keys of every backend a binding names (the index the binding cache is keyed
 * by, so a change of any of them reconciles the binding).
 */
export function backendRefKeys(binding: SecretBinding): string[] {
  return [...new Set([...namedBackends(binding).values()].map((b) => b.queueKey))];
}

/** How a status message names a backend: `backend aws (ClusterSecretBackend aws-prod)`. */
export function describeBackend(ref: NamedBackendRef): string {
  return `backend ${ref.name} (${ref.kind} ${ref.backendName})`;
}
