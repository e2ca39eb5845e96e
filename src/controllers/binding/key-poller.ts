import type { SecretRef } from '../../backends/backend.port.ts';
import { refId } from '../../backends/resolver/backend-channel.ts';
import type { VersionCheck } from '../../backends/resolver/resolver.ts';
import { sleep, type Clock } from '../../runtime/clock.ts';
import { describeError, type RuntimeLogger } from '../../runtime/logger.ts';
import type { Runnable } from '../../runtime/runnable.ts';
import { pollSchedule, type PolledRef } from './binding-content.ts';

export type { PolledRef } from './binding-content.ts';

export interface KeyPollerDeps {
  readonly checkVersions: (backendId: string, refs: readonly SecretRef[], options: { readonly maxAgeMs: number; readonly signal?: AbortSignal }) => Promise<VersionCheck[]>;
  /** Queues a binding's reconcile (`namespace/name`). */
  readonly enqueue: (bindingKey: string) => void;
  readonly clock: Clock;
  readonly random?: () => number;
  readonly logger: RuntimeLogger;
  /** How often due keys are looked for. Default 250 ms. */
  readonly tickMs?: number;
}

interface Polled {
  readonly backendId: string;
  readonly ref: SecretRef;
  /** Per binding that reads it: its refresh interval (the key is checked at the shortest) and the version it holds. */
  readonly bindings: Map<string, { readonly intervalMs: number; readonly version: string }>;
  nextAt: number;
  checking: boolean;
}

/**
 * Polls each secret in use once per refresh interval — not each binding (ADR 0203). A healthy
 * binding is reconciled when something it depends on changes (its spec, its pods, its backend, a
 * change notice) and when one of its secrets moves; the periodic version check is this poller's:
 * at 5,000 bindings over 100 keys that is 100 cheap checks per interval instead of 5,000
 * reconciles. A key whose version changed, or whose check failed, queues every binding that reads
 * it; the reconcile then reads the new value (or reports the failure) as before. Leader only.
 */
export class KeyPoller implements Runnable {
  readonly name = 'key-poller';
  readonly needLeaderElection = true;
  readonly #deps: KeyPollerDeps;
  readonly #keys = new Map<string, Polled>();
  readonly #ofBinding = new Map<string, readonly string[]>();

  constructor(deps: KeyPollerDeps) {
    this.#deps = deps;
  }

  /** The binding holds `refs` at their versions, checked at least every `intervalMs`; replaces what it read before. */
  track(bindingKey: string, refs: readonly PolledRef[], intervalMs: number): void {
    const now = this.#deps.clock.now();
    const ids = refs.map((r) => `${r.backendId}\u0000${refId(r.ref)}`);
    for (const id of this.#ofBinding.get(bindingKey) ?? []) if (!ids.includes(id)) this.#drop(id, bindingKey);
    refs.forEach((r, i) => {
      const id = ids[i] ?? '';
      let polled = this.#keys.get(id);
      if (polled === undefined) {
        polled = { backendId: r.backendId, ref: r.ref, bindings: new Map(), nextAt: Number.POSITIVE_INFINITY, checking: false };
        this.#keys.set(id, polled);
      }
      polled.bindings.set(bindingKey, { intervalMs, version: r.version });
      // The reconcile that tracks it has just confirmed it: next check one interval from now.
      polled.nextAt = Math.min(polled.nextAt, now + this.#nextInMs(intervalMs));
    });
    if (ids.length === 0) this.#ofBinding.delete(bindingKey);
    else this.#ofBinding.set(bindingKey, ids);
  }

  /** The binding is gone, or no longer healthy (its reconcile polls by itself again). */
  untrack(bindingKey: string): void {
    for (const id of this.#ofBinding.get(bindingKey) ?? []) this.#drop(id, bindingKey);
    this.#ofBinding.delete(bindingKey);
  }

  /** Keys polled (for tests and diagnostics). */
  get size(): number {
    return this.#keys.size;
  }

  async start(signal: AbortSignal): Promise<void> {
    const tickMs = this.#deps.tickMs ?? 250;
    while (!signal.aborted) {
      this.pollDue(signal);
      await sleep(this.#deps.clock, tickMs, signal);
    }
  }

  /** Starts a check of every key that is due (one shared check per key; the resolver batches them). */
  pollDue(signal?: AbortSignal): void {
    const now = this.#deps.clock.now();
    for (const polled of this.#keys.values()) {
      if (polled.checking || polled.nextAt > now) continue;
      polled.checking = true;
      void this.#check(polled, signal).finally(() => {
        polled.checking = false;
      });
    }
  }

  async #check(polled: Polled, signal: AbortSignal | undefined): Promise<void> {
    const intervalMs = Math.min(...[...polled.bindings.values()].map((b) => b.intervalMs));
    try {
      const [result] = await this.#deps.checkVersions(polled.backendId, [polled.ref], {
        maxAgeMs: pollSchedule(intervalMs).confirmedForMs,
        ...(signal === undefined ? {} : { signal }),
      });
      // A failure to report (Degraded, last-known-good): every binding concludes again. A version
      // other than the one a binding holds (found now, or by another reader since): that binding.
      for (const [binding, held] of polled.bindings) {
        if (result === undefined || !result.ok || result.version !== held.version) this.#deps.enqueue(binding);
      }
    } catch (error) {
      this.#deps.logger.warn('key poll failed', { error: describeError(error) });
      for (const binding of polled.bindings.keys()) this.#deps.enqueue(binding);
    }
    polled.nextAt = this.#deps.clock.now() + this.#nextInMs(intervalMs);
  }

  #nextInMs(intervalMs: number): number {
    return pollSchedule(intervalMs, this.#deps.random).nextInMs;
  }

  #drop(id: string, bindingKey: string): void {
    const polled = this.#keys.get(id);
    if (polled === undefined) return;
    polled.bindings.delete(bindingKey);
    if (polled.bindings.size === 0) this.#keys.delete(id);
  }
}
