import type { V1Pod } from '@kubernetes/client-node';
import type { DeniedEvent } from '../observability/audit.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import { brokerAudience } from './broker.protocol.ts';
import { Denial } from './broker.denial.ts';
import { extraKeys, serviceAccountOf, singleExtra, type TokenIdentity, type TokenReviewCache, type TokenReviewer } from './token-review.ts';

/** The node whose plugin calls, and the caller's account. */
export type CallerNode = { readonly caller: string; readonly node: string };

/** The pod a CSI publish names (the node plugin asks on its behalf). */
export interface AskedPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly serviceAccountName: string;
}

export interface BrokerIdentityDeps {
  /** Reviews tokens with the API server. */
  readonly tokens: TokenReviewer;
  /**
   * Pod-token reviews remembered for a short while (ADR 0130): a hit still has to match a live pod
   * with the token's uid on the caller's node, and anything short of a delivery is decided again
   * by a fresh TokenReview. Without it every publish reviews the pod token.
   */
  readonly podTokens?: TokenReviewCache;
  /** Reviews the node plugin's own token; may cache successes briefly. Defaults to `tokens`. */
  readonly callerTokens?: TokenReviewer;
  /** The node plugin's service account: the only caller of the node-scoped endpoints. */
  readonly nodePlugin: { readonly namespace: string; readonly name: string };
  /** The pod cache (only namespaces that have bindings). */
  readonly pods: CacheReader<V1Pod>;
  /** A direct GET of one pod; undefined when it does not exist. */
  readonly readPod: (namespace: string, name: string) => Promise<V1Pod | undefined>;
}

/**
 * Who is asking the broker: the node plugin (its own token, bound to its pod on a node), the pod a
 * volume is for (a token bound to it, whose name and uid match a live pod on that node), or an
 * agent's pod (its own token). Every method throws a {@link Denial} when the proof fails; a
 * remembered review is used only while it still proves the pod (ADR 0130).
 */
export class BrokerIdentity {
  readonly #deps: BrokerIdentityDeps;

  constructor(deps: BrokerIdentityDeps) {
    this.#deps = deps;
  }

  /**
   * The pod an agent's bearer token is bound to, live (cache, else one GET), with the token's
   * account. A remembered review is used only while it still names a live pod (ADR 0130).
   */
  async agentPod(authorization: string | undefined, context: Omit<DeniedEvent, 'reason'>): Promise<{ pod: V1Pod; caller: CallerNode }> {
    const match = /^Bearer ([^\s]+)$/.exec(authorization ?? '');
    if (match?.[1] === undefined) throw new Denial(401, 'Unauthenticated', 'missing bearer token (the pod\'s projected secretbinder.dev token)');
    const token = match[1];
    const cache = this.#deps.podTokens;
    const remembered = cache?.lookup(token, [brokerAudience]);
    if (remembered !== undefined) {
      const proven = await this.#agentPodOf(remembered, context).catch((error: unknown) => {
        if (error instanceof Denial) return undefined;
        throw error;
      });
      if (proven !== undefined) return proven;
      // A refusal never rests on a remembered review (ADR 0130): the API server decides again.
      cache?.forget(token, [brokerAudience]);
    }
    const identity = await this.#deps.tokens.review(token, [brokerAudience]);
    const proven = await this.#agentPodOf(identity, context);
    cache?.remember(token, [brokerAudience], identity);
    return proven;
  }

  async #agentPodOf(identity: TokenIdentity, context: Omit<DeniedEvent, 'reason'>): Promise<{ pod: V1Pod; caller: CallerNode }> {
    if (!identity.authenticated) throw new Denial(401, 'Unauthenticated', `pod token refused: ${identity.error}`);
    const account = serviceAccountOf(identity.username);
    const podName = singleExtra(identity, extraKeys.podName);
    const podUid = singleExtra(identity, extraKeys.podUid);
    if (account === undefined || podName === undefined || podUid === undefined) throw new Denial(401, 'Unauthenticated', 'the token is not bound to a pod');
    Object.assign(context, { caller: identity.username, pod: { namespace: account.namespace, name: podName, uid: podUid } });
    const pod = await this.#livePod(account.namespace, podName, podUid);
    if (pod === undefined || (pod.spec?.serviceAccountName ?? 'default') !== account.name) {
      throw new Denial(403, 'IdentityMismatch', `no live pod ${account.namespace}/${podName} with uid ${podUid}`);
    }
    const node = pod.spec?.nodeName ?? '';
    Object.assign(context, { node });
    return { pod, caller: { caller: identity.username, node } };
  }

  /** The caller must be the node plugin, with a token bound to its own pod on a node. */
  async callerNode(authorization: string | undefined): Promise<CallerNode> {
    const match = /^Bearer ([^\s]+)$/.exec(authorization ?? '');
    if (match?.[1] === undefined) throw new Denial(401, 'Unauthenticated', 'missing bearer token');
    const identity = await (this.#deps.callerTokens ?? this.#deps.tokens).review(match[1], [brokerAudience]);
    if (!identity.authenticated) throw new Denial(401, 'Unauthenticated', `caller token refused: ${identity.error}`);
    const account = serviceAccountOf(identity.username);
    const { nodePlugin } = this.#deps;
    if (account?.namespace !== nodePlugin.namespace || account.name !== nodePlugin.name) {
      throw new Denial(403, 'Unauthenticated', `caller ${identity.username} is not the node plugin`);
    }
    const node = singleExtra(identity, extraKeys.nodeName);
    if (node === undefined) throw new Denial(403, 'Unauthenticated', 'caller token is not bound to a pod on a node');
    return { caller: identity.username, node };
  }

  /**
   * Proves the pod: its token, its name + uid, its existence and its node. Returns the live pod. A
   * remembered review that no longer proves the pod is forgotten and the token reviewed again, so
   * a refusal never rests on a remembered review (ADR 0130).
   */
  async provePod(podToken: string, asked: AskedPod, node: string): Promise<V1Pod> {
    const cache = this.#deps.podTokens;
    const remembered = cache?.lookup(podToken, [brokerAudience]);
    if (remembered !== undefined) {
      const pod = await this.#matchPod(remembered, asked, node).catch((error: unknown) => {
        if (error instanceof Denial) return undefined;
        throw error;
      });
      if (pod !== undefined) return pod;
      cache?.forget(podToken, [brokerAudience]);
    }
    const identity = await this.#deps.tokens.review(podToken, [brokerAudience]);
    const pod = await this.#matchPod(identity, asked, node);
    cache?.remember(podToken, [brokerAudience], identity);
    return pod;
  }

  /** The live pod the reviewed token is bound to, if it is the asked one and on the caller's node. */
  async #matchPod(identity: TokenIdentity, asked: AskedPod, node: string): Promise<V1Pod> {
    if (!identity.authenticated) throw new Denial(401, 'Unauthenticated', `pod token refused: ${identity.error}`);
    const account = serviceAccountOf(identity.username);
    const podName = singleExtra(identity, extraKeys.podName);
    const podUid = singleExtra(identity, extraKeys.podUid);
    if (podName === undefined || podUid === undefined) throw new Denial(401, 'Unauthenticated', 'pod token is not bound to a pod');
    if (account?.namespace !== asked.namespace || account.name !== asked.serviceAccountName || podName !== asked.name || podUid !== asked.uid) {
      throw new Denial(403, 'IdentityMismatch', 'the pod token belongs to another pod');
    }
    const pod = await this.#livePod(asked.namespace, asked.name, asked.uid);
    if (pod === undefined) throw new Denial(403, 'IdentityMismatch', `no live pod ${asked.namespace}/${asked.name} with uid ${asked.uid}`);
    if (pod.spec?.nodeName !== node) throw new Denial(403, 'IdentityMismatch', `pod is not on the caller's node ${node}`);
    return pod;
  }

  /** The pod from the cache when it holds this uid, else one direct GET (never a list). */
  async #livePod(namespace: string, podName: string, uid: string): Promise<V1Pod | undefined> {
    const cached = this.#deps.pods.get(`${namespace}/${podName}`);
    if (cached?.metadata?.uid === uid) return cached;
    const read = await this.#deps.readPod(namespace, podName);
    return read?.metadata?.uid === uid ? read : undefined;
  }
}
