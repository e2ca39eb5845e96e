import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { AuditLog } from '../observability/audit.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import type { ChangesAnswer, ChangesRequest } from './broker.protocol.ts';
import type { CallerNode } from './broker.identity.ts';
import { ChangeHub } from './change-hub.ts';
import { entitlement, type Entitlement } from './entitlement.ts';

type ChangedVolume = ChangesAnswer['changed'][number];
/** A volume a node (or an agent) holds, with the hash it holds. */
export type WatchedVolume = ChangesRequest['volumes'][number];

export interface BrokerChangesDeps {
  readonly hub: ChangeHub;
  readonly bindings: CacheReader<SecretBinding>;
  readonly pods: CacheReader<V1Pod>;
  readonly podsSynced: (namespace: string) => boolean;
  readonly audit: AuditLog;
  /** Long polls waiting now. */
  readonly waiting: { inc(labels: object): void; dec(labels: object): void };
}

/**
 * The change stream's decisions: which of a caller's volumes changed or lost access, now or as
 * soon as one of their keys is touched (the long poll of `/v1/changes` and `/v1/agent/changes`).
 */
export class BrokerChanges {
  readonly #deps: BrokerChangesDeps;

  constructor(deps: BrokerChangesDeps) {
    this.#deps = deps;
  }

  /** Evaluates the volumes now; if nothing changed, waits for a touch of their keys or the deadline. */
  async waitForChanges(
    volumes: readonly WatchedVolume[],
    caller: CallerNode,
    waitMs: number,
    signal: AbortSignal,
    entitle: (binding: SecretBinding, pod: V1Pod) => Entitlement = entitlement,
  ): Promise<ChangedVolume[]> {
    // What the node holds now: the binding status counts consumers still on an older hash.
    for (const v of volumes) this.#deps.hub.held(v.namespace, v.binding, v.pod.uid, v.contentHash);
    const first = this.#evaluate(volumes, caller, entitle);
    if (first.length > 0 || waitMs === 0 || volumes.length === 0) return first;
    const keys = volumes.flatMap((v) => [ChangeHub.bindingKey(v.namespace, v.binding), ChangeHub.podKey(v.namespace, v.pod.name)]);
    this.#deps.waiting.inc({});
    try {
      return await new Promise<ChangedVolume[]>((resolve) => {
        const finish = (answer: ChangedVolume[]): void => {
          clearTimeout(timer);
          unsubscribe();
          signal.removeEventListener('abort', onAbort);
          resolve(answer);
        };
        const onAbort = (): void => {
          finish([]);
        };
        const timer = setTimeout(() => {
          finish([]);
        }, waitMs);
        const unsubscribe = this.#deps.hub.subscribe(keys, () => {
          const now = this.#evaluate(volumes, caller, entitle);
          if (now.length > 0) finish(now);
        });
        signal.addEventListener('abort', onAbort, { once: true });
        if (signal.aborted) onAbort();
      });
    } finally {
      this.#deps.waiting.dec({});
    }
  }

  /**
   * Which volumes changed: content hash moved, or access ended (binding gone or refusing the
   * namespace, pod gone, replaced, moved off the node or no longer entitled → revoked). Reads
   * caches only; where a namespace's pod cache has not listed, pod checks wait for it rather
   * than revoke on a guess. Only hashes of volumes the caller's node may hold are answered.
   */
  #evaluate(volumes: readonly WatchedVolume[], caller: CallerNode, entitle: (binding: SecretBinding, pod: V1Pod) => Entitlement): ChangedVolume[] {
    const changed: ChangedVolume[] = [];
    for (const v of volumes) {
      const revoke = (reason: string): void => {
        changed.push({ volumeId: v.volumeId, contentHash: null, revoked: true });
        this.#deps.audit.revoked({
          reason,
          binding: { namespace: v.namespace, name: v.binding },
          pod: { namespace: v.namespace, name: v.pod.name, uid: v.pod.uid },
          node: caller.node,
        });
      };
      const binding = this.#deps.bindings.get(`${v.namespace}/${v.binding}`);
      if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) {
        revoke('NotEntitled');
        continue;
      }
      if (this.#deps.podsSynced(v.namespace)) {
        const pod = this.#deps.pods.get(`${v.namespace}/${v.pod.name}`);
        if (pod?.metadata?.uid !== v.pod.uid || pod.spec?.nodeName !== caller.node) {
          revoke('IdentityMismatch');
          continue;
        }
        if (!entitle(binding, pod).entitled) {
          revoke('NotEntitled');
          continue;
        }
      }
      const current = this.#deps.hub.current(v.namespace, v.binding);
      if (current?.kind === 'revoked') {
        revoke(current.reason);
        continue;
      }
      // A dynamic binding's volumes each hold their own credential (unknown here after a restart: no change).
      const hash = binding.spec.dynamic !== undefined || binding.spec.pki !== undefined ? this.#deps.hub.expected(v.namespace, v.binding, v.pod.uid) : (current?.hash ?? binding.status?.contentHmac);
      if (hash !== undefined && hash !== v.contentHash) changed.push({ volumeId: v.volumeId, contentHash: hash, revoked: false });
    }
    return changed;
  }
}
