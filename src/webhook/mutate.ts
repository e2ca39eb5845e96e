import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { driverName } from '../broker/broker.protocol.ts';
import { matchesLabelSelector } from '../controllers/binding/label-selector.ts';
import { agentBindingOf, agentContainer, agentTokenVolume, agentVolume, deliveryModeOf, type AgentBinding, type AgentSettings, type DeliveryMode } from './agent-injection.ts';
import { agentContainerName, agentTokenVolumeName } from '../broker/agent.protocol.ts';
import { allow, deny, isPodRequest, podOf, type AdmissionRequest, type Decision, type JsonPatchOperation } from './admission.ts';
import {
  bindingsAnnotation,
  injectedAnnotation,
  injectLabel,
  parseInjectAnnotations,
  systemNamespaces,
  volumeNameOf,
  type InjectRequest,
} from './inject.annotations.ts';

/**
 * The mutating webhook as a pipeline of small pure functions (STYLE 8): gate → parse annotations →
 * look the bindings up → build the desired pod → diff it against the incoming pod into a JSON patch.
 * The patch is never hand-built: `fast-json-patch`'s `compare` derives it (ADR 0090).
 */

/** Reads SecretBindings from the informer cache (`namespace/name`). */
export type BindingLookup = (namespace: string, name: string) => SecretBinding | undefined;

export interface MutateContext {
  readonly lookupBinding: BindingLookup;
  /** The operator's namespace: treated like kube-system. */
  readonly operatorNamespace: string;
  /** The mode of bindings that do not name one (chart `agent.defaultDeliveryMode`); csi when absent. */
  readonly defaultMode?: DeliveryMode;
  /** Agent mode's settings; absent when the controller runs without an agent image. */
  readonly agent?: AgentSettings;
}

/** One binding to inject: its volume, its mount path and the containers that get the mount. */
export interface InjectionPlan {
  readonly binding: string;
  readonly volumeName: string;
  readonly mountPath: string;
  readonly containers: readonly string[];
  /** Set for a binding delivered by the agent (ADR 0250); absent for CSI. */
  readonly agent?: AgentBinding;
}

type Step<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly decision: Decision };

export function mutate(request: AdmissionRequest, ctx: MutateContext): Decision {
  const gated = gate(request, ctx.operatorNamespace);
  if (!gated.ok) return gated.decision;
  const { pod, namespace } = gated.value;
  const parsed = parseInjectAnnotations(pod.metadata?.annotations ?? {});
  if (!parsed.ok) return deny(parsed.message, 400);
  const planned = plan(pod, namespace, parsed.value, ctx.lookupBinding, ctx);
  if (!planned.ok) return planned.decision;
  const desired = buildDesiredPod(pod, planned.value, ctx.agent);
  if (!desired.ok) return desired.decision;
  return { outcome: 'patched', patch: diff(pod, desired.value), warnings: [] };
}

/**
 * Only CREATE of labelled pods not injected yet; system namespaces are refused (ADR 0091): a pod
 * there that asks for injection would otherwise start without the files it expects.
 */
export function gate(request: AdmissionRequest, operatorNamespace: string): Step<{ pod: V1Pod; namespace: string }> {
  const pod = podOf(request.object);
  if (!isPodRequest(request) || request.operation !== 'CREATE' || pod === undefined) return { ok: false, decision: allow() };
  if (pod.metadata?.labels?.[injectLabel] !== 'true') return { ok: false, decision: allow() };
  if (pod.metadata.annotations?.[injectedAnnotation] !== undefined) return { ok: false, decision: allow() };
  const namespace = request.namespace ?? pod.metadata.namespace ?? '';
  if (systemNamespaces.includes(namespace) || namespace === operatorNamespace) {
    return { ok: false, decision: deny(`secretbinder.dev does not inject into system namespace ${namespace}; remove the ${injectLabel} label`) };
  }
  return { ok: true, value: { pod, namespace } };
}

/**
 * Which containers get which binding: exactly the pod's containers the binding lists. A pod the
 * binding does not select (podSelector, serviceAccountNames) is refused: the broker would never
 * serve it, and it would hang in ContainerCreating far from the cause.
 */
export function plan(
  pod: V1Pod,
  namespace: string,
  request: InjectRequest,
  lookup: BindingLookup,
  modes: Pick<MutateContext, 'defaultMode' | 'agent'> = {},
): Step<InjectionPlan[]> {
  const podContainers = allContainers(pod).map((c) => c.name);
  const problems: string[] = [];
  const plans: InjectionPlan[] = [];
  for (const { name, mountPath } of request.bindings) {
    const binding = lookup(namespace, name);
    if (binding === undefined) {
      problems.push(`SecretBinding ${namespace}/${name} (annotation ${bindingsAnnotation}) not found`);
      continue;
    }
    const selected = notSelectedBecause(binding, pod);
    if (selected !== undefined) {
      problems.push(`SecretBinding ${name} does not select this pod: ${selected}`);
      continue;
    }
    const listed = new Set(binding.spec.containers);
    const containers = podContainers.filter((c) => listed.has(c));
    if (containers.length === 0) {
      problems.push(`SecretBinding ${name} lists containers [${binding.spec.containers.join(', ')}], none of which is in this pod`);
      continue;
    }
    const mode = deliveryModeOf(binding, modes.defaultMode ?? 'csi');
    if (mode === 'agent' && modes.agent === undefined) {
      problems.push(`SecretBinding ${name} is delivered by the agent (delivery.mode), but this controller runs without an agent image (chart agent.enabled / --agent-image)`);
      continue;
    }
    if (mode === 'agent' && containers.includes(agentContainerName)) {
      problems.push(`SecretBinding ${name} lists container ${agentContainerName}, the name of the agent itself`);
      continue;
    }
    const volumeName = volumeNameOf(name);
    plans.push({ binding: name, volumeName, mountPath, containers, ...(mode === 'agent' ? { agent: agentBindingOf(binding, volumeName, containers) } : {}) });
  }
  return problems.length > 0 ? { ok: false, decision: deny(problems.join('; ')) } : { ok: true, value: plans };
}

function notSelectedBecause(binding: SecretBinding, pod: V1Pod): string | undefined {
  if (!matchesLabelSelector(binding.spec.podSelector, pod.metadata?.labels)) return 'its labels do not match the podSelector';
  const accounts = binding.spec.serviceAccountNames ?? [];
  const account = pod.spec?.serviceAccountName ?? 'default';
  if (accounts.length > 0 && !accounts.includes(account)) return `service account ${account} is not among serviceAccountNames (${accounts.join(', ')})`;
  return undefined;
}

/**
 * The pod as it should be: one CSI volume per binding (an existing volume of our driver for that
 * binding is reused), a read-only mount in each listed container (unless it already mounts the
 * volume), and the injected marker. Refuses name and path collisions rather than guessing.
 */
export function buildDesiredPod(pod: V1Pod, plans: readonly InjectionPlan[], agent?: AgentSettings): Step<V1Pod> {
  const desired = structuredClone(pod);
  const spec = desired.spec ?? { containers: [] };
  desired.spec = spec;
  const volumes: V1Volume[] = [...(spec.volumes ?? [])];
  const problems: string[] = [];
  for (const p of plans) {
    let volumeName = p.volumeName;
    const existing = volumes.find((v) => v.csi?.driver === driverName && v.csi.volumeAttributes?.['binding'] === p.binding);
    if (p.agent !== undefined) {
      if (existing !== undefined || volumes.some((v) => v.name === p.volumeName)) {
        problems.push(`volume ${existing?.name ?? p.volumeName} already exists; binding ${p.binding} is delivered by the agent, which adds its own memory volume`);
        continue;
      }
      volumes.push(agentVolume(p.agent));
    } else if (existing !== undefined) volumeName = existing.name;
    else if (volumes.some((v) => v.name === p.volumeName)) {
      problems.push(`volume ${p.volumeName} already exists and is not the volume of binding ${p.binding}`);
      continue;
    } else {
      volumes.push({ name: p.volumeName, csi: { driver: driverName, readOnly: true, volumeAttributes: { binding: p.binding } } });
    }
    for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
      if (!p.containers.includes(container.name)) continue;
      const mounts: V1VolumeMount[] = container.volumeMounts ?? [];
      if (mounts.some((m) => m.name === volumeName)) continue;
      const clash = mounts.find((m) => m.mountPath === p.mountPath);
      if (clash !== undefined) {
        problems.push(`container ${container.name} already mounts volume ${clash.name} at ${p.mountPath} (binding ${p.binding})`);
        continue;
      }
      container.volumeMounts = [...mounts, { name: volumeName, mountPath: p.mountPath, readOnly: true }];
    }
  }
  const agentPlans = plans.filter((p) => p.agent !== undefined);
  if (agentPlans.length > 0 && agent !== undefined) {
    if ([...spec.containers, ...(spec.initContainers ?? [])].some((c) => c.name === agentContainerName) || volumes.some((v) => v.name === agentTokenVolumeName)) {
      problems.push(`the pod already has a container ${agentContainerName} or a volume ${agentTokenVolumeName}, names the agent needs`);
    } else {
      volumes.push(agentTokenVolume());
      const listed = new Set(agentPlans.flatMap((p) => p.containers));
      const bindings = agentPlans.flatMap((p) => (p.agent === undefined ? [] : [p.agent]));
      // First of the init containers: the files exist before any listed container starts.
      spec.initContainers = [agentContainer(pod, bindings, listed, agent), ...(spec.initContainers ?? [])];
    }
  }
  if (problems.length > 0) return { ok: false, decision: deny(problems.join('; ')) };
  spec.volumes = volumes;
  const metadata = desired.metadata ?? {};
  metadata.annotations = { ...metadata.annotations, [injectedAnnotation]: plans.map((p) => p.binding).join(',') };
  desired.metadata = metadata;
  return { ok: true, value: desired };
}

/** The JSON patch from the incoming pod to the desired one. */
export function diff(pod: V1Pod, desired: V1Pod): JsonPatchOperation[] {
  return fastJsonPatch.compare(pod as object, desired as object);
}

/** Regular, init and ephemeral containers (ephemeral ones only exist on updates). */
export function allContainers(pod: V1Pod): readonly Pick<V1Container, 'name' | 'volumeMounts'>[] {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? []), ...(pod.spec?.ephemeralContainers ?? [])];
}
