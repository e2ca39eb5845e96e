import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { isConsumer } from '../../controllers/binding/consumers.ts';
import { bindingFiles, bindingHealth, boundVolumes, deliveryOf, nodeOf, podContainers, type ContainerKind, type Delivery, type FileFacts } from '../binding-facts.ts';

/**
 * `explain pod/NAME` as plain data: per container, each binding it mounts, what it gets and how
 * current it is, or why it gets nothing. Pure: the pod and its namespace's bindings in, the
 * explanation out (the bindings may be only those the pod's volumes name). Holds keys, paths,
 * versions and the status HMAC — never a value.
 */

/**
 * What a container gets from one binding. `Denied`, `Failing` and `Pending` carry a reason from
 * the closed list (src/api/v1alpha1/conditions.ts) where one applies.
 */
export type DeliveryState = 'Delivered' | 'Denied' | 'Pending' | 'Failing';

export interface ExplainedBinding {
  readonly binding: string;
  readonly volume: string;
  readonly mountPath: string;
  readonly state: DeliveryState;
  readonly reason?: string;
  readonly message?: string;
  /** A warning that does not stop delivery (Degraded, a subPath mount). */
  readonly warning?: { readonly reason: string; readonly message: string };
  readonly backend?: { readonly kind: string; readonly name: string };
  readonly rotation?: string;
  readonly files: readonly (FileFacts & { readonly fullPath: string })[];
  /** The content HMAC in the binding's status: what every consumer should hold. */
  readonly latestContentHmac?: string;
  /** Whether this pod holds it (see deliveryOf). */
  readonly delivered: Delivery;
  readonly lastSyncTime?: string;
  readonly lastRotationTime?: string;
}

export interface ExplainedContainer {
  readonly name: string;
  readonly kind: ContainerKind;
  readonly bindings: readonly ExplainedBinding[];
  /** Set when the container gets no file: `NotListed` (it mounts no secret-binder volume). */
  readonly nothing?: { readonly state: 'NotListed'; readonly message: string };
}

export interface PodExplanation {
  readonly pod: { readonly namespace: string; readonly name: string; readonly node: string; readonly phase: string; readonly serviceAccount: string };
  readonly containers: readonly ExplainedContainer[];
}

export function explainPod(pod: V1Pod, bindings: readonly SecretBinding[]): PodExplanation {
  const namespace = pod.metadata?.namespace ?? '';
  const byName = new Map(bindings.map((b) => [b.metadata.name ?? '', b]));
  const volumes = new Map(boundVolumes(pod).map((v) => [v.volume, v.binding]));
  const containers = podContainers(pod).map((container): ExplainedContainer => {
    const explained = container.mounts.flatMap((mount): ExplainedBinding[] => {
      const name = volumes.get(mount.volume);
      if (name === undefined) return [];
      return [explainMount(pod, name, byName.get(name), bindings, container.name, mount)];
    });
    if (explained.length > 0) return { name: container.name, kind: container.kind, bindings: explained };
    const listing = bindings.filter((b) => b.spec.containers.includes(container.name) && isConsumer(b, pod)).map((b) => b.metadata.name ?? '');
    const message =
      listing.length > 0
        ? `mounts no secret-binder volume (SecretBinding ${listing.join(', ')} selects this pod and lists the container: mount its volume)`
        : 'mounts no secret-binder volume';
    return { name: container.name, kind: container.kind, bindings: [], nothing: { state: 'NotListed', message } };
  });
  return {
    pod: { namespace, name: pod.metadata?.name ?? '', node: nodeOf(pod), phase: pod.status?.phase ?? 'Unknown', serviceAccount: pod.spec?.serviceAccountName ?? 'default' },
    containers,
  };
}

function explainMount(
  pod: V1Pod,
  name: string,
  binding: SecretBinding | undefined,
  namespaceBindings: readonly SecretBinding[],
  container: string,
  mount: { readonly volume: string; readonly mountPath: string; readonly subPath?: string },
): ExplainedBinding {
  const base = { binding: name, volume: mount.volume, mountPath: mount.mountPath };
  if (binding === undefined) {
    return { ...base, state: 'Denied', reason: 'NotEntitled', message: `SecretBinding ${name} does not exist in namespace ${pod.metadata?.namespace ?? ''}`, files: [], delivered: 'none' };
  }
  const files = bindingFiles(binding).map((f) => ({ ...f, fullPath: `${mount.mountPath.replace(/\/$/, '')}/${f.path}` }));
  const status = binding.status;
  const facts = {
    ...base,
    backend: { kind: binding.spec.backendRef.kind ?? 'SecretBackend', name: binding.spec.backendRef.name },
    rotation: binding.spec.rotation?.strategy ?? 'Refresh',
    files,
    ...(status?.contentHmac === undefined ? {} : { latestContentHmac: status.contentHmac }),
    ...(status?.lastSyncTime === undefined ? {} : { lastSyncTime: status.lastSyncTime }),
    ...(status?.lastRotationTime === undefined ? {} : { lastRotationTime: status.lastRotationTime }),
  };
  // The broker serves a volume only if every container mounting it is listed (invariant 3).
  const unlisted = podContainers(pod).filter((c) => c.mounts.some((m) => m.volume === mount.volume) && !binding.spec.containers.includes(c.name)).map((c) => c.name);
  if (unlisted.length > 0) {
    const who = unlisted.includes(container) ? `container ${container}` : `container ${unlisted.join(', ')} of this pod, which also mounts volume ${mount.volume}`;
    return { ...facts, state: 'Denied', reason: 'ContainerNotAllowed', message: `SecretBinding ${name} does not list ${who} (it lists ${binding.spec.containers.join(', ')})`, delivered: 'none' };
  }
  if (!isConsumer(binding, pod)) {
    const accounts = binding.spec.serviceAccountNames ?? [];
    const why = accounts.length > 0 ? `podSelector or serviceAccountNames (${accounts.join(', ')})` : 'podSelector';
    return { ...facts, state: 'Denied', reason: 'NotEntitled', message: `the pod does not match SecretBinding ${name}'s ${why}`, delivered: 'none' };
  }
  const health = bindingHealth(binding);
  const subPath = mount.subPath === undefined ? undefined : { reason: 'SubPathMount', message: `mounted with subPath ${mount.subPath}: the file never updates` };
  switch (health.state) {
    case 'Pending':
      return { ...facts, state: 'Pending', message: health.message, delivered: 'none' };
    case 'Failing':
      // Running pods keep what they were last given (invariant 7): say whether that is current.
      return { ...facts, state: 'Failing', reason: health.reason, message: health.message, delivered: deliveryOf(binding, pod, namespaceBindings) };
    case 'Ready': {
      const warning = subPath ?? health.degraded;
      return { ...facts, state: 'Delivered', ...(warning === undefined ? {} : { warning }), delivered: deliveryOf(binding, pod, namespaceBindings) };
    }
  }
}
