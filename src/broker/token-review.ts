import { createHash } from 'node:crypto';
import type { AuthApi } from '../kube/kube-clients.ts';

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
  readonly #auth: AuthApi;

  constructor(auth: AuthApi) {
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
 * Successful reviews remembered for a while, keyed by a SHA-256 of token and audiences (the token
 * itself is not kept). An entry lives at most `ttlMs` and never past the token's own `exp` claim
 * (read without verification: it can only shorten the stay). Refusals are never stored. Bounded
 * by `maxEntries`; entries of a pod (by the pod-uid extra) can be dropped at once.
 */
export class TokenReviewCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { readonly identity: TokenIdentity; readonly until: number; readonly podUid: string | undefined }>();

  constructor(options: { ttlMs: number; maxEntries?: number; now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries ?? 1_000;
    this.#now = options.now ?? Date.now;
  }

  /** Entries held (tests check the bound). */
  get size(): number {
    return this.#entries.size;
  }

  lookup(token: string, audiences: readonly string[]): TokenIdentity | undefined {
    const key = cacheKey(token, audiences);
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    if (hit.until > this.#now()) return hit.identity;
    this.#entries.delete(key);
    return undefined;
  }

  remember(token: string, audiences: readonly string[], identity: TokenIdentity): void {
    if (!identity.authenticated) return;
    const now = this.#now();
    const until = Math.min(now + this.#ttlMs, expiryMs(token) ?? Number.POSITIVE_INFINITY);
    if (until <= now) return;
    if (this.#entries.size >= this.#maxEntries) {
      for (const [k, entry] of this.#entries) if (entry.until <= now) this.#entries.delete(k);
      // Still full: drop the oldest insertion.
      if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value ?? '');
    }
    this.#entries.set(cacheKey(token, audiences), { identity, until, podUid: singleExtra(identity, extraKeys.podUid) });
  }

  forget(token: string, audiences: readonly string[]): void {
    this.#entries.delete(cacheKey(token, audiences));
  }

  /** Drops every entry of tokens bound to the pod `uid` (the pod is gone). */
  forgetPod(uid: string): void {
    for (const [k, entry] of this.#entries) if (entry.podUid === uid) this.#entries.delete(k);
  }
}

/**
 * A {@link TokenReviewer} that answers from a {@link TokenReviewCache} while it can. For the node
 * plugin's own token, which it presents on every call: one TokenReview per node per `ttlMs`
 * instead of one per volume. A revoked caller token stays accepted for at most `ttlMs`.
 */
export class CachingTokenReviewer implements TokenReviewer {
  readonly #inner: TokenReviewer;
  readonly #cache: TokenReviewCache;

  constructor(inner: TokenReviewer, options: ConstructorParameters<typeof TokenReviewCache>[0]) {
    this.#inner = inner;
    this.#cache = new TokenReviewCache(options);
  }

  /** Entries held (tests check the bound). */
  get size(): number {
    return this.#cache.size;
  }

  async review(token: string, audiences: readonly string[]): Promise<TokenIdentity> {
    const hit = this.#cache.lookup(token, audiences);
    if (hit !== undefined) return hit;
    const identity = await this.#inner.review(token, audiences);
    this.#cache.remember(token, audiences, identity);
    return identity;
  }
}

function cacheKey(token: string, audiences: readonly string[]): string {
  return createHash('sha256').update(token).update('\u0000').update(audiences.join('\u0000')).digest('hex');
}

/** The `exp` claim of a JWT in ms, unverified; undefined when the token is not a JWT with one. */
function expiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
