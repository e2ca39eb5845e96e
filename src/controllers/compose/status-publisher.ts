import { createEventRecorder } from '../../kube/event-recorder.ts';
import { describeKubeError } from '../../kube/kube-errors.ts';
import type { StatusPublisher } from '../status-sync.ts';
import type { OperatorContext } from './context.ts';

/** Status writes and Events of every controller; an Event that cannot be recorded is only logged. */
export function createStatusPublisher({ config, clients, logger }: OperatorContext): StatusPublisher {
  return {
    custom: clients.custom,
    events: createEventRecorder(clients.core, 'secret-binder-controller', config.identity, (error, subject) => {
      logger.warn('could not record an Event', { kind: subject.kind, name: subject.name, namespace: subject.namespace, error: describeKubeError(error).message });
    }),
  };
}
