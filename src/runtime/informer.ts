import type { KubernetesObject } from '@kubernetes/client-node';
import { realClock, sleep, type Clock, type Random, type TimerHandle } from './clock.ts';
import { describeError, silentLogger, type RuntimeLogger } from './logger.ts';
import { ObjectStore, objectKey, sameVersion, stripForCache, type CacheReader, type Indexer } from './object-store.ts';
import { backoffDelay, type ExponentialBackoffOptions } from './rate-limiter.ts';
import { isGone, KubeApiError, type ApiStatus } from './kube-api-error.ts';
import type { Runnable, SyncStatus } from './runnable.ts';

/** Reads `signal.aborted` afresh (a call, so the type checker does not reuse an earlier narrowing). */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

export type WatchEvent<T> =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED'; readonly object: T }
  | { readonly type: 'BOOKMARK'; readonly resourceVersion: string }
  | { readonly type: 'ERROR'; readonly status: ApiStatus };

export interface WatchHandlers<T> {
  /** The server accepted the watch (HTTP 200). */
  onEstablished(): void;
  onEvent(event: WatchEvent<T>): void;
}

/**
 * Where an informer lists and watches (the port; `kube-list-watch.ts` is the API server adapter).
 */
export interface ListWatchSource<T> {
  /** For logs: `pods in namespace a, label x=y`. */
  readonly description: string;
  /**
   * Lists every object, each passed through `transform` as soon as its page arrives, so a large
   * list never holds all its objects whole at once (ADR 0201).
   */
  list(signal: AbortSignal, transform: (obj: T) => T): Promise<{ readonly items: T[]; readonly resourceVersion: string }>;
  /**
   * Watches from `resourceVersion`. Resolves when the watch ends normally (server timeout, idle
   * timeout, `signal` aborted); rejects with a {@link KubeApiError} when it fails.
   */
  watch(resourceVersion: string, handlers: WatchHandlers<T>, signal: AbortSignal): Promise<void>;
}

/** Informer event callbacks. Keep them cheap and non-blocking (enqueue keys, nothing more). */
export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(old: T, current: T): void;
  delete?(obj: T): void;
}

export interface InformerObserver {
  /** A list or watch failed and the informer restarts after a backoff. */
  informerRestarted(resource: string): void;
  /**
   * A full list was cached: the first one, after 410 Gone, or the periodic relist. A watch that
   * resumes from its resourceVersion after a failure is not a list.
   */
  informerListed?(resource: string): void;
}

export interface InformerOptions<T> {
  /** Fixed resource name, also a metric label: `pods`, `secretbindings`, … */
  readonly resource: string;
  readonly source: ListWatchSource<T>;
  /** Trims objects before caching (after managedFields are stripped): keep what controllers read. */
  readonly transform?: (obj: T) => T;
  /** A full relist every period (±10 % jitter), to heal any missed event. 0 disables. Default 10 min. */
  readonly relistPeriodMs?: number;
  /** Backoff between restarts after failures. Default 500 ms → 15 s, jitter 0.5. */
  readonly backoff?: ExponentialBackoffOptions;
  /** A watch that ends sooner than this without any event counts as a failure (no tight loops). */
  readonly minWatchMs?: number;
  /** Timeout of one list call. Default 60 s. */
  readonly listTimeoutMs?: number;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: RuntimeLogger;
  readonly observer?: InformerObserver;
}

type WatchOutcome = 'closed' | 'gone' | 'relist' | 'stopped';

/**
 * An informer with a supervisor: lists, then watches from the list's resourceVersion, keeping a
 * typed cache and calling handlers on changes. Any failure restarts it after a jittered backoff
 * (re-watching from the last resourceVersion seen); 410 Gone and the periodic relist list afresh
 * and report the difference as events. Staleness (time since the last sign of life from the server)
 * is exposed for `/readyz`.
 */
export class Informer<T extends KubernetesObject> implements CacheReader<T>, SyncStatus, Runnable {
  readonly name: string;
  readonly needLeaderElection = false;
  readonly #source: ListWatchSource<T>;
  readonly #transform: (obj: T) => T;
  readonly #relistPeriodMs: number;
  readonly #backoff: ExponentialBackoffOptions;
  readonly #minWatchMs: number;
  readonly #listTimeoutMs: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #logger: RuntimeLogger;
  readonly #observer: InformerObserver | undefined;
  readonly #store = new ObjectStore<T>();
  readonly #handlers = new Set<InformerHandlers<T>>();
  #resourceVersion = '';
  #synced = false;
  #lastFreshAt: number | undefined;
  #nextRelistAt = Infinity;
  #started = false;
  #syncWaiters: (() => void)[] = [];

  constructor(options: InformerOptions<T>) {
    this.name = options.resource;
    this.#source = options.source;
    const transform = options.transform;
    this.#transform = transform === undefined ? stripForCache : (obj) => transform(stripForCache(obj));
    this.#relistPeriodMs = options.relistPeriodMs ?? 600_000;
    this.#random = options.random ?? Math.random;
    this.#backoff = options.backoff ?? { baseMs: 500, capMs: 15_000, jitter: 0.5, random: this.#random };
    this.#minWatchMs = options.minWatchMs ?? 1000;
    this.#listTimeoutMs = options.listTimeoutMs ?? 60_000;
    this.#clock = options.clock ?? realClock;
    this.#logger = options.logger ?? silentLogger;
    this.#observer = options.observer;
  }

  /** Registers handlers; objects already cached are delivered as adds. Returns an unsubscribe. */
  addHandler(handlers: InformerHandlers<T>): () => void {
    this.#handlers.add(handlers);
    if (handlers.add !== undefined) for (const obj of this.#store.list()) this.#call(() => handlers.add?.(obj));
    return () => this.#handlers.delete(handlers);
  }

  addIndex(name: string, indexer: Indexer<T>): void {
    this.#store.addIndex(name, indexer);
  }

  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  list(): T[] {
    return this.#store.list();
  }

  listNamespace(namespace: string): T[] {
    return this.#store.listNamespace(namespace);
  }

  byIndex(index: string, value: string): T[] {
    return this.#store.byIndex(index, value);
  }

  hasSynced(): boolean {
    return this.#synced;
  }

  staleness(): number {
    return this.#lastFreshAt === undefined ? Infinity : this.#clock.now() - this.#lastFreshAt;
  }

  /** The resourceVersion the cache is at (for tests and diagnostics). */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Resolves true once the first list is cached, false if `signal` aborts first. */
  whenSynced(signal?: AbortSignal): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (signal?.aborted === true) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => { resolve(false); };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.#started) throw new Error(`informer ${this.name} was already started`);
    this.#started = true;
    let failures = 0;
    let needList = true;
    while (!signal.aborted) {
      const phase = needList ? 'list' : 'watch';
      try {
        if (needList) {
          await this.#relist(signal);
          needList = false;
          failures = 0;
          continue;
        }
        const outcome = await this.#watchOnce(signal);
        if (outcome === 'gone' || outcome === 'relist') {
          this.#logger.debug('informer relisting', { resource: this.name, why: outcome });
          needList = true;
        } else if (outcome === 'closed') {
          // A watch that worked and ended normally (server or idle timeout): the server is healthy.
          failures = 0;
        }
      } catch (error) {
        if (isAborted(signal)) break;
        if (isGone(error) && phase === 'watch') {
          needList = true;
          continue;
        }
        failures++;
        this.#call(() => this.#observer?.informerRestarted(this.name));
        const delayMs = backoffDelay(failures, this.#backoff);
        this.#logger.warn('informer failed; restarting', {
          resource: this.name,
          source: this.#source.description,
          phase,
          attempt: failures,
          delayMs: Math.round(delayMs),
          error: describeError(error),
        });
        await sleep(this.#clock, delayMs, signal);
      }
    }
    this.#logger.debug('informer stopped', { resource: this.name });
  }

  async #relist(signal: AbortSignal): Promise<void> {
    const listAbort = new AbortController();
    const onAbort = (): void => { listAbort.abort(); };
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = this.#clock.setTimeout(() => { listAbort.abort(new Error('list timed out')); }, this.#listTimeoutMs);
    let result: { readonly items: T[]; readonly resourceVersion: string };
    try {
      result = await this.#source.list(listAbort.signal, this.#transform);
    } finally {
      this.#clock.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
    if (signal.aborted) return;
    const diff = this.#store.replace(result.items);
    this.#resourceVersion = result.resourceVersion;
    this.#markFresh();
    this.#call(() => this.#observer?.informerListed?.(this.name));
    const period = this.#relistPeriodMs;
    this.#nextRelistAt = period > 0 ? this.#clock.now() + period * (0.9 + 0.2 * this.#random()) : Infinity;
    for (const obj of diff.added) this.#emit((h) => h.add?.(obj));
    for (const { old, current } of diff.updated) this.#emit((h) => h.update?.(old, current));
    for (const obj of diff.deleted) this.#emit((h) => h.delete?.(obj));
    if (!this.#synced) {
      this.#synced = true;
      this.#logger.info('informer synced', { resource: this.name, source: this.#source.description, objects: this.#store.size });
      for (const waiter of this.#syncWaiters.splice(0)) waiter();
    }
  }

  async #watchOnce(signal: AbortSignal): Promise<WatchOutcome> {
    const watchAbort = new AbortController();
    // Written by the callbacks below (an object, so the type checker does not assume it unchanged).
    const state: { outcome?: WatchOutcome; failure?: KubeApiError; established: boolean; events: number } = {
      established: false,
      events: 0,
    };
    const started = this.#clock.now();
    const end = (why: WatchOutcome): void => {
      state.outcome ??= why;
      watchAbort.abort();
    };
    const onAbort = (): void => {
      end('stopped');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let relistTimer: TimerHandle | undefined;
    if (this.#nextRelistAt !== Infinity) {
      relistTimer = this.#clock.setTimeout(() => {
        end('relist');
      }, this.#nextRelistAt - this.#clock.now());
    }
    try {
      await this.#source.watch(
        this.#resourceVersion,
        {
          onEstablished: () => {
            state.established = true;
            this.#markFresh();
            this.#logger.debug('informer watching', { resource: this.name, resourceVersion: this.#resourceVersion });
          },
          onEvent: (event) => {
            if (state.outcome !== undefined || state.failure !== undefined) return;
            state.events++;
            if (event.type === 'ERROR') {
              if (event.status.code === 410) {
                end('gone');
              } else {
                state.failure = new KubeApiError(event.status.code ?? 0, event.status.reason, `watch error: ${event.status.message ?? 'unknown'}`);
                watchAbort.abort();
              }
              return;
            }
            this.#markFresh();
            if (event.type === 'BOOKMARK') {
              this.#resourceVersion = event.resourceVersion;
              return;
            }
            this.#apply(event.type, event.object);
          },
        },
        watchAbort.signal,
      );
    } finally {
      if (relistTimer !== undefined) this.#clock.clearTimeout(relistTimer);
      signal.removeEventListener('abort', onAbort);
    }
    if (state.failure !== undefined) throw state.failure;
    if (state.outcome !== undefined) return state.outcome;
    // Ended on its own: normal if it lived a while or delivered events; otherwise the server is
    // refusing us in a way the transport did not report, and we back off.
    if (!state.established) throw new KubeApiError(0, undefined, 'watch ended before the server accepted it');
    if (state.events === 0 && this.#clock.now() - started < this.#minWatchMs) {
      throw new KubeApiError(0, undefined, 'watch closed by the server right after it started');
    }
    return 'closed';
  }

  #apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', raw: T): void {
    const obj = this.#transform(raw);
    if (obj.metadata?.resourceVersion !== undefined) this.#resourceVersion = obj.metadata.resourceVersion;
    if (type === 'DELETED') {
      const old = this.#store.remove(objectKey(obj));
      if (old !== undefined) this.#emit((h) => h.delete?.(obj));
      return;
    }
    const old = this.#store.upsert(obj);
    if (old === undefined) this.#emit((h) => h.add?.(obj));
    else if (!sameVersion(old, obj)) this.#emit((h) => h.update?.(old, obj));
  }

  #markFresh(): void {
    this.#lastFreshAt = this.#clock.now();
  }

  #emit(call: (handlers: InformerHandlers<T>) => void): void {
    for (const handlers of this.#handlers) this.#call(() => { call(handlers); });
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      // A handler bug must not stop the informer or the other handlers.
      this.#logger.error('informer handler threw', { resource: this.name, error: describeError(error) });
    }
  }
}

/**
 * Handlers that enqueue keys on every add, update and delete: the object's own key by default, or
 * the keys `keysOf` maps it to (e.g. a pod to the bindings that select it). Level-based: the
 * reconciler re-reads the caches, so which event it was does not matter.
 */
export function enqueueHandlers<T extends KubernetesObject>(
  enqueue: (key: string) => void,
  keysOf: (obj: T) => readonly string[] = (obj) => [objectKey(obj)],
): InformerHandlers<T> {
  const enqueueAll = (obj: T): void => {
    for (const key of keysOf(obj)) enqueue(key);
  };
  return {
    add: enqueueAll,
    update: (old, current) => {
      // Both: a change can move an object out of a key's scope (e.g. relabelled away from a selector).
      enqueueAll(old);
      enqueueAll(current);
    },
    delete: enqueueAll,
  };
}
