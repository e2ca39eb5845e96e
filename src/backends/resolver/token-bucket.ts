import { sleep, type Clock } from '../../runtime/clock.ts';

/**
 * A token bucket with weighted takes and a pause, on an injected clock (ADR 0055).
 *
 * `qps` tokens per second refill a bucket of `burst`; a take of `cost` tokens reserves them at
 * once (the level may go negative) and waits until the debt is repaid, so waiters are served in
 * order and spaced evenly at the rate. {@link TokenBucket.pauseUntil} stops every take until a
 * time (a throttle or retry-after) and empties the bucket, so the calls after a pause resume at
 * the sustained rate rather than in a burst.
 */
export class TokenBucket {
  readonly #clock: Clock;
  #perMs: number;
  #burst: number;
  #tokens = 0;
  /** Time up to which the level has been refilled; may lie in the future during a pause. */
  #last: number;
  #notBefore: number;

  constructor(options: { readonly qps: number; readonly burst: number; readonly clock: Clock }) {
    this.#clock = options.clock;
    this.#perMs = 0;
    this.#burst = 0;
    this.setRate(options.qps, options.burst);
    this.#tokens = this.#burst;
    this.#last = options.clock.now();
    this.#notBefore = this.#last;
  }

  /** Changes the rate; the current level is kept (capped at the new burst). */
  setRate(qps: number, burst: number): void {
    if (!(qps > 0) || !(burst >= 1)) throw new RangeError(`invalid rate: ${qps}/s, burst ${burst}`);
    this.#perMs = qps / 1000;
    this.#burst = burst;
    this.#tokens = Math.min(this.#tokens, burst);
  }

  /** The time before which no take completes (0 when not paused). */
  get pausedUntil(): number {
    return this.#notBefore > this.#clock.now() ? this.#notBefore : 0;
  }

  /** Stops takes until `until` (clock ms) and empties the bucket; an earlier pause is extended only. */
  pauseUntil(until: number): void {
    if (until <= this.#notBefore) return;
    this.#refill();
    this.#notBefore = until;
    this.#tokens = Math.min(this.#tokens, 0);
    this.#last = Math.max(this.#last, until);
  }

  /**
   * Waits for a pause to end and for `cost` tokens. Resolves true when the tokens are taken,
   * false if `signal` aborted first (the reserved tokens are not refunded).
   */
  async take(cost: number, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      const now = this.#clock.now();
      if (now < this.#notBefore) {
        if (!(await sleep(this.#clock, this.#notBefore - now, signal))) return false;
        continue;
      }
      this.#refill();
      this.#tokens -= cost;
      const wait = this.#tokens >= 0 ? 0 : -this.#tokens / this.#perMs;
      if (wait > 0 && !(await sleep(this.#clock, wait, signal))) return false;
      // A pause that began while this take waited holds it too: the reservation was made for a
      // time that is now inside the pause, so it waits for the pause and reserves afresh.
      if (this.#clock.now() < this.#notBefore) continue;
      return true;
    }
  }

  #refill(): void {
    const now = this.#clock.now();
    if (now > this.#last) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#perMs);
      this.#last = now;
    }
  }
}
