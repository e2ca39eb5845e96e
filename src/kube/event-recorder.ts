import type { CoreV1Api } from '@kubernetes/client-node';

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

/** Records core/v1 Events. Callers emit only on transitions, so there is no spam to aggregate. */
export interface EventRecorder {
  record(subject: EventSubject, event: EventRecord): Promise<void>;
}

export function createEventRecorder(core: CoreV1Api, component: string, instance: string, eventNamespaceFallback: string): EventRecorder {
  return {
    async record(subject, event) {
      const now = new Date();
      // Cluster-scoped subjects get their Events in the operator's namespace (kubectl shows them
      // with --field-selector involvedObject.name=...), as core controllers do with "default".
      const namespace = subject.namespace ?? eventNamespaceFallback;
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
    },
  };
}
