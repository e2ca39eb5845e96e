import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { isConditionTrue } from '../api/v1alpha1/conditions.ts';
import { BindingContentResolver, type BindingContent, type BindingContentDeps } from '../controllers/binding/binding-content.ts';
import type { ChangeHub } from './change-hub.ts';

/** A binding content resolver that never counts a cached version as out of date: it checks nothing it holds. */
class CachedContentResolver extends BindingContentResolver {
  override refreshIntervalMs(): number {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * The broker's content (ADR 0202): only the leader polls backends. The leader's binding reconciler
 * checks every key once per refresh interval and publishes the content HMAC in status, which every
 * replica's change hub holds. A broker answer computed from this replica's cached values that
 * matches that hash is current — no version check of its own; a key not cached yet is read once, on
 * demand. Only when the cached content disagrees with the hub (the leader saw a rotation, or no hash
 * is known yet) does the broker resolve as the reconciler does, checking versions at the backend.
 * So the deployment reads each key once per interval, whichever replicas serve mounts.
 */
export class LeaderFollowingContentResolver {
  readonly #cached: CachedContentResolver;
  readonly #polling: BindingContentResolver;
  readonly #hub: Pick<ChangeHub, 'current'>;

  constructor(deps: BindingContentDeps, hub: Pick<ChangeHub, 'current'>) {
    this.#cached = new CachedContentResolver(deps);
    this.#polling = new BindingContentResolver(deps);
    this.#hub = hub;
  }

  async resolve(binding: SecretBinding, signal: AbortSignal): Promise<BindingContent> {
    const known = this.#hub.current(binding.metadata.namespace ?? '', binding.metadata.name ?? '');
    // Only content the leader last found current and healthy stands without a check: while it is
    // Degraded (last-known-good, throttled) or not Ready, the staleness rules need the backend's
    // answer (a partition past maxStaleness refuses new mounts; the cache alone would serve them).
    const conditions = binding.status?.conditions;
    if (known?.kind === 'hash' && isConditionTrue(conditions, 'Ready') && !isConditionTrue(conditions, 'Degraded')) {
      const cached = await this.#cached.resolve(binding, signal);
      if (cached.kind === 'resolved' && cached.stale === undefined && cached.hmac === known.hash) return cached;
    }
    return this.#polling.resolve(binding, signal);
  }
}
