import type { Clock, Random } from '../../runtime/clock.ts';
import { backoffDelay } from '../../runtime/rate-limiter.ts';
import {
  UnavailableError,
  unversioned,
  type BackendError,
  type FetchedSecret,
  type SecretBackend,
  type SecretRef,
} from '../backend.port.ts';
import type { DetectionSource } from '../change-notice.port.ts';
import type { BackendMetrics } from '../backends.metrics.ts';
import { contentHmac } from '../../observability/content-hmac.ts';
import type { SecretValue } from '../../observability/secret-value.ts';
import { BackendChannel, refId, type BackendLimits, type RetryPolicy } from './backend-channel.ts';
import { extractProperty } from './property.ts';

export { PropertyError, type PropertyErrorKind } from './property.ts';
export type { BackendLimits, RetryPolicy } from './backend-channel.ts';

/**
 * The resolver sits between bindings and providers (ADR 0057). It keeps one cache entry per
 * (backend identity, key, version selector) — documents whole, fields extracted per request —
 * so backend reads scale with unique secrets, not with pods or bindings:
 *
 * - concurrent requests for one entry share one provider call; requests for different entries
 *   of one backend within a short window share one `fetch(refs)` (see {@link BackendChannel});
 * - every backend has its rate budget and concurrency limit, and backs off on throttling;
 * - the last good document of every entry stays in memory with its age, and may be served up to
 *   a caller's maximum staleness while the backend is unavailable;
 * - {@link SecretResolver.checkVersions} polls with the providers' cheap `versions()` and reads
 *   a value only when its version changed; documents of unversioned stores are re-read and
 *   compared by keyed HMAC;
 * - a failed entry is not asked again before a growing hold time, so no caller can make the
 *   resolver loop on a failing backend.
 *
 * Time comes from the injected clock; nothing here reads the environment or does I/O until asked.
 */

export interface ResolverOptions {
  readonly clock: Clock;
  readonly metrics: BackendMetrics;
  /**
   * The operator's HMAC key: the version of a document from an unversioned store is the keyed
   * HMAC of its content, so a change is visible without keeping or printing the content.
   */
  readonly contentKey: SecretValue;
  readonly random?: Random;
  /** How long the first request of a batch waits for others (default 10 ms). */
  readonly batchWindowMs?: number;
  /** The most references in one provider call (default 50). */
  readonly maxBatchSize?: number;
  /** Timeout of one provider call (default 15 s). */
  readonly callTimeoutMs?: number;
  /** Retries of throttled / unavailable calls (default 4 attempts, 200 ms doubling to 30 s). */
  readonly retry?: RetryPolicy;
  /** After a failed read, the entry is not read again for base·2^(n−1) ms, capped (default 1 s → 60 s). */
  readonly failureHold?: { readonly baseMs: number; readonly capMs: number };
}

export interface ResolveRequest {
  /** The backend identity as registered with {@link SecretResolver.addBackend}. */
  readonly backendId: string;
  readonly ref: SecretRef;
  /** A field of a JSON document (see property.ts); the whole document when absent. */
  readonly property?: string | undefined;
}

export interface ResolveOptions {
  /** A cached document confirmed current within this many ms is served without a call. */
  readonly maxAgeMs: number;
  /**
   * When set, a failure of the backend (Unavailable, Throttled, AuthFailed) is answered with the
   * last good document if it was confirmed current at most this many ms ago.
   */
  readonly serveStaleUpToMs?: number | undefined;
  /** Stops waiting (the shared backend call goes on for the other callers). */
  readonly signal?: AbortSignal | undefined;
}

/** A resolved value. `stale` ones come from memory after a backend failure (`cause`). */
export type Resolution = ResolvedValue & ({ readonly stale: false } | { readonly stale: true; readonly cause: BackendError });

interface ResolvedValue {
  readonly value: SecretValue;
  /**
   * The document's version: the backend's version id, or for unversioned stores `hmac-sha256:…`
   * of the content. Compare versions to detect change; they never carry a value.
   */
  readonly version: string;
  readonly encoding: FetchedSecret['encoding'];
  /** Milliseconds since the document was last confirmed current. */
  readonly ageMs: number;
}

export type ResolveOutcome =
  | { readonly ok: true; readonly request: ResolveRequest; readonly resolution: Resolution }
  | { readonly ok: false; readonly request: ResolveRequest; readonly error: Error };

export type VersionCheck =
  | {
      readonly ok: true;
      readonly ref: SecretRef;
      /** The current version (see {@link ResolvedValue.version}). */
      readonly version: string;
      /** The cached version before this check; undefined if the entry was new. */
      readonly previousVersion: string | undefined;
      /** Whether the cached document was replaced by a different version. */
      readonly changed: boolean;
    }
  | { readonly ok: false; readonly ref: SecretRef; readonly error: BackendError };

export interface LastKnownGood {
  readonly secret: FetchedSecret;
  readonly version: string;
  /** Milliseconds since the document was last confirmed current. */
  readonly ageMs: number;
}

/** A request named a backend identity that is not registered (yet, or any more). */
export class UnknownBackendError extends Error {
  override readonly name = 'UnknownBackendError';
  readonly retryable = true;
}

/** Errors after which a last-known-good document may stand in: the store is down or refuses us. */
const staleEligible: ReadonlySet<BackendError['kind']> = new Set(['Unavailable', 'Throttled', 'AuthFailed']);

interface Entry {
  readonly ref: SecretRef;
  doc: FetchedSecret | undefined;
  version: string | undefined;
  confirmedAt: number;
  failure: { error: BackendError; count: number; at: number; holdUntil: number } | undefined;
  fetching: Promise<BackendError | undefined> | undefined;
  checking: Promise<VersionCheck> | undefined;
  lastUsedAt: number;
  /** Whether a change notice made the entry unconfirmed since its last successful check. */
  noticed: boolean;
}

interface BackendState {
  readonly channel: BackendChannel;
  readonly entries: Map<string, Entry>;
}

export class SecretResolver {
  readonly #clock: Clock;
  readonly #metrics: BackendMetrics;
  readonly #contentKey: SecretValue;
  readonly #random: Random;
  readonly #channelDefaults: {
    batchWindowMs: number;
    maxBatchSize: number;
    callTimeoutMs: number;
    retry: RetryPolicy;
  };
  readonly #failureHold: { readonly baseMs: number; readonly capMs: number };
  readonly #backends = new Map<string, BackendState>();

  constructor(options: ResolverOptions) {
    this.#clock = options.clock;
    this.#metrics = options.metrics;
    this.#contentKey = options.contentKey;
    this.#random = options.random ?? Math.random;
    this.#channelDefaults = {
      batchWindowMs: options.batchWindowMs ?? 10,
      maxBatchSize: options.maxBatchSize ?? 50,
      callTimeoutMs: options.callTimeoutMs ?? 15_000,
      retry: options.retry ?? { maxAttempts: 4, baseMs: 200, capMs: 30_000 },
    };
    this.#failureHold = options.failureHold ?? { baseMs: 1000, capMs: 60_000 };
  }

  // --- backends ---------------------------------------------------------------------------

  /**
   * Registers a connected client under a backend identity. The identity must change whenever
   * the backend's configuration or credentials do (register the new one, remove the old one):
   * cached documents are never shared between identities.
   */
  addBackend(backendId: string, backend: SecretBackend, limits: BackendLimits): void {
    if (this.#backends.has(backendId)) throw new Error(`backend ${backendId} is already registered`);
    const channel = new BackendChannel({
      provider: backend.provider,
      backend,
      limits,
      clock: this.#clock,
      random: this.#random,
      metrics: this.#metrics,
      ...this.#channelDefaults,
    });
    this.#backends.set(backendId, { channel, entries: new Map() });
  }

  /** Applies a changed rate budget to a registered backend. */
  setLimits(backendId: string, limits: BackendLimits): void {
    this.#state(backendId).channel.setLimits(limits);
  }

  hasBackend(backendId: string): boolean {
    return this.#backends.has(backendId);
  }

  /**
   * The backend's connectivity check, charged to its rate budget and paused by its throttling
   * like every read (a check that bypassed them could exceed the budget while retried).
   */
  checkConnectivity(backendId: string, options: { readonly signal?: AbortSignal | undefined } = {}): Promise<void> {
    return this.#state(backendId).channel.checkConnectivity(options.signal);
  }

  /** Forgets a backend and its cache, fails its waiting requests and closes its client. */
  async removeBackend(backendId: string): Promise<void> {
    const state = this.#backends.get(backendId);
    if (state === undefined) return;
    this.#backends.delete(backendId);
    state.entries.clear();
    await state.channel.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#backends.keys()].map((id) => this.removeBackend(id)));
  }

  // --- reads ------------------------------------------------------------------------------

  /**
   * The value of one file's source: from the cache when confirmed within `maxAgeMs`, else read
   * (shared with concurrent requests, batched with others). Throws the {@link BackendError}, a
   * {@link PropertyError} or {@link UnknownBackendError} — unless a stale document may stand in.
   */
  async resolve(request: ResolveRequest, options: ResolveOptions): Promise<Resolution> {
    const state = this.#state(request.backendId);
    const entry = this.#entry(state, request.ref);
    const now = this.#clock.now();
    const provider = { provider: state.channel.provider };
    if (entry.doc !== undefined && this.#isFresh(entry, options.maxAgeMs, now)) {
      this.#metrics.cacheHits.inc(provider);
      return this.#resolution(entry, entry.doc, request.property, false);
    }
    let error: BackendError | undefined;
    const held = this.#held(entry, options.maxAgeMs, now);
    if (held !== undefined && entry.fetching === undefined) {
      // A failure within its hold time is the answer: asking again now would only hammer the store.
      error = held;
    } else {
      this.#metrics.cacheMisses.inc(provider);
      error = await abortable(this.#refresh(state, entry), options.signal);
    }
    if (error === undefined && entry.doc !== undefined) return this.#resolution(entry, entry.doc, request.property, false);
    const failure = error ?? entry.failure?.error;
    if (failure === undefined) throw new Error('resolver: entry has neither a document nor an error');
    const lkg = entry.doc;
    if (
      lkg !== undefined &&
      options.serveStaleUpToMs !== undefined &&
      staleEligible.has(failure.kind) &&
      this.#clock.now() - entry.confirmedAt <= options.serveStaleUpToMs
    ) {
      this.#metrics.staleServed.inc(provider);
      return this.#resolution(entry, lkg, request.property, failure);
    }
    throw failure;
  }

  /** Resolves many requests at once (so they batch); one outcome per request, in order. */
  async resolveAll(requests: readonly ResolveRequest[], options: ResolveOptions): Promise<ResolveOutcome[]> {
    return Promise.all(
      requests.map(async (request): Promise<ResolveOutcome> => {
        try {
          return { ok: true, request, resolution: await this.resolve(request, options) };
        } catch (err) {
          return { ok: false, request, error: err instanceof Error ? err : new Error('resolve failed') };
        }
      }),
    );
  }

  /**
   * Version polling: the current version of each reference through the providers' cheap
   * `versions()`, reading a value only for an entry that is new or whose version changed (and
   * always for unversioned stores, compared by keyed HMAC). An entry confirmed within `maxAgeMs`
   * is answered from memory, and concurrent checks of one entry share one call, so many bindings
   * polling the same secret cost one check per interval.
   */
  async checkVersions(
    backendId: string,
    refs: readonly SecretRef[],
    options: { readonly maxAgeMs: number; readonly signal?: AbortSignal | undefined },
  ): Promise<VersionCheck[]> {
    const state = this.#state(backendId);
    return Promise.all(
      refs.map(async (ref): Promise<VersionCheck> => {
        const entry = this.#entry(state, ref);
        const now = this.#clock.now();
        if (entry.doc !== undefined && entry.version !== undefined && this.#isFresh(entry, options.maxAgeMs, now)) {
          return { ok: true, ref, version: entry.version, previousVersion: entry.version, changed: false };
        }
        const held = this.#held(entry, options.maxAgeMs, now);
        if (held !== undefined && entry.fetching === undefined && entry.checking === undefined) {
          return { ok: false, ref, error: held };
        }
        if (entry.checking === undefined) {
          const checking = this.#check(state, entry);
          entry.checking = checking;
          void checking.finally(() => {
            if (entry.checking === checking) entry.checking = undefined;
          });
        }
        return abortable(entry.checking, options.signal);
      }),
    );
  }

  /** The last good document of an entry and its age, whatever happened since. */
  lastKnownGood(backendId: string, ref: SecretRef): LastKnownGood | undefined {
    const entry = this.#backends.get(backendId)?.entries.get(refId(ref));
    if (entry?.doc === undefined || entry.version === undefined) return undefined;
    return { secret: entry.doc, version: entry.version, ageMs: this.#clock.now() - entry.confirmedAt };
  }

  /**
   * Makes the next request of the backend's entries (or of one key) read again (e.g. a user's
   * `refresh`, or a change notice: `source` = `event`); the documents stay as last-known-good,
   * failure holds are lifted. A change found by the next check is counted under `source`.
   */
  invalidate(backendId: string, key?: string, source: DetectionSource = 'poll'): void {
    const state = this.#backends.get(backendId);
    if (state === undefined) return;
    for (const entry of state.entries.values()) {
      if (key !== undefined && entry.ref.key !== key) continue;
      entry.confirmedAt = Number.NEGATIVE_INFINITY;
      entry.failure = undefined;
      if (source === 'event') entry.noticed = true;
    }
  }

  /** Drops entries no request has used for `idleMs`; the owner calls it now and then. */
  sweep(idleMs: number): number {
    const cutoff = this.#clock.now() - idleMs;
    let dropped = 0;
    for (const state of this.#backends.values()) {
      for (const [id, entry] of state.entries) {
        if (entry.lastUsedAt < cutoff && entry.fetching === undefined && entry.checking === undefined) {
          state.entries.delete(id);
          dropped++;
        }
      }
    }
    return dropped;
  }

  /** Entries held in memory (for tests and a gauge). */
  get size(): number {
    let n = 0;
    for (const state of this.#backends.values()) n += state.entries.size;
    return n;
  }

  // --- internals --------------------------------------------------------------------------

  #state(backendId: string): BackendState {
    const state = this.#backends.get(backendId);
    if (state === undefined) throw new UnknownBackendError(`backend ${backendId} is not registered`);
    return state;
  }

  #entry(state: BackendState, ref: SecretRef): Entry {
    const id = refId(ref);
    let entry = state.entries.get(id);
    if (entry === undefined) {
      entry = {
        ref,
        doc: undefined,
        version: undefined,
        confirmedAt: Number.NEGATIVE_INFINITY,
        failure: undefined,
        fetching: undefined,
        checking: undefined,
        lastUsedAt: 0,
        noticed: false,
      };
      state.entries.set(id, entry);
    }
    entry.lastUsedAt = this.#clock.now();
    return entry;
  }

  #isFresh(entry: Entry, maxAgeMs: number, now: number): boolean {
    // A pinned version never changes, so its document never goes out of date.
    return entry.ref.version.kind === 'id' || now - entry.confirmedAt <= maxAgeMs;
  }

  /** Reads the entry (one read shared by all who ask meanwhile); resolves to the error, if any. */
  #refresh(state: BackendState, entry: Entry): Promise<BackendError | undefined> {
    if (entry.fetching !== undefined) return entry.fetching;
    const fetching = state.channel.fetch(entry.ref).then((outcome) => {
      const now = this.#clock.now();
      if (outcome.ok) {
        const previous = entry.version;
        entry.doc = outcome.secret;
        entry.version = this.#versionOf(outcome.secret);
        if (previous !== undefined && previous !== entry.version) {
          this.#metrics.changesDetected.inc({ provider: state.channel.provider, source: entry.noticed ? 'event' : 'poll' });
        }
        entry.noticed = false;
        entry.confirmedAt = now;
        entry.failure = undefined;
        return undefined;
      }
      this.#recordFailure(entry, outcome.error, now);
      return outcome.error;
    });
    entry.fetching = fetching;
    void fetching.finally(() => {
      if (entry.fetching === fetching) entry.fetching = undefined;
    });
    return fetching;
  }

  async #check(state: BackendState, entry: Entry): Promise<VersionCheck> {
    const ref = entry.ref;
    const previousVersion = entry.version;
    const reread = async (): Promise<VersionCheck> => {
      const error = await this.#refresh(state, entry);
      if (error !== undefined || entry.version === undefined) {
        return { ok: false, ref, error: error ?? entry.failure?.error ?? missingDocument() };
      }
      return { ok: true, ref, version: entry.version, previousVersion, changed: previousVersion !== undefined && entry.version !== previousVersion };
    };
    if (entry.doc === undefined) {
      const result = await reread();
      return result.ok ? { ...result, changed: true } : result;
    }
    const outcome = await state.channel.versions(ref);
    const now = this.#clock.now();
    if (!outcome.ok) {
      this.#recordFailure(entry, outcome.error, now);
      return { ok: false, ref, error: outcome.error };
    }
    // Unversioned stores say nothing about change: read again and compare the keyed HMAC.
    if (outcome.version === unversioned || outcome.version !== entry.doc.version) return reread();
    entry.confirmedAt = now;
    entry.failure = undefined;
    entry.noticed = false;
    return { ok: true, ref, version: entry.version ?? outcome.version, previousVersion, changed: false };
  }

  #recordFailure(entry: Entry, error: BackendError, now: number): void {
    const count = (entry.failure?.count ?? 0) + 1;
    const hold = backoffDelay(count, { ...this.#failureHold, jitter: 0.2, random: this.#random });
    entry.failure = { error, count, at: now, holdUntil: now + hold };
  }

  /**
   * The error of a failed entry that is still held: within its growing hold time, but never longer than the
   * asker's refresh interval since the failure — so a recovered backend is seen within one
   * interval, and an outage still costs at most one attempt per interval (ADR 0106).
   */
  #held(entry: Entry, maxAgeMs: number, now: number): BackendError | undefined {
    const failure = entry.failure;
    return failure !== undefined && now < Math.min(failure.holdUntil, failure.at + maxAgeMs) ? failure.error : undefined;
  }

  #versionOf(secret: FetchedSecret): string {
    if (secret.version !== unversioned) return secret.version;
    return contentHmac(this.#contentKey, [{ path: secret.ref.key, content: secret.value }]);
  }

  #resolution(entry: Entry, doc: FetchedSecret, property: string | undefined, staleCause: BackendError | false): Resolution {
    const base: ResolvedValue = {
      value: extractProperty(doc, property),
      version: entry.version ?? doc.version,
      encoding: doc.encoding,
      ageMs: this.#clock.now() - entry.confirmedAt,
    };
    return staleCause === false ? { ...base, stale: false } : { ...base, stale: true, cause: staleCause };
  }
}

function missingDocument(): BackendError {
  return new UnavailableError('backend returned no document');
}

/** Waits for `work` unless `signal` aborts first (the work goes on for others). */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error('resolver work failed'));
      },
    );
  });
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}
