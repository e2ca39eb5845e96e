import type { Clock, Random } from './clock.ts';

/** Decides how long a key waits before its next retry. */
export interface RateLimiter {
  /** The delay for the next retry of `key` (counts as one more failure of `key`). */
  when(key: string): number;
  /** Clears the failure history of `key` (after a success). */
  forget(key: string): void;
  /** Failures recorded for `key` since the last {@link RateLimiter.forget}. */
  failures(key: string): number;
}

export interface ExponentialBackoffOptions {
  /** Delay after the first failure. */
  readonly baseMs: number;
  /** Upper bound of any delay. */
  readonly capMs: number;
  /**
   * 0 (default) for exact delays; f in (0, 1] draws each delay uniformly from
   * [d·(1−f), d], so jitter spreads retries without ever exceeding the cap.
   */
  readonly jitter?: number;
  readonly random?: Random;
}

/** The delay for the n-th consecutive failure (n ≥ 1): base·2^(n−1), capped, optionally jittered. */
export function backoffDelay(failures: number, options: ExponentialBackoffOptions): number {
  const exponent = Math.max(0, failures - 1);
  // 2^exponent overflows to Infinity long before it matters; min() handles that.
  const exact = Math.min(options.capMs, options.baseMs * 2 ** Math.min(exponent, 1024));
  const jitter = options.jitter ?? 0;
  if (jitter <= 0) return exact;
  const random = options.random ?? Math.random;
  return exact * (1 - Math.min(1, jitter) * random());
}

/** Per-key exponential backoff: each failure of a key doubles its delay up to the cap. */
export class ExponentialBackoffLimiter implements RateLimiter {
  readonly #options: ExponentialBackoffOptions;
  readonly #failures = new Map<string, number>();

  constructor(options: ExponentialBackoffOptions) {
    if (options.baseMs <= 0 || options.capMs < options.baseMs) {
      throw new Error(`invalid backoff: base ${options.baseMs} ms, cap ${options.capMs} ms`);
    }
    this.#options = options;
  }

  when(key: string): number {
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    return backoffDelay(failures, this.#options);
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }
}

export interface TokenBucketOptions {
  /** Sustained rate, in retries per second. */
  readonly perSecond: number;
  /** Retries allowed at once before the rate applies. */
  readonly burst: number;
  readonly clock: Clock;
}

/**
 * A global token bucket shared by all keys: every retry takes a token; when none is left, the
 * retry is scheduled for when one will be (reservations may run the bucket negative, so delays
 * are spaced evenly at `perSecond`).
 */
export class TokenBucketLimiter implements RateLimiter {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(options: TokenBucketOptions) {
    if (options.perSecond <= 0 || options.burst < 1) {
      throw new Error(`invalid token bucket: ${options.perSecond}/s, burst ${options.burst}`);
    }
    this.#perMs = options.perSecond / 1000;
    this.#burst = options.burst;
    this.#clock = options.clock;
    this.#tokens = options.burst;
    this.#last = options.clock.now();
  }

  when(_key: string): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#perMs);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : -this.#tokens / this.#perMs;
  }

  forget(_key: string): void {
    // Global budget: a key's success does not refund tokens.
  }

  failures(_key: string): number {
    return 0;
  }
}

/** The longest delay of several limiters (per-key backoff AND the global bucket must agree). */
export class MaxOfLimiter implements RateLimiter {
  readonly #limiters: readonly RateLimiter[];

  constructor(limiters: readonly RateLimiter[]) {
    this.#limiters = limiters;
  }

  when(key: string): number {
    return Math.max(0, ...this.#limiters.map((l) => l.when(key)));
  }

  forget(key: string): void {
    for (const l of this.#limiters) l.forget(key);
  }

  failures(key: string): number {
    return Math.max(0, ...this.#limiters.map((l) => l.failures(key)));
  }
}

export interface DefaultRateLimiterOptions {
  readonly clock: Clock;
  readonly backoff?: Partial<ExponentialBackoffOptions>;
  readonly bucket?: { readonly perSecond: number; readonly burst: number };
}

/**
 * The controller default: per-key backoff 50 ms → 5 min with 10 % jitter, and a global bucket of
 * 10 retries/s, burst 100 (the bucket limits retries only, never first attempts).
 */
export function defaultRateLimiter(options: DefaultRateLimiterOptions): RateLimiter {
  return new MaxOfLimiter([
    new ExponentialBackoffLimiter({ baseMs: 50, capMs: 300_000, jitter: 0.1, ...options.backoff }),
    new TokenBucketLimiter({ perSecond: 10, burst: 100, ...options.bucket, clock: options.clock }),
  ]);
}
