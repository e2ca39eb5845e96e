import { createHash } from 'node:crypto';
import type { AuthenticationV1Api } from '@kubernetes/client-node';

/**
 * Who a bearer token belongs to, as the API server says (TokenReview). The broker trusts nothing
 * else about a caller: expiry, signature, audience and — for tokens bound to a pod — the pod's
 * continued existence are all checked by the API server.
 */
export type TokenIdentity =
  | { readonly authenticated: false; readonly error: string }
  | {
      readonly authenticated: true;
      readonly username: string;
      readonly extra: Readonly<Record<string, readonly string[]>>;
    };

/** The port the broker authenticates with; the Kubernetes implementation is {@link KubeTokenReviewer}. */
export interface TokenReviewer {
  /** Reviews `token`, requiring one of `audiences`. Throws only when the API server cannot answer. */
  review(token: string, audiences: readonly string[]): Promise<TokenIdentity>;
}

/** Extras the API server adds to tokens bound to a pod (and, since 1.30, to the pod's node). */
export const extraKeys = {
  podName: 'authentication.kubernetes.io/pod-name',
  podUid: 'authentication.kubernetes.io/pod-uid',
  nodeName: 'authentication.kubernetes.io/node-name',
} as const;

export class KubeTokenReviewer implements TokenReviewer {
  readonly #auth: AuthenticationV1Api;

  constructor(auth: AuthenticationV1Api) {
    this.#auth = auth;
  }

  async review(token: string, audiences: readonly string[]): Promise<TokenIdentity> {
    const review = await this.#auth.createTokenReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [...audiences] } },
    });
    const status = review.status;
    if (status?.authenticated !== true || status.user?.username === undefined) {
      // The API server's error text names the failure (expired, wrong audience, pod gone), never the token.
      return { authenticated: false, error: status?.error ?? 'token not authenticated' };
    }
    // An empty audience list in the answer means the API server's own audiences: not ours.
    if (!(status.audiences ?? []).some((a) => audiences.includes(a))) return { authenticated: false, error: 'token audience not accepted' };
    return { authenticated: true, username: status.user.username, extra: status.user.extra ?? {} };
  }
}

/** The single value of an extra, or undefined when absent or ambiguous. */
export function singleExtra(identity: Extract<TokenIdentity, { authenticated: true }>, key: string): string | undefined {
  const values = identity.extra[key];
  return values?.length === 1 ? values[0] : undefined;
}

/** `system:serviceaccount:<namespace>:<name>` → its parts. */
export function serviceAccountOf(username: string): { readonly namespace: string; readonly name: string } | undefined {
  const parts = username.split(':');
  if (parts.length !== 4 || parts[0] !== 'system' || parts[1] !== 'serviceaccount') return undefined;
  const [, , namespace, name] = parts;
  if (namespace === undefined || name === undefined || namespace === '' || name === '') return undefined;
  return { namespace, name };
}

/**
 * Remembers successful reviews for a few seconds, keyed by a SHA-256 of token and audiences (the
 * token itself is not kept). For the node plugin's own token, which it presents on every call:
 * one TokenReview per node per `ttlMs` instead of one per volume. Refusals are never cached. A
 * revoked caller token stays accepted for at most `ttlMs`; pod tokens are not cached at all.
 */
export class CachingTokenReviewer implements TokenReviewer {
  readonly #inner: TokenReviewer;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { readonly identity: TokenIdentity; readonly until: number }>();

  constructor(inner: TokenReviewer, options: { ttlMs: number; maxEntries?: number; now?: () => number }) {
    this.#inner = inner;
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries ?? 1_000;
    this.#now = options.now ?? Date.now;
  }

  /** Entries held (tests check the bound). */
  get size(): number {
    return this.#entries.size;
  }

  async review(token: string, audiences: readonly string[]): Promise<TokenIdentity> {
    const key = createHash('sha256').update(token).update('\u0000').update(audiences.join('\u0000')).digest('hex');
    const now = this.#now();
    const hit = this.#entries.get(key);
    if (hit !== undefined && hit.until > now) return hit.identity;
    this.#entries.delete(key);
    const identity = await this.#inner.review(token, audiences);
    if (identity.authenticated) {
      if (this.#entries.size >= this.#maxEntries) {
        for (const [k, entry] of this.#entries) if (entry.until <= now) this.#entries.delete(k);
        // Still full: drop the oldest insertion.
        if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value ?? '');
      }
      this.#entries.set(key, { identity, until: now + this.#ttlMs });
    }
    return identity;
  }
}
