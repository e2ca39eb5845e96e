import type { Clock } from '../../runtime/clock.ts';

/**
 * How many inputs a change-notice source parses per second, with a burst of one second's worth.
 * Inputs over it are dropped unparsed (and counted): polling covers what they might have said, and
 * a flood costs the controller no more than this. Synchronous on purpose — a source never waits.
 */
export class InputBudget {
  readonly #clock: Clock;
  readonly #perSecond: number;
  #tokens: number;
  #refilledAt: number;

  constructor(perSecond: number, clock: Clock) {
    this.#clock = clock;
    this.#perSecond = perSecond;
    this.#tokens = perSecond;
    this.#refilledAt = clock.now();
  }

  /** Takes one input's token; false when the budget is spent. */
  take(): boolean {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#perSecond, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#perSecond);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
