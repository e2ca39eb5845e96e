import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { BindingContentResolver, type BindingContent, type ResolveOptions } from '../controllers/binding/binding-content.ts';

/** What the broker knows of a binding's current content. */
export type CurrentContent =
  | { readonly kind: 'hash'; readonly hash: string }
  /** The binding no longer admits its namespace (access rules changed): volumes are emptied. */
  | { readonly kind: 'revoked'; readonly reason: string };

/**
 * The in-memory "current content hash per binding" that drives the change stream, and the
 * wake-up channel of its long polls. Keys are `binding:<ns>/<name>` and `pod:<ns>/<name>`;
 * waiters subscribe to the keys of their request and re-evaluate when one is touched, so no
 * request polls. Fed by every content resolution (the binding reconciler on the leader, the
 * broker's own publishes) and by informer events (status written by the leader, deletions,
 * pod changes) on every replica.
 */
export class ChangeHub {
  readonly #current = new Map<string, CurrentContent>();
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Per binding key: the content hash each consuming pod (by uid) was last known to hold. */
  readonly #held = new Map<string, Map<string, string>>();
  /** Per dynamic binding key: the hash each pod's volume should hold (its own credential, issue 21). */
  readonly #expected = new Map<string, Map<string, string>>();

  static bindingKey(namespace: string, name: string): string {
    return `binding:${namespace}/${name}`;
  }

  static podKey(namespace: string, name: string): string {
    return `pod:${namespace}/${name}`;
  }

  current(namespace: string, name: string): CurrentContent | undefined {
    return this.#current.get(ChangeHub.bindingKey(namespace, name));
  }

  /** Records a binding's content; wakes its waiters only when it changed. */
  set(namespace: string, name: string, content: CurrentContent): void {
    const key = ChangeHub.bindingKey(namespace, name);
    const before = this.#current.get(key);
    if (before !== undefined && before.kind === content.kind && (content.kind === 'hash' ? before.kind === 'hash' && before.hash === content.hash : true)) return;
    this.#current.set(key, content);
    this.touch(key);
  }

  /** Records the outcome of a resolution. Failures other than an access denial keep the last hash (invariant 7). */
  record(binding: SecretBinding, content: BindingContent): void {
    const namespace = binding.metadata.namespace ?? '';
    const name = binding.metadata.name ?? '';
    if (content.kind === 'resolved') this.set(namespace, name, { kind: 'hash', hash: content.hmac });
    else if (content.reason === 'AccessDenied') this.set(namespace, name, { kind: 'revoked', reason: content.reason });
  }

  /** Records the hash a pod's volume of the binding holds: a delivery, or what its node reports in a change poll. */
  held(namespace: string, name: string, podUid: string, hash: string): void {
    const key = ChangeHub.bindingKey(namespace, name);
    let pods = this.#held.get(key);
    if (pods === undefined) {
      pods = new Map();
      this.#held.set(key, pods);
    }
    pods.set(podUid, hash);
  }

  /** The hash a pod's volume of the binding was last known to hold. */
  heldBy(namespace: string, name: string, podUid: string): string | undefined {
    return this.#held.get(ChangeHub.bindingKey(namespace, name))?.get(podUid);
  }

  /**
   * Records the hash a pod's volume of a dynamic binding should hold (each pod may hold its own
   * credential, so one hash per binding does not fit); wakes the pod's waiters when it moved.
   */
  expect(namespace: string, name: string, pod: { readonly name: string; readonly uid: string }, hash: string): void {
    const key = ChangeHub.bindingKey(namespace, name);
    let pods = this.#expected.get(key);
    if (pods === undefined) {
      pods = new Map();
      this.#expected.set(key, pods);
    }
    if (pods.get(pod.uid) === hash) return;
    pods.set(pod.uid, hash);
    this.touch(ChangeHub.podKey(namespace, pod.name));
  }

  /** The hash a pod's volume of a dynamic binding should hold; undefined when this replica does not know. */
  expected(namespace: string, name: string, podUid: string): string | undefined {
    return this.#expected.get(ChangeHub.bindingKey(namespace, name))?.get(podUid);
  }

  /**
   * How many of the binding's consuming pods (`podUids`) are known to hold another hash than
   * `current` (pods this replica never served are not counted). Forgets pods that no longer consume.
   */
  staleConsumers(namespace: string, name: string, podUids: readonly string[], current: string): number {
    const pods = this.#held.get(ChangeHub.bindingKey(namespace, name));
    if (pods === undefined) return 0;
    const consuming = new Set(podUids);
    const expected = this.#expected.get(ChangeHub.bindingKey(namespace, name));
    for (const uid of expected?.keys() ?? []) if (!consuming.has(uid)) expected?.delete(uid);
    let stale = 0;
    for (const [uid, hash] of pods) {
      if (!consuming.has(uid)) pods.delete(uid);
      else if (hash !== current) stale++;
    }
    return stale;
  }

  forget(namespace: string, name: string): void {
    const key = ChangeHub.bindingKey(namespace, name);
    this.#current.delete(key);
    this.#held.delete(key);
    this.#expected.delete(key);
    this.touch(key);
  }

  /** Wakes every waiter of `key`. */
  touch(key: string): void {
    const waiters = this.#waiters.get(key);
    if (waiters === undefined) return;
    for (const wake of [...waiters]) wake();
  }

  /** Calls `wake` whenever one of `keys` is touched, until the returned function is called. */
  subscribe(keys: Iterable<string>, wake: () => void): () => void {
    const mine = [...new Set(keys)];
    for (const key of mine) {
      let set = this.#waiters.get(key);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      set.add(wake);
    }
    return () => {
      for (const key of mine) {
        const set = this.#waiters.get(key);
        set?.delete(wake);
        if (set?.size === 0) this.#waiters.delete(key);
      }
    };
  }

  /** Number of subscribed keys (tests check that finished long polls leave nothing behind). */
  get subscribedKeys(): number {
    return this.#waiters.size;
  }
}

/** The binding content resolver, recording every result in the hub (used by reconciler and broker alike). */
export class RecordingContentResolver extends BindingContentResolver {
  readonly #hub: ChangeHub;

  constructor(deps: ConstructorParameters<typeof BindingContentResolver>[0], hub: ChangeHub) {
    super(deps);
    this.#hub = hub;
  }

  override async resolve(binding: SecretBinding, signal: AbortSignal, options?: ResolveOptions): Promise<BindingContent> {
    const content = await super.resolve(binding, signal, options);
    this.#hub.record(binding, content);
    return content;
  }
}

/**
 * The binding content resolver that accepts cached values only if confirmed within the last
 * second. The broker uses it when its own resolution disagrees with the hash another replica (the
 * leader) published: its cache may be behind, so it looks at the backend again (version checks
 * first, so an unchanged secret costs no read).
 */
export class FreshContentResolver extends BindingContentResolver {
  override refreshIntervalMs(): number {
    return 1_000;
  }
}
