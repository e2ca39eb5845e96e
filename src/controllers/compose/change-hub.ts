import { ChangeHub } from '../../broker/change-hub.ts';
import { specChanged, type OperatorInformers } from './informers.ts';

/**
 * Keeps the change hub in step with the caches on every replica: hashes from binding status, and
 * touches that make waiters re-check entitlement when a binding's spec or a pod changes.
 */
export function syncChangeHub({ bindings, pods }: OperatorInformers, hub: ChangeHub): void {
  bindings.addHandler({
    // The leader writes the content HMAC to status: how replicas that do not reconcile learn it.
    add: (b) => {
      if (b.status?.contentHmac !== undefined && hub.current(b.metadata.namespace ?? '', b.metadata.name ?? '') === undefined) {
        hub.set(b.metadata.namespace ?? '', b.metadata.name ?? '', { kind: 'hash', hash: b.status.contentHmac });
      }
    },
    update: (old, b) => {
      const ns = b.metadata.namespace ?? '';
      const name = b.metadata.name ?? '';
      if (b.status?.contentHmac !== undefined && b.status.contentHmac !== old.status?.contentHmac) hub.set(ns, name, { kind: 'hash', hash: b.status.contentHmac });
      // Selector, service accounts or containers may have changed: waiters re-check entitlement.
      if (specChanged(old, b)) hub.touch(ChangeHub.bindingKey(ns, name));
    },
    delete: (b) => {
      hub.forget(b.metadata.namespace ?? '', b.metadata.name ?? '');
    },
  });
  pods.addHandler({
    update: (_old, p) => {
      hub.touch(ChangeHub.podKey(p.metadata?.namespace ?? '', p.metadata?.name ?? ''));
    },
    delete: (p) => {
      hub.touch(ChangeHub.podKey(p.metadata?.namespace ?? '', p.metadata?.name ?? ''));
    },
  });
}
