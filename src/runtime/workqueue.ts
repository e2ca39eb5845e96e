import { realClock, type Clock, type TimerHandle } from './clock.ts';
import { defaultRateLimiter, type RateLimiter } from './rate-limiter.ts';

export interface WorkQueueOptions {
  readonly clock?: Clock;
  /** Delays for {@link WorkQueue.addRateLimited}; default {@link defaultRateLimiter}. */
  readonly rateLimiter?: RateLimiter;
  /** Called with the number of keys ready to be handed out, whenever it changes. */
  readonly onDepthChange?: (depth: number) => void;
}

/**
 * How {@link WorkQueue.shutdown} ends the queue:
 * - `drain`: accept no new keys (delayed keys are dropped), but hand out every key already queued
 *   (including keys re-added while they were running) and finish when all are done;
 * - `stop`: drop everything queued; finish when the keys being processed are done.
 */
export type ShutdownMode = 'drain' | 'stop';

/**
 * A keyed work queue with the controller-runtime guarantees:
 * - a key queued several times is processed once (dedup);
 * - a key is never handed to two workers at once;
 * - a key added while it is being processed is processed once more after {@link WorkQueue.done}
 *   (once, however many times it was added meanwhile);
 * - {@link WorkQueue.addAfter} and {@link WorkQueue.addRateLimited} delay a key (the earliest
 *   pending delay wins).
 *
 * Workers loop on `get()` → work → `done(key)`.
 */
export class WorkQueue {
  readonly #clock: Clock;
  readonly #rateLimiter: RateLimiter;
  readonly #onDepthChange: ((depth: number) => void) | undefined;

  /** Keys ready to be handed out, in order. */
  #queue: string[] = [];
  /** Keys that need processing: queued, or to be re-queued when their processing is done. */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #waiting = new Map<string, { readonly readyAt: number; readonly timer: TimerHandle }>();
  readonly #getters: ((key: string | undefined) => void)[] = [];
  #shutdown: ShutdownMode | undefined;
  #idle: (() => void)[] = [];
  #lastDepth = 0;

  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? realClock;
    this.#rateLimiter = options.rateLimiter ?? defaultRateLimiter({ clock: this.#clock });
    this.#onDepthChange = options.onDepthChange;
  }

  /** Queues `key` now, unless it is already queued. Ignored after shutdown. */
  add(key: string): void {
    if (this.#shutdown !== undefined) return;
    this.#enqueue(key);
  }

  /** Queues `key` after `ms` (at once if `ms` ≤ 0). An earlier pending delay for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shutdown !== undefined) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + ms;
    const pending = this.#waiting.get(key);
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      this.#clock.clearTimeout(pending.timer);
    }
    const timer = this.#clock.setTimeout(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { readyAt, timer });
  }

  /**
   * Queues `key` after the rate limiter's delay: the per-key backoff, at least the global rate —
   * or after `maxDelayMs` if that is sooner (the backoff still counts the failure).
   */
  addRateLimited(key: string, maxDelayMs = Number.POSITIVE_INFINITY): void {
    if (this.#shutdown !== undefined) return;
    this.addAfter(key, Math.min(this.#rateLimiter.when(key), maxDelayMs));
  }

  /** Resets the backoff of `key` (call after a success or a terminal failure). */
  forget(key: string): void {
    this.#rateLimiter.forget(key);
  }

  /** Consecutive rate-limited re-adds of `key` since it was last forgotten. */
  numRequeues(key: string): number {
    return this.#rateLimiter.failures(key);
  }

  /**
   * The next key to process, waiting until there is one. `undefined` means the queue is shut down
   * and has nothing more to hand out: the worker should exit.
   */
  get(): Promise<string | undefined> {
    const key = this.#take();
    if (key !== undefined || this.#finishedHandingOut()) return Promise.resolve(key);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks `key` processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    if (this.#dirty.has(key)) {
      this.#push(key);
    }
    this.#checkIdle();
  }

  /** Keys ready to be handed out (not counting delayed or in-flight keys). */
  get depth(): number {
    return this.#queue.length;
  }

  /** Keys being processed right now. */
  get inFlight(): number {
    return this.#processing.size;
  }

  /** Keys waiting for a delay ({@link WorkQueue.addAfter}). */
  get delayed(): number {
    return this.#waiting.size;
  }

  get shuttingDown(): boolean {
    return this.#shutdown !== undefined;
  }

  /**
   * Stops the queue (see {@link ShutdownMode}); resolves when nothing is left to process in that
   * mode. Calling `stop` after `drain` escalates; the reverse is ignored.
   */
  shutdown(mode: ShutdownMode): Promise<void> {
    if (this.#shutdown !== 'stop') this.#shutdown = mode;
    for (const { timer } of this.#waiting.values()) this.#clock.clearTimeout(timer);
    this.#waiting.clear();
    if (this.#shutdown === 'stop') {
      this.#queue = [];
      this.#dirty.clear();
      this.#reportDepth();
    }
    const done = new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#checkIdle();
    return done;
  }

  #enqueue(key: string): void {
    if (this.#dirty.has(key)) return;
    this.#dirty.add(key);
    // Re-queued by done() when the worker that holds it finishes.
    if (this.#processing.has(key)) return;
    this.#push(key);
  }

  #push(key: string): void {
    const getter = this.#getters.shift();
    if (getter !== undefined) {
      this.#dirty.delete(key);
      this.#processing.add(key);
      getter(key);
      return;
    }
    this.#queue.push(key);
    this.#reportDepth();
  }

  #take(): string | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#dirty.delete(key);
    this.#processing.add(key);
    this.#reportDepth();
    return key;
  }

  #finishedHandingOut(): boolean {
    return this.#shutdown === 'stop' || (this.#shutdown === 'drain' && this.#queue.length === 0 && this.#processing.size === 0);
  }

  #checkIdle(): void {
    if (this.#shutdown === undefined) return;
    const idle = this.#processing.size === 0 && (this.#shutdown === 'stop' || this.#queue.length === 0);
    if (this.#finishedHandingOut() || this.#shutdown === 'stop') {
      // Workers blocked in get() exit now; nothing more will be handed out.
      for (const getter of this.#getters.splice(0)) getter(undefined);
    }
    if (idle) {
      for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  #reportDepth(): void {
    const depth = this.#queue.length;
    if (depth === this.#lastDepth) return;
    this.#lastDepth = depth;
    this.#onDepthChange?.(depth);
  }
}
