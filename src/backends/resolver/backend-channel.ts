import pLimit, { type LimitFunction } from 'p-limit';
import type { Clock, Random } from '../../runtime/clock.ts';
import { backoffDelay } from '../../runtime/rate-limiter.ts';
import {
  BackendError,
  UnavailableError,
  type FetchOutcome,
  type ProviderName,
  type SecretBackend,
  type SecretRef,
  type VersionOutcome,
} from '../backend.port.ts';
import { resultOf, type BackendMetrics } from '../backends.metrics.ts';
import { raceWithSignal } from '../provider.support.ts';
import { sanitizeError } from '../../observability/sanitize.ts';
import { TokenBucket } from './token-bucket.ts';

/**
 * The road from the resolver to one backend identity (ADR 0055): requests for different secrets
 * that arrive within a short window go out as one `fetch(refs)` / `versions(refs)`; every call
 * waits for a token of the backend's budget and a concurrency slot; a whole call or a reference
 * that is throttled or unavailable is retried with exponential backoff and jitter, at least as
 * late as the store's retry-after, and the pause holds every other call to the backend too.
 * No loop here runs without a wait: every retry sleeps, and attempts are bounded.
 */

/** The rate budget of a backend (the `rateLimit` block of its spec). */
export interface BackendLimits {
  /** Sustained secrets per second (a call for n secrets costs n). */
  readonly qps: number;
  /** Secrets that may be requested at once above the sustained rate. */
  readonly burst: number;
  /** Calls in flight at the same time. */
  readonly maxConcurrency: number;
}

export interface RetryPolicy {
  /** Attempts of one call, the first included. */
  readonly maxAttempts: number;
  /** Backoff after the first failed attempt; doubles per attempt up to `capMs`, jittered. */
  readonly baseMs: number;
  readonly capMs: number;
}

export interface ChannelOptions {
  readonly provider: ProviderName;
  readonly backend: SecretBackend;
  readonly limits: BackendLimits;
  readonly clock: Clock;
  readonly random: Random;
  readonly metrics: BackendMetrics;
  /** How long the first request of a batch waits for others to join it. */
  readonly batchWindowMs: number;
  /** The most references in one call. */
  readonly maxBatchSize: number;
  /** A call that takes longer is aborted and counts as Unavailable. */
  readonly callTimeoutMs: number;
  readonly retry: RetryPolicy;
}

type Operation = 'fetch' | 'versions';
/** `fetch` batches hold FetchOutcomes only, `versions` batches VersionOutcomes only. */
type Outcome = FetchOutcome | VersionOutcome;

interface Waiter {
  readonly ref: SecretRef;
  readonly resolve: (outcome: Outcome) => void;
}

interface Batch {
  readonly waiters: Map<string, Waiter[]>;
  timer: ReturnType<Clock['setTimeout']> | undefined;
}

/** A stable identity of a reference (key + version selector), for matching and deduplication. */
export function refId(ref: SecretRef): string {
  const v = ref.version;
  return JSON.stringify([ref.key, v.kind, v.kind === 'id' ? v.id : v.kind === 'stage' ? v.stage : '']);
}

export class BackendChannel {
  readonly provider: ProviderName;
  readonly #options: ChannelOptions;
  readonly #bucket: TokenBucket;
  readonly #limit: LimitFunction;
  readonly #closing = new AbortController();
  readonly #batches: Readonly<Record<Operation, Batch>> = {
    fetch: { waiters: new Map(), timer: undefined },
    versions: { waiters: new Map(), timer: undefined },
  };
  readonly #running = new Set<Promise<void>>();

  constructor(options: ChannelOptions) {
    this.provider = options.provider;
    this.#options = options;
    this.#bucket = new TokenBucket({ qps: options.limits.qps, burst: options.limits.burst, clock: options.clock });
    this.#limit = pLimit(options.limits.maxConcurrency);
  }

  /** Applies a changed `rateLimit` block without losing the cache or the current pause. */
  setLimits(limits: BackendLimits): void {
    this.#bucket.setRate(limits.qps, limits.burst);
    this.#limit.concurrency = limits.maxConcurrency;
  }

  /** The value of one reference; joins the next batch. Never rejects: failures are outcomes. */
  fetch(ref: SecretRef): Promise<FetchOutcome> {
    return this.#enqueue('fetch', ref) as Promise<FetchOutcome>;
  }

  /** The current version of one reference; joins the next batch. Never rejects. */
  versions(ref: SecretRef): Promise<VersionOutcome> {
    return this.#enqueue('versions', ref) as Promise<VersionOutcome>;
  }

  /**
   * The backend's connectivity check, within the same budget as reads: a concurrency slot and one
   * token, and a throttled / unavailable answer pauses the backend like a read's would. Without
   * this, a backend reconciler retrying a throttled check would add calls beyond the budget.
   * Throws the port error; the caller decides about retries.
   */
  checkConnectivity(signal?: AbortSignal): Promise<void> {
    const { clock, backend, metrics, callTimeoutMs } = this.#options;
    return this.#limit(async () => {
      const callSignal = AbortSignal.any([this.#closing.signal, ...(signal === undefined ? [] : [signal])]);
      if (!(await this.#bucket.take(1, callSignal))) {
        throw this.#closing.signal.aborted ? closedError() : new UnavailableError('connectivity check: the rate budget allowed no call before the check timed out');
      }
      const timeout = new AbortController();
      const timer = clock.setTimeout(() => {
        timeout.abort(new DOMException('connectivity check timed out', 'TimeoutError'));
      }, callTimeoutMs);
      const bounded = AbortSignal.any([callSignal, timeout.signal]);
      const started = clock.now();
      let error: unknown;
      try {
        await raceWithSignal(backend.checkConnectivity({ signal: bounded }), bounded, `${this.provider} connectivity check`);
      } catch (err) {
        error = err;
        if (err instanceof BackendError && err.retryable) {
          if (err.kind === 'Throttled') metrics.throttles.inc({ provider: this.provider });
          this.#backOff(err, 1);
        }
        throw err;
      } finally {
        clock.clearTimeout(timer);
        metrics.requests.inc({ provider: this.provider, operation: 'connectivity', result: resultOf(error) });
        metrics.requestDuration.observe({ provider: this.provider, operation: 'connectivity' }, Math.max(0, clock.now() - started) / 1000);
      }
    });
  }

  /** When the backend is paused by a throttle or backoff (clock ms), or 0. */
  get pausedUntil(): number {
    return this.#bucket.pausedUntil;
  }

  /** Fails waiting requests, aborts calls in flight, and closes the backend client. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    for (const operation of ['fetch', 'versions'] as const) {
      const batch = this.#batches[operation];
      if (batch.timer !== undefined) this.#options.clock.clearTimeout(batch.timer);
      batch.timer = undefined;
      const waiters = [...batch.waiters.values()].flat();
      batch.waiters.clear();
      for (const w of waiters) w.resolve(failed(w.ref, closedError()));
    }
    await Promise.allSettled([...this.#running]);
    await this.#options.backend.close();
  }

  #enqueue(operation: Operation, ref: SecretRef): Promise<Outcome> {
    if (this.#closing.signal.aborted) return Promise.resolve(failed(ref, closedError()));
    const batch = this.#batches[operation];
    return new Promise<Outcome>((resolve) => {
      const id = refId(ref);
      const list = batch.waiters.get(id) ?? [];
      list.push({ ref, resolve });
      batch.waiters.set(id, list);
      if (batch.waiters.size >= this.#options.maxBatchSize) {
        this.#flush(operation);
      } else if (batch.timer === undefined) {
        batch.timer = this.#options.clock.setTimeout(() => {
          this.#flush(operation);
        }, this.#options.batchWindowMs);
      }
    });
  }

  #flush(operation: Operation): void {
    const batch = this.#batches[operation];
    if (batch.timer !== undefined) this.#options.clock.clearTimeout(batch.timer);
    batch.timer = undefined;
    const groups = [...batch.waiters.values()];
    batch.waiters.clear();
    for (let i = 0; i < groups.length; i += this.#options.maxBatchSize) {
      const chunk = groups.slice(i, i + this.#options.maxBatchSize);
      const run = this.#runBatch(operation, chunk.map((g) => g[0]?.ref).filter((r) => r !== undefined)).then(
        (outcomes) => {
          chunk.forEach((group, j) => {
            const outcome = outcomes[j];
            for (const w of group) w.resolve(outcome ?? failed(w.ref, closedError()));
          });
        },
      );
      this.#running.add(run);
      void run.finally(() => this.#running.delete(run));
    }
  }

  /** One batch with its retries; outcomes in the order of `refs`. Never rejects. */
  async #runBatch(operation: Operation, refs: readonly SecretRef[]): Promise<Outcome[]> {
    const results = new Map<string, Outcome>();
    let todo = refs;
    for (let attempt = 1; todo.length > 0; attempt++) {
      const last = attempt >= this.#options.retry.maxAttempts || this.#closing.signal.aborted;
      let outcomes: Outcome[];
      try {
        outcomes = await this.#call(operation, todo);
      } catch (err) {
        const error = toBackendError(err, this.provider, operation);
        // Throttled / Unavailable: the same call may work later; wait (backoff, retry-after) and
        // try again, up to the attempt limit. Anything else (auth, config) will not heal by itself.
        if (error.retryable && !last) {
          this.#backOff(error, attempt);
          continue;
        }
        for (const ref of todo) results.set(refId(ref), failed(ref, error));
        break;
      }
      const byId = new Map(outcomes.map((o) => [refId(outcomeRef(o)), o]));
      const retry: SecretRef[] = [];
      let retryError: BackendError | undefined;
      for (const ref of todo) {
        const outcome = byId.get(refId(ref)) ?? failed(ref, missingOutcomeError());
        if (!outcome.ok && outcome.error.kind === 'Throttled') this.#options.metrics.throttles.inc({ provider: this.provider });
        // A reference that failed retryably (throttled alone, e.g. one of AWS's batch results)
        // is retried like a whole call; the others are final.
        if (!outcome.ok && outcome.error.retryable && !last) {
          retry.push(ref);
          retryError = outcome.error;
        } else {
          results.set(refId(ref), outcome);
        }
      }
      if (retryError !== undefined) this.#backOff(retryError, attempt);
      todo = retry;
    }
    return refs.map((ref) => results.get(refId(ref)) ?? failed(ref, closedError()));
  }

  /** Pauses the whole backend for the backoff of `attempt`, at least the store's retry-after. */
  #backOff(error: BackendError, attempt: number): void {
    const { baseMs, capMs } = this.#options.retry;
    const backoff = backoffDelay(attempt, { baseMs, capMs, jitter: 0.5, random: this.#options.random });
    const retryAfter = 'retryAfterMs' in error && typeof error.retryAfterMs === 'number' ? error.retryAfterMs : 0;
    this.#bucket.pauseUntil(this.#options.clock.now() + Math.max(backoff, retryAfter));
  }

  /** One call: a concurrency slot, the budget, then the provider with a timeout. */
  #call(operation: Operation, refs: readonly SecretRef[]): Promise<Outcome[]> {
    const { clock, backend, metrics, callTimeoutMs } = this.#options;
    return this.#limit(async () => {
      if (!(await this.#bucket.take(refs.length, this.#closing.signal))) throw closedError();
      const timeout = new AbortController();
      const timer = clock.setTimeout(() => {
        timeout.abort(new DOMException(`${operation} timed out`, 'TimeoutError'));
      }, callTimeoutMs);
      const signal = AbortSignal.any([this.#closing.signal, timeout.signal]);
      const started = clock.now();
      let error: unknown;
      try {
        const work: Promise<Outcome[]> = operation === 'fetch' ? backend.fetch(refs, { signal }) : backend.versions(refs, { signal });
        const outcomes = await raceWithSignal(work, signal, `${this.provider} ${operation}`);
        if (operation === 'fetch') {
          const read = outcomes.filter((o) => o.ok).length;
          if (read > 0) metrics.secretsRead.inc({ provider: this.provider }, read);
        }
        return outcomes;
      } catch (err) {
        error = err;
        if (err instanceof BackendError && err.kind === 'Throttled') metrics.throttles.inc({ provider: this.provider });
        throw err;
      } finally {
        clock.clearTimeout(timer);
        metrics.requests.inc({ provider: this.provider, operation, result: resultOf(error) });
        metrics.requestDuration.observe({ provider: this.provider, operation }, Math.max(0, clock.now() - started) / 1000);
      }
    });
  }
}

function failed(ref: SecretRef, error: BackendError): { ok: false; ref: SecretRef; error: BackendError } {
  return { ok: false, ref, error };
}

function outcomeRef(outcome: FetchOutcome | VersionOutcome): SecretRef {
  return 'ref' in outcome ? outcome.ref : outcome.secret.ref;
}

function closedError(): UnavailableError {
  return new UnavailableError('backend client was closed');
}

function missingOutcomeError(): UnavailableError {
  return new UnavailableError('backend returned no result for a requested secret');
}

/** A provider that throws something other than a port error is treated as unavailable. */
function toBackendError(err: unknown, provider: ProviderName, operation: Operation): BackendError {
  if (err instanceof BackendError) return err;
  return new UnavailableError(`${provider} ${operation} failed: ${sanitizeError(err).message}`);
}
