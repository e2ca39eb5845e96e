import { realClock, sleep, type Clock } from './clock.ts';
import { describeError, silentLogger, type RuntimeLogger } from './logger.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { RetryError, TerminalError, type Reconciler } from './reconciler.ts';
import { leadershipLost, type Runnable, type SyncStatus } from './runnable.ts';
import { WorkQueue } from './workqueue.ts';

/** How one reconcile ended; a closed set, used as a metric label. */
export const reconcileOutcomes = ['success', 'requeue', 'error', 'terminal'] as const;
export type ReconcileOutcome = (typeof reconcileOutcomes)[number];

/** Receives what a controller does (implemented by the runtime metrics). */
export interface ControllerObserver {
  reconciled(controller: string, outcome: ReconcileOutcome, seconds: number): void;
  reconcileFailed(controller: string, error: unknown, terminal: boolean): void;
  queueDepth(controller: string, depth: number): void;
}

export interface ControllerOptions {
  /** Short, fixed name (a metric label): `binding`, `backend`, … */
  readonly name: string;
  readonly reconciler: Reconciler;
  /** Keys reconciled at the same time (never two workers on one key). Default 1. */
  readonly workers?: number;
  /** true (default): runs only on the leader. */
  readonly needLeaderElection?: boolean;
  /** Workers start once all of these have synced (the reconciler reads their caches). */
  readonly waitForSync?: readonly SyncStatus[];
  /** On stop: how long queued and running keys may take to finish before reconciles are aborted. */
  readonly drainTimeoutMs?: number;
  readonly rateLimiter?: RateLimiter;
  readonly clock?: Clock;
  readonly logger?: RuntimeLogger;
  readonly observer?: ControllerObserver;
}

/** Wires a {@link WorkQueue} to a {@link Reconciler} with N workers; a {@link Runnable}. */
export class Controller implements Runnable {
  readonly name: string;
  readonly needLeaderElection: boolean;
  readonly queue: WorkQueue;
  readonly #reconciler: Reconciler;
  readonly #workers: number;
  readonly #waitForSync: readonly SyncStatus[];
  readonly #drainTimeoutMs: number;
  readonly #clock: Clock;
  readonly #logger: RuntimeLogger;
  readonly #observer: ControllerObserver | undefined;
  #started = false;

  constructor(options: ControllerOptions) {
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1) throw new Error(`controller ${options.name}: workers must be ≥ 1`);
    this.name = options.name;
    this.needLeaderElection = options.needLeaderElection ?? true;
    this.#reconciler = options.reconciler;
    this.#workers = workers;
    this.#waitForSync = options.waitForSync ?? [];
    this.#drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
    this.#clock = options.clock ?? realClock;
    this.#logger = options.logger ?? silentLogger;
    this.#observer = options.observer;
    this.queue = new WorkQueue({
      clock: this.#clock,
      ...(options.rateLimiter === undefined ? {} : { rateLimiter: options.rateLimiter }),
      onDepthChange: (depth) => {
        this.#observe((o) => {
          o.queueDepth(this.name, depth);
        });
      },
    });
  }

  /** Queues a key (for informer event handlers). Keys queued before start wait for the workers. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.#started) throw new Error(`controller ${this.name} was already started`);
    this.#started = true;
    while (!this.#waitForSync.every((s) => s.hasSynced())) {
      if (!(await sleep(this.#clock, 100, signal))) {
        await this.queue.shutdown('stop');
        return;
      }
    }
    this.#logger.info('controller started', { controller: this.name, workers: this.#workers });
    const reconcileAbort = new AbortController();
    const workers = Array.from({ length: this.#workers }, () => this.#work(reconcileAbort.signal));

    // The queue stops accepting keys in the abort event itself, not a tick later.
    const stopping = await new Promise<{ readonly drained: Promise<void>; readonly atOnce: boolean }>((resolve) => {
      const begin = (): void => {
        if (leadershipLost(signal)) {
          // Another replica may already be writing: drop the queue and abort running reconciles.
          this.#logger.warn('controller stopping at once: leadership lost', { controller: this.name });
          reconcileAbort.abort(signal.reason);
          resolve({ drained: this.queue.shutdown('stop'), atOnce: true });
          return;
        }
        this.#logger.info('controller draining', { controller: this.name, queued: this.queue.depth, inFlight: this.queue.inFlight });
        resolve({ drained: this.queue.shutdown('drain'), atOnce: false });
      };
      if (signal.aborted) begin();
      else signal.addEventListener('abort', begin, { once: true });
    });
    if (!stopping.atOnce) {
      const deadlineAbort = new AbortController();
      const drained = stopping.drained.then(() => true);
      const deadline = sleep(this.#clock, this.#drainTimeoutMs, deadlineAbort.signal).then(() => false);
      const inTime = await Promise.race([drained, deadline]);
      deadlineAbort.abort();
      if (!inTime) {
        this.#logger.warn('controller drain deadline passed; aborting reconciles', { controller: this.name, queued: this.queue.depth });
        reconcileAbort.abort(new Error('controller stopping'));
        await this.queue.shutdown('stop');
      }
    }
    await Promise.all(workers);
    this.#logger.info('controller stopped', { controller: this.name });
  }

  async #work(signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const started = this.#clock.now();
      let outcome: ReconcileOutcome;
      try {
        const result = await this.#reconciler.reconcile(key, { signal });
        this.queue.forget(key);
        if (result.requeueAfterMs === undefined) {
          outcome = 'success';
        } else {
          outcome = 'requeue';
          this.queue.addAfter(key, result.requeueAfterMs);
        }
      } catch (error) {
        const terminal = error instanceof TerminalError;
        if (terminal) {
          // Retrying cannot fix it; a change to the object enqueues the key again.
          outcome = 'terminal';
          this.queue.forget(key);
          this.#logger.warn('reconcile failed terminally', { controller: this.name, key, error: describeError(error) });
        } else {
          // Anything else may be transient: retry with this key's backoff (bounded, if the error says so).
          outcome = 'error';
          this.queue.addRateLimited(key, error instanceof RetryError ? error.withinMs : undefined);
          this.#logger.info('reconcile failed; will retry', {
            controller: this.name,
            key,
            retries: this.queue.numRequeues(key),
            error: describeError(error),
          });
        }
        this.#observe((o) => {
          o.reconcileFailed(this.name, error, terminal);
        });
      } finally {
        this.queue.done(key);
      }
      const seconds = (this.#clock.now() - started) / 1000;
      this.#observe((o) => {
        o.reconciled(this.name, outcome, seconds);
      });
    }
  }

  #observe(report: (observer: ControllerObserver) => void): void {
    if (this.#observer === undefined) return;
    try {
      report(this.#observer);
    } catch (error) {
      // Metrics must never stop reconciling.
      this.#logger.error('controller observer threw', { controller: this.name, error: describeError(error) });
    }
  }
}
