import type { V1Container, V1EphemeralContainer, V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { isConsumer } from '../controllers/binding/consumers.ts';
import { agentContainerName, agentMountPath } from './agent.protocol.ts';
import { brokerAudience } from './broker.protocol.ts';
import type { Entitlement } from './entitlement.ts';

/**
 * Whether `pod`, asking through its agent, is entitled to `binding` (invariant 3 for agent mode,
 * ADR 0250). As for CSI the pod must be a live consumer; instead of a CSI volume it must have the
 * agent container mounting a memory-backed emptyDir at {@link agentMountPath}, and every other
 * container (regular, init or ephemeral) that mounts that volume must be listed by the binding.
 * The pod's `secretbinder.dev` token may be mounted by the agent container only: any other container
 * holding it could ask the broker itself. Pure: the caller has read both objects.
 */
export function agentEntitlement(binding: SecretBinding, pod: V1Pod): Entitlement {
  const bindingName = binding.metadata.name ?? '';
  if (pod.metadata?.deletionTimestamp !== undefined) return { entitled: false, detail: 'pod is terminating' };
  if (!isConsumer(binding, pod)) return { entitled: false, detail: `pod is not selected by the binding's podSelector/serviceAccountNames` };
  const agent = (pod.spec?.initContainers ?? []).find((c) => c.name === agentContainerName);
  if (agent === undefined) return { entitled: false, detail: `pod has no ${agentContainerName} init container` };
  const mount = (agent.volumeMounts ?? []).find((m) => m.mountPath === agentMountPath(bindingName));
  const volume = (pod.spec?.volumes ?? []).find((v) => v.name === mount?.name);
  if (volume?.emptyDir?.medium !== 'Memory') {
    return { entitled: false, detail: `the ${agentContainerName} container does not mount a memory emptyDir for the binding at ${agentMountPath(bindingName)}` };
  }
  const others: (V1Container | V1EphemeralContainer)[] = [
    ...(pod.spec?.initContainers ?? []).filter((c) => c !== agent),
    ...(pod.spec?.containers ?? []),
    ...(pod.spec?.ephemeralContainers ?? []),
  ];
  const mounting = others.filter((c) => (c.volumeMounts ?? []).some((m) => m.name === volume.name)).map((c) => c.name);
  const allowed = new Set(binding.spec.containers);
  const unlisted = mounting.filter((name) => !allowed.has(name));
  if (unlisted.length > 0) return { entitled: false, detail: `container(s) ${unlisted.join(', ')} mount the volume but are not listed by the binding` };
  const tokenVolumes = new Set(
    (pod.spec?.volumes ?? [])
      .filter((v) => (v.projected?.sources ?? []).some((s) => s.serviceAccountToken?.audience === brokerAudience))
      .map((v) => v.name),
  );
  const tokenHolders = others.filter((c) => (c.volumeMounts ?? []).some((m) => tokenVolumes.has(m.name))).map((c) => c.name);
  if (tokenHolders.length > 0) return { entitled: false, detail: `container(s) ${tokenHolders.join(', ')} mount a ${brokerAudience} token; only ${agentContainerName} may` };
  return { entitled: true, containers: [...new Set(mounting)].sort() };
}
