import type { V1Pod } from '@kubernetes/client-node';
import { agentContainerName } from '../../broker/agent.protocol.ts';
import type { EventRecorder } from '../../kube/event-recorder.ts';
import type { InformerHandlers } from '../../runtime/informer.ts';
import type { Runnable } from '../../runtime/runnable.ts';

/**
 * The agent cannot write Events (it has no Kubernetes API access), so the controller's leader
 * reads what a failed agent left in its container status — the termination message, which names
 * the binding, the container and the cause (broker unreachable, refused) and never a value — and
 * records it as a Warning Event `AgentFailed` on the pod (ADR 0250). One Event per pod and
 * distinct message: a crash-looping agent does not spam (invariant 5).
 */
export function agentFailureMessage(pod: V1Pod): string | undefined {
  const status = pod.status?.initContainerStatuses?.find((s) => s.name === agentContainerName);
  const terminated = status?.state?.terminated ?? status?.lastState?.terminated;
  if (terminated === undefined || terminated.exitCode === 0) return undefined;
  const message = terminated.message?.trim() ?? '';
  return message === '' ? `the ${agentContainerName} container exited with code ${String(terminated.exitCode)}` : message;
}

export interface AgentPodEventsDeps {
  readonly pods: { addHandler(handlers: InformerHandlers<V1Pod>): () => void; list(): V1Pod[] };
  readonly events: EventRecorder;
}

export function agentPodEvents(deps: AgentPodEventsDeps): Runnable {
  let leading = false;
  const reported = new Map<string, string>();
  const check = (pod: V1Pod): void => {
    if (!leading) return;
    const uid = pod.metadata?.uid ?? '';
    const message = agentFailureMessage(pod);
    if (message === undefined || reported.get(uid) === message) return;
    reported.set(uid, message);
    void deps.events.record(
      { apiVersion: 'v1', kind: 'Pod', namespace: pod.metadata?.namespace, name: pod.metadata?.name ?? '', uid },
      { type: 'Warning', reason: 'AgentFailed', message },
    );
  };
  deps.pods.addHandler({
    add: check,
    update: (_old, pod) => { check(pod); },
    delete: (pod) => { reported.delete(pod.metadata?.uid ?? ''); },
  });
  return {
    name: 'agent-pod-events',
    needLeaderElection: true,
    start: async (signal) => {
      leading = true;
      for (const pod of deps.pods.list()) check(pod);
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener('abort', () => { resolve(); }, { once: true });
      });
      leading = false;
    },
  };
}
