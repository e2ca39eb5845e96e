import type { V1Pod, V1Volume } from '@kubernetes/client-node';
import type { Reason } from '../api/v1alpha1/conditions.ts';
import { agentContainerName, bindingOfAgentMount } from '../broker/agent.protocol.ts';
import { driverName } from '../broker/broker.protocol.ts';
import { allow, deny, isPodRequest, podOf, type AdmissionRequest, type Decision } from './admission.ts';
import type { BindingLookup } from './mutate.ts';

/**
 * The validating webhook: a container (regular, init or ephemeral) may mount a bound volume — any
 * CSI volume of our driver, or a memory volume the agent writes — only if that volume's binding lists it; `subPath` mounts of bound
 * volumes are allowed with a warning (the kubelet never updates them). On UPDATE only what the
 * update adds is judged (ADR 0092), so deleting a binding never blocks updates of running pods.
 */

/** Refusals and warnings start with their reason from the closed list, so a developer can look it up. */
const reason = (r: Reason): Reason => r;

type ContainerKind = 'container' | 'init container' | 'ephemeral container';

/** One mount of a bound volume, with everything a message needs. */
export interface BoundMount {
  readonly containerKind: ContainerKind;
  readonly container: string;
  readonly volume: string;
  /** The volume's `volumeAttributes.binding`; undefined when it has none. */
  readonly binding: string | undefined;
  readonly subPath: boolean;
}

export function validate(request: AdmissionRequest, lookupBinding: BindingLookup): Decision {
  const judged =
    (isPodRequest(request) && (request.operation === 'CREATE' || request.operation === 'UPDATE')) ||
    (isPodRequest(request, 'ephemeralcontainers') && request.operation === 'UPDATE');
  const pod = podOf(request.object);
  if (!judged || pod === undefined) return allow();
  const namespace = request.namespace ?? pod.metadata?.namespace ?? '';
  const before = new Set(boundMounts(podOf(request.oldObject)).map(mountKey));
  const added = boundMounts(pod).filter((m) => !before.has(mountKey(m)));
  return judge(added, namespace, lookupBinding);
}

/**
 * The agent's memory volumes (ADR 0250), by the binding each holds: the volumes the agent
 * container mounts at its per-binding path. The agent's own mounts are not judged.
 */
function agentVolumes(pod: V1Pod | undefined): { readonly bindingOf: Map<string, string>; readonly agent: string | undefined } {
  const agent = (pod?.spec?.initContainers ?? []).find((c) => c.name === agentContainerName);
  const bindingOf = new Map<string, string>();
  for (const m of agent?.volumeMounts ?? []) {
    const binding = bindingOfAgentMount(m.mountPath);
    if (binding !== undefined) bindingOf.set(m.name, binding);
  }
  return { bindingOf, agent: agent?.name };
}

/** Every mount of a CSI volume of our driver or of an agent volume, in every kind of container. */
export function boundMounts(pod: V1Pod | undefined): BoundMount[] {
  const volumes = new Map<string, V1Volume>();
  for (const v of pod?.spec?.volumes ?? []) if (v.csi?.driver === driverName) volumes.set(v.name, v);
  const agent = agentVolumes(pod);
  for (const [volume, binding] of agent.bindingOf) volumes.set(volume, { name: volume, csi: { driver: driverName, volumeAttributes: { binding } } });
  if (volumes.size === 0) return [];
  const groups: [ContainerKind, readonly { name: string; volumeMounts?: { name: string; subPath?: string; subPathExpr?: string }[] }[]][] = [
    ['init container', pod?.spec?.initContainers ?? []],
    ['container', pod?.spec?.containers ?? []],
    ['ephemeral container', pod?.spec?.ephemeralContainers ?? []],
  ];
  const out: BoundMount[] = [];
  for (const [containerKind, containers] of groups) {
    for (const c of containers) {
      if (containerKind === 'init container' && c.name === agent.agent) continue;
      for (const m of c.volumeMounts ?? []) {
        const volume = volumes.get(m.name);
        if (volume === undefined) continue;
        out.push({
          containerKind,
          container: c.name,
          volume: m.name,
          binding: volume.csi?.volumeAttributes?.['binding'],
          subPath: (m.subPath ?? '') !== '' || (m.subPathExpr ?? '') !== '',
        });
      }
    }
  }
  return out;
}

const mountKey = (m: BoundMount): string => JSON.stringify([m.containerKind, m.container, m.volume, m.binding ?? null, m.subPath]);

/** Refusals for mounts the binding does not allow, warnings for subPath mounts. */
export function judge(mounts: readonly BoundMount[], namespace: string, lookupBinding: BindingLookup): Decision {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const m of mounts) {
    const who = `${m.containerKind} ${m.container}`;
    if (m.binding === undefined || m.binding === '') {
      problems.push(`${who} mounts volume ${m.volume} of driver ${driverName}, which names no binding (volumeAttributes.binding)`);
      continue;
    }
    const binding = lookupBinding(namespace, m.binding);
    if (binding === undefined) {
      problems.push(`${who} mounts volume ${m.volume} of SecretBinding ${namespace}/${m.binding}, which does not exist`);
      continue;
    }
    if (!binding.spec.containers.includes(m.container)) {
      problems.push(
        `${reason('ContainerNotAllowed')}: ${who} mounts volume ${m.volume} of SecretBinding ${m.binding}, which does not list it (listed: ${binding.spec.containers.join(', ')})`,
      );
      continue;
    }
    if (m.subPath) warnings.push(`${reason('SubPathMount')}: ${who} mounts volume ${m.volume} of SecretBinding ${m.binding} with subPath: files mounted by subPath never receive updates`);
  }
  return problems.length > 0 ? deny(problems.join('; '), 403, warnings) : allow(warnings);
}
