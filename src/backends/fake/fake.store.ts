import { createHmac } from 'node:crypto';
import type { Clock } from '../../runtime/clock.ts';
import { sleep } from '../../runtime/clock.ts';
import {
  AuthFailedError,
  InvalidConfigError,
  NotFoundError,
  ThrottledError,
  UnavailableError,
  unversioned,
  type BackendError,
  type FetchOutcome,
  type SecretRef,
  type VersionOutcome,
} from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';

/**
 * The in-memory secret store behind the `fake` provider, for unit tests and demos (ADR 0054).
 *
 * Two kinds of keys:
 * - **set** keys, written by tests with {@link FakeSecretStore.set}; every write is a new version
 *   ("1", "2", ...), all kept;
 * - **generated** keys, declared by a backend's `fake` block: their values are derived in memory
 *   from a seed, the key, the field and the version (HMAC-SHA256), and a new version starts every
 *   `rotationPeriod`, counted from the Unix epoch, so every controller replica derives the same
 *   values and versions and nothing is ever stored in the cluster.
 *
 * Tests steer it: failures (outage, throttling, auth), a hold that parks calls, a latency, and
 * counters of calls and of values read.
 */

export type FakeOperation = 'fetch' | 'versions' | 'connectivity';
export type FakeEncoding = 'json' | 'text' | 'binary';

/** A simulated failure; see {@link FakeSecretStore.failWith}. */
export interface FakeFailure {
  readonly kind: 'Throttled' | 'Unavailable' | 'AuthFailed';
  /** For Throttled: the retry-after hint the store gives. */
  readonly retryAfterMs?: number;
  /** Fail this many calls (or references, with `keys`), then recover. Forever when absent. */
  readonly times?: number;
  /** Which operations fail; all when absent. */
  readonly operations?: readonly FakeOperation[];
  /** Only these keys fail, each as a per-reference outcome; the call as a whole succeeds. */
  readonly keys?: readonly string[];
}

export interface GeneratedKey {
  readonly key: string;
  /** Makes the document a JSON object with these fields; a single string without. */
  readonly fields?: readonly string[];
}

export interface GeneratedKeys {
  readonly seed: string;
  readonly keys: readonly GeneratedKey[];
  /** A new version of every key each period (ms); version "1" forever when absent. */
  readonly rotationPeriodMs?: number;
}

export interface FakeCall {
  readonly operation: FakeOperation;
  /** `clock.now()` when the call reached the store. */
  readonly at: number;
  /** The keys the call named (never values). */
  readonly keys: readonly string[];
}

interface StoredVersion {
  readonly value: SecretValue;
  readonly encoding: FakeEncoding;
}

interface Resolved {
  readonly version: string;
  readonly value: () => { readonly value: SecretValue; readonly encoding: FakeEncoding };
}

export interface FakeStoreOptions {
  readonly clock: Clock;
  readonly generated?: GeneratedKeys;
  /**
   * Behave like a store without versions (Vault KV v1): every document reports the version
   * `unversioned`, and pinned versions are refused.
   */
  readonly unversioned?: boolean;
}

export class FakeSecretStore {
  readonly #clock: Clock;
  readonly #set = new Map<string, StoredVersion[]>();
  readonly #generated: Map<string, GeneratedKey>;
  readonly #seed: string;
  readonly #rotationPeriodMs: number | undefined;
  readonly #unversioned: boolean;
  readonly #readsByKey = new Map<string, number>();
  #failure: (FakeFailure & { remaining: number }) | undefined;
  #hold: { promise: Promise<void>; release: () => void } | undefined;

  /** Virtual time each call takes (on the store's clock). */
  latencyMs = 0;

  /** Counters for tests; values read are counted per reference. */
  readonly stats = {
    fetchCalls: 0,
    versionCalls: 0,
    connectivityCalls: 0,
    /** References whose value was returned by `fetch`. */
    reads: 0,
    /** References whose version was reported by `versions`. */
    versionChecks: 0,
    inFlight: 0,
    maxInFlight: 0,
  };

  /** Every call that reached the store, in order. */
  readonly calls: FakeCall[] = [];

  constructor(options: FakeStoreOptions) {
    this.#clock = options.clock;
    this.#generated = new Map((options.generated?.keys ?? []).map((k) => [k.key, k]));
    this.#seed = options.generated?.seed ?? '';
    this.#rotationPeriodMs = options.generated?.rotationPeriodMs;
    this.#unversioned = options.unversioned ?? false;
  }

  // --- data -------------------------------------------------------------------------------

  /** Writes a new version of `key`; returns its version id. */
  set(key: string, value: string | Uint8Array | SecretValue, encoding: FakeEncoding = 'text'): string {
    const secret =
      value instanceof SecretValue ? value : typeof value === 'string' ? SecretValue.fromString(value) : SecretValue.fromBytes(value);
    const history = this.#set.get(key) ?? [];
    history.push({ value: secret, encoding });
    this.#set.set(key, history);
    return String(history.length);
  }

  /** Writes a JSON document as a new version of `key`. */
  setJson(key: string, document: Readonly<Record<string, unknown>>): string {
    return this.set(key, JSON.stringify(document), 'json');
  }

  /** Removes `key` and its history (set keys only). */
  delete(key: string): void {
    this.#set.delete(key);
  }

  /** How many times `fetch` returned a value of `key`. */
  readsOf(key: string): number {
    return this.#readsByKey.get(key) ?? 0;
  }

  // --- steering ---------------------------------------------------------------------------

  /** Makes calls fail as described until {@link FakeSecretStore.recover} (or `times` runs out). */
  failWith(failure: FakeFailure): void {
    this.#failure = { ...failure, remaining: failure.times ?? Number.POSITIVE_INFINITY };
  }

  recover(): void {
    this.#failure = undefined;
  }

  /** Parks every call that arrives until the returned function is called. */
  hold(): () => void {
    if (this.#hold === undefined) {
      let release!: () => void;
      const promise = new Promise<void>((resolve) => {
        release = resolve;
      });
      this.#hold = { promise, release };
    }
    const hold = this.#hold;
    return () => {
      if (this.#hold === hold) this.#hold = undefined;
      hold.release();
    };
  }

  // --- the operations the backend adapter exposes -----------------------------------------

  async fetch(refs: readonly SecretRef[], signal: AbortSignal): Promise<FetchOutcome[]> {
    this.stats.fetchCalls++;
    return this.#call<FetchOutcome>('fetch', refs, signal, failedRef, (ref) => {
      const resolved = this.#resolve(ref);
      if (!resolved.ok) return { ok: false, ref, error: resolved.error };
      const { value, encoding } = resolved.entry.value();
      this.stats.reads++;
      this.#readsByKey.set(ref.key, this.readsOf(ref.key) + 1);
      return { ok: true, secret: { ref, value, version: resolved.entry.version, encoding } };
    });
  }

  async versions(refs: readonly SecretRef[], signal: AbortSignal): Promise<VersionOutcome[]> {
    this.stats.versionCalls++;
    return this.#call<VersionOutcome>('versions', refs, signal, failedRef, (ref) => {
      const resolved = this.#resolve(ref);
      if (!resolved.ok) return { ok: false, ref, error: resolved.error };
      this.stats.versionChecks++;
      return { ok: true, ref, version: resolved.entry.version };
    });
  }

  async checkConnectivity(signal: AbortSignal): Promise<void> {
    this.stats.connectivityCalls++;
    await this.#call('connectivity', [], signal, () => undefined, () => undefined);
  }

  async #call<T>(
    operation: FakeOperation,
    refs: readonly SecretRef[],
    signal: AbortSignal,
    failed: (ref: SecretRef, error: BackendError) => T,
    each: (ref: SecretRef) => T,
  ): Promise<T[]> {
    this.calls.push({ operation, at: this.#clock.now(), keys: refs.map((r) => r.key) });
    this.stats.inFlight++;
    this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.stats.inFlight);
    try {
      if (this.#hold !== undefined) await waitOrAbort(this.#hold.promise, signal);
      if (this.latencyMs > 0 && !(await sleep(this.#clock, this.latencyMs, signal))) throw abortedError();
      if (signal.aborted) throw abortedError();
      const failure = this.#failure;
      if (failure !== undefined && (failure.operations?.includes(operation) ?? true)) {
        if (failure.keys === undefined) {
          this.#consumeFailure();
          throw failureError(failure);
        }
        const failing = new Set(failure.keys);
        return refs.map((ref) => {
          if (failing.has(ref.key) && this.#failure === failure) {
            this.#consumeFailure();
            return failed(ref, failureError(failure));
          }
          return each(ref);
        });
      }
      return refs.map(each);
    } finally {
      this.stats.inFlight--;
    }
  }

  #consumeFailure(): void {
    const failure = this.#failure;
    if (failure === undefined) return;
    failure.remaining--;
    if (failure.remaining <= 0) this.#failure = undefined;
  }

  #resolve(ref: SecretRef): { ok: true; entry: Resolved } | { ok: false; error: BackendError } {
    const versions = this.#versionsOf(ref.key);
    if (versions === undefined) return { ok: false, error: new NotFoundError(`fake: no secret ${ref.key}`) };
    const latest = versions.count;
    if (this.#unversioned) {
      if (ref.version.kind !== 'latest') {
        return { ok: false, error: new InvalidConfigError('fake: an unversioned store has no version pins or stages') };
      }
      return { ok: true, entry: { version: unversioned, value: () => versions.value(latest) } };
    }
    let n: number;
    switch (ref.version.kind) {
      case 'latest':
        n = latest;
        break;
      case 'id':
        n = /^[1-9][0-9]*$/.test(ref.version.id) ? Number(ref.version.id) : Number.NaN;
        break;
      case 'stage':
        // The AWS staging labels, so stage semantics can be tested without AWS.
        if (ref.version.stage === 'AWSCURRENT') n = latest;
        else if (ref.version.stage === 'AWSPREVIOUS') n = latest - 1;
        else return { ok: false, error: new InvalidConfigError(`fake: unknown stage ${ref.version.stage}`) };
        break;
    }
    if (!Number.isSafeInteger(n) || n < 1 || n > latest) {
      return { ok: false, error: new NotFoundError(`fake: secret ${ref.key} has no such version`) };
    }
    return { ok: true, entry: { version: String(n), value: () => versions.value(n) } };
  }

  #versionsOf(
    key: string,
  ): { count: number; value: (n: number) => { value: SecretValue; encoding: FakeEncoding } } | undefined {
    const history = this.#set.get(key);
    if (history !== undefined && history.length > 0) {
      return {
        count: history.length,
        value: (n) => history[n - 1] ?? { value: SecretValue.fromString(''), encoding: 'text' },
      };
    }
    const generated = this.#generated.get(key);
    if (generated === undefined) return undefined;
    const period = this.#rotationPeriodMs;
    const count = period === undefined ? 1 : 1 + Math.floor(this.#clock.wallNow().getTime() / period);
    return { count, value: (n) => this.#generate(generated, n) };
  }

  #generate(key: GeneratedKey, version: number): { value: SecretValue; encoding: FakeEncoding } {
    const derive = (field: string): string =>
      createHmac('sha256', this.#seed).update(`${key.key}\0${field}\0${version}`).digest('base64url').slice(0, 24);
    if (key.fields === undefined || key.fields.length === 0) {
      return { value: SecretValue.fromString(derive('')), encoding: 'text' };
    }
    const document = Object.fromEntries(key.fields.map((field) => [field, derive(field)]));
    return { value: SecretValue.fromString(JSON.stringify(document)), encoding: 'json' };
  }
}

function failedRef(ref: SecretRef, error: BackendError): { ok: false; ref: SecretRef; error: BackendError } {
  return { ok: false, ref, error };
}

function failureError(failure: FakeFailure): BackendError {
  switch (failure.kind) {
    case 'Throttled':
      return new ThrottledError('fake: rate exceeded', failure.retryAfterMs);
    case 'Unavailable':
      return new UnavailableError('fake: backend unavailable');
    case 'AuthFailed':
      return new AuthFailedError('fake: authentication failed');
  }
}

function abortedError(): UnavailableError {
  return new UnavailableError('fake: call aborted');
}

function waitOrAbort(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortedError());
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortedError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
