import type { CoreApi } from './kube-clients.ts';

/** The object an Event is about. */
export interface EventSubject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string | undefined;
  readonly name: string;
  readonly uid: string | undefined;
}

export interface EventRecord {
  readonly type: 'Normal' | 'Warning';
  /** From the closed list of reasons in `src/api/v1alpha1/conditions.ts`. */
  readonly reason: string;
  /** Human-readable; never a secret value (keys, paths, versions and HMACs only). */
  readonly message: string;
}

/**
 * Records core/v1 Events. Callers emit only on transitions, so there is no spam to aggregate.
 * Best effort: an Event that cannot be written is reported to `onError` and never fails the
 * reconcile that produced it (the status already says the same).
 */
export interface EventRecorder {
  record(subject: EventSubject, event: EventRecord): Promise<void>;
}

/** The API server accepts Events about cluster-scoped objects only in `default`, as core controllers write them. */
const clusterScopedEventNamespace = 'default';

export function createEventRecorder(
  core: CoreApi,
  component: string,
  instance: string,
  onError: (error: unknown, subject: EventSubject) => void,
): EventRecorder {
  const write = async (subject: EventSubject, event: EventRecord): Promise<void> => {
    const now = new Date();
    const namespace = subject.namespace ?? clusterScopedEventNamespace;
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${subject.name}.`, namespace },
        involvedObject: {
          apiVersion: subject.apiVersion,
          kind: subject.kind,
          name: subject.name,
          namespace: subject.namespace,
          uid: subject.uid,
        },
        type: event.type,
        reason: event.reason,
        message: event.message.slice(0, 1024),
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component },
        reportingComponent: component,
        reportingInstance: instance,
        action: event.reason,
      },
    });
  };
  return {
    async record(subject, event) {
      try {
        await write(subject, event);
      } catch (error) {
        onError(error, subject);
      }
    },
  };
}
