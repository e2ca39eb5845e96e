import type { V1Container, V1EphemeralContainer, V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { isConsumer } from '../controllers/binding/consumers.ts';
import { driverName } from './broker.protocol.ts';

/** Whether a pod may hold a binding's files, and which of its containers mount them. */
export type Entitlement =
  | { readonly entitled: true; readonly containers: readonly string[] }
  | { readonly entitled: false; readonly detail: string };

/**
 * Decides whether `pod` is entitled to `binding` (DESIGN invariant 3, the part after identity):
 * it is a live consumer (podSelector, serviceAccountNames), it has a CSI volume of our driver
 * naming the binding, and every container — regular, init or ephemeral — that mounts such a
 * volume is listed in the binding's `containers`. Pure: the caller has read both objects.
 */
export function entitlement(binding: SecretBinding, pod: V1Pod): Entitlement {
  const bindingName = binding.metadata.name ?? '';
  if (pod.metadata?.deletionTimestamp !== undefined) return { entitled: false, detail: 'pod is terminating' };
  if (!isConsumer(binding, pod)) return { entitled: false, detail: `pod is not selected by the binding's podSelector/serviceAccountNames` };
  const volumes = new Set(
    (pod.spec?.volumes ?? [])
      .filter((v) => v.csi?.driver === driverName && v.csi.volumeAttributes?.['binding'] === bindingName)
      .map((v) => v.name),
  );
  if (volumes.size === 0) return { entitled: false, detail: `pod has no ${driverName} volume for the binding` };
  const all: (V1Container | V1EphemeralContainer)[] = [
    ...(pod.spec?.initContainers ?? []),
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.ephemeralContainers ?? []),
  ];
  const mounting = all.filter((c) => (c.volumeMounts ?? []).some((m) => volumes.has(m.name))).map((c) => c.name);
  const allowed = new Set(binding.spec.containers);
  const unlisted = mounting.filter((name) => !allowed.has(name));
  if (unlisted.length > 0) return { entitled: false, detail: `container(s) ${unlisted.join(', ')} mount the volume but are not listed by the binding` };
  return { entitled: true, containers: [...new Set(mounting)].sort() };
}
