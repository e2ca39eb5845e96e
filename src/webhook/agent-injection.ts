import type { V1Container, V1Pod, V1Volume } from '@kubernetes/client-node';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import {
  agentContainerName,
  agentMountPath,
  agentTokenDir,
  agentTokenExpirationSeconds,
  agentTokenFile,
  agentTokenVolumeName,
} from '../broker/agent.protocol.ts';
import { brokerAudience } from '../broker/broker.protocol.ts';

/**
 * Agent mode in the mutating webhook (ADR 0250): the pieces an agent pod gets, as pure functions of
 * the pod, the bindings and the controller's agent settings. `mutate.ts` adds them to the desired
 * pod; the diff makes the patch.
 */

export type DeliveryMode = 'csi' | 'agent';

/** The controller's agent settings (flags `--agent-*`, chart `agent.*`). */
export interface AgentSettings {
  /** The project image; the agent runs its own entrypoint in it. */
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** The broker as pods reach it, e.g. `https://secret-binder-broker.secret-binder-system.svc:443`. */
  readonly brokerUrl: string;
  /** The PEM bundle that verifies the broker (public certificates), read when a pod is admitted. */
  readonly brokerCaPem: string | undefined;
  /** The sidecar's metrics and startup-probe port (pod IP). */
  readonly metricsPort: number;
  readonly resources: { readonly cpuRequest: string; readonly memoryRequest: string; readonly memoryLimit: string };
  /** How long the init agent retries an unreachable broker before it exits with the cause (then the kubelet's backoff). */
  readonly startTimeoutSeconds: number;
}

/** How the agent's Node runs (measured in ADR 0250). */
export const agentNodeOptions = '--max-semi-space-size=1 --jitless';

/** The binding's mode: its own, else the chart-wide default. */
export function deliveryModeOf(binding: SecretBinding, defaultMode: DeliveryMode): DeliveryMode {
  return binding.spec.delivery?.mode ?? defaultMode;
}

/** One binding delivered by the agent. */
export interface AgentBinding {
  readonly binding: string;
  readonly volumeName: string;
  readonly sizeLimit: string;
  /** The pod's containers that mount it (named in the agent's messages). */
  readonly containers: readonly string[];
  /** Refresh: the sidecar keeps the files current; otherwise fetched once. */
  readonly follow: boolean;
}

export function agentBindingOf(binding: SecretBinding, volumeName: string, containers: readonly string[]): AgentBinding {
  return {
    binding: binding.metadata.name ?? '',
    volumeName,
    containers,
    sizeLimit: binding.spec.delivery?.sizeLimit ?? '1Mi',
    follow: (binding.spec.rotation?.strategy ?? 'Refresh') === 'Refresh',
  };
}

/** The memory volume of one binding (never on disk; the kubelet evicts the pod past sizeLimit). */
export function agentVolume(b: AgentBinding): V1Volume {
  return { name: b.volumeName, emptyDir: { medium: 'Memory', sizeLimit: b.sizeLimit } };
}

/**
 * The pod's own token for the broker: projected into the agent container only, short-lived and
 * rotated by the kubelet. `automountServiceAccountToken` is left as the pod has it.
 */
export function agentTokenVolume(): V1Volume {
  return {
    name: agentTokenVolumeName,
    projected: { sources: [{ serviceAccountToken: { audience: brokerAudience, expirationSeconds: agentTokenExpirationSeconds, path: agentTokenFile } }] },
  };
}

/** The user the listed containers share, when all of them name the same one (else the pod's applies). */
function sharedRunAsUser(pod: V1Pod, listed: ReadonlySet<string>): number | undefined {
  const users = new Set([...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].filter((c) => listed.has(c.name)).map((c) => c.securityContext?.runAsUser));
  const [only] = [...users];
  return users.size === 1 ? only : undefined;
}

/**
 * The agent container: an init container that fetches once, or — when any binding follows changes
 * (Refresh) — a native sidecar (`restartPolicy: Always`) whose startup probe holds the app
 * containers back until every file set is written. Pod Security `restricted` in every field.
 */
export function agentContainer(pod: V1Pod, bindings: readonly AgentBinding[], listedContainers: ReadonlySet<string>, settings: AgentSettings): V1Container {
  const follow = bindings.some((b) => b.follow);
  const args = [
    '--broker-url', settings.brokerUrl,
    '--token-file', `${agentTokenDir}/${agentTokenFile}`,
    '--mode', follow ? 'follow' : 'once',
    '--start-timeout', `${String(settings.startTimeoutSeconds)}s`,
    ...(follow ? ['--metrics-port', String(settings.metricsPort)] : []),
    ...bindings.flatMap((b) => ['--binding', `${b.binding}=${b.containers.join(',')}${b.follow ? '' : ':once'}`]),
  ];
  const fsGroup = pod.spec?.securityContext?.fsGroup;
  if (fsGroup !== undefined) args.push('--gid', String(fsGroup));
  const runAsUser = sharedRunAsUser(pod, listedContainers);
  return {
    name: agentContainerName,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    command: ['node', '/app/dist/delivery/agent/agent.main.js'],
    args,
    env: [
      // Not the image's NODE_OPTIONS: no source maps (MiBs of RSS), no JIT (the agent waits on I/O).
      { name: 'NODE_OPTIONS', value: agentNodeOptions },
      ...(settings.brokerCaPem === undefined ? [] : [{ name: 'SECRETBINDER_BROKER_CA', value: settings.brokerCaPem }]),
    ],
    resources: { requests: { cpu: settings.resources.cpuRequest, memory: settings.resources.memoryRequest }, limits: { memory: settings.resources.memoryLimit } },
    securityContext: {
      runAsNonRoot: true,
      ...(runAsUser === undefined ? {} : { runAsUser }),
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'File',
    volumeMounts: [
      { name: agentTokenVolumeName, mountPath: agentTokenDir, readOnly: true },
      ...bindings.map((b) => ({ name: b.volumeName, mountPath: agentMountPath(b.binding) })),
    ],
    ...(follow
      ? {
          restartPolicy: 'Always',
          ports: [{ name: 'sb-agent', containerPort: settings.metricsPort, protocol: 'TCP' }],
          startupProbe: { httpGet: { path: '/readyz', port: settings.metricsPort }, periodSeconds: 1, failureThreshold: 600, timeoutSeconds: 2 },
        }
      : {}),
  };
}
