import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import type { EventRecord, EventRecorder, EventSubject } from '../../kube/event-recorder.ts';
import type { InformerHandlers } from '../../runtime/informer.ts';
import { agentPodEvents } from './agent-pod-events.ts';

/** A failed agent's termination message becomes one Warning Event per pod and distinct message, on the leader only. */

function pod(restarts: number, message: string | undefined, exitCode = 1): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'apps', uid: 'u1' },
    status: {
      initContainerStatuses: [
        { name: 'secretbinder-agent', image: 'i', imageID: '', ready: false, restartCount: restarts, lastState: { terminated: { exitCode, ...(message === undefined ? {} : { message }) } } },
      ],
    },
  };
}

function setup(): { update: (p: V1Pod) => void; recorded: EventRecord[]; runnable: ReturnType<typeof agentPodEvents> } {
  let handlers: InformerHandlers<V1Pod> = {};
  const recorded: EventRecord[] = [];
  const events: EventRecorder = {
    record: (_subject: EventSubject, event: EventRecord) => {
      recorded.push(event);
      return Promise.resolve();
    },
  };
  const runnable = agentPodEvents({ pods: { addHandler: (h) => { handlers = h; return () => undefined; }, list: () => [] }, events });
  return { update: (p) => handlers.update?.(p, p), recorded, runnable };
}

describe('agent pod events', () => {
  it('records AgentFailed with the termination message once per distinct message, only while leading', async () => {
    const { update, recorded, runnable } = setup();
    update(pod(1, 'binding db (for container app) was refused'));
    expect(recorded).toEqual([]);
    const stop = new AbortController();
    const running = runnable.start(stop.signal);
    update(pod(1, 'binding db (for container app) was refused'));
    update(pod(2, 'binding db (for container app) was refused'));
    update(pod(3, 'binding db (for container app) not fetched within 60 s: unreachable'));
    update(pod(4, undefined, 0));
    expect(recorded).toEqual([
      { type: 'Warning', reason: 'AgentFailed', message: 'binding db (for container app) was refused' },
      { type: 'Warning', reason: 'AgentFailed', message: 'binding db (for container app) not fetched within 60 s: unreachable' },
    ]);
    stop.abort();
    await running;
  });
});
