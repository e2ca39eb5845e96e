import { setImmediate as immediate } from 'node:timers/promises';
import type { Clock, TimerHandle } from './clock.ts';

interface FakeTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/**
 * A {@link Clock} for unit tests: time moves only when the test calls {@link FakeClock.advance}.
 * Timers fire in due order, and pending promise callbacks run between timers, so code that awaits
 * after a timer behaves as it would in real time, without real sleeping.
 */
export class FakeClock implements Clock {
  #now: number;
  #wallBase: number;
  #nextId = 1;
  #timers: FakeTimer[] = [];

  constructor(start = 1_000_000, wallStart = Date.UTC(2030, 0, 1)) {
    this.#now = start;
    this.#wallBase = wallStart - start;
  }

  now(): number {
    return this.#now;
  }

  wallNow(): Date {
    return new Date(this.#wallBase + this.#now);
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer: FakeTimer = { id: this.#nextId++, at: this.#now + Math.max(0, ms), callback };
    this.#timers.push(timer);
    return { _timer: timer.id };
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle._timer);
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Runs every pending promise callback (and what they schedule) without moving time. */
  async flush(): Promise<void> {
    for (let i = 0; i < 5; i++) await immediate();
  }

  /** Moves time forward by `ms`, firing due timers in order and settling promises after each. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await this.flush();
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.callback();
      await this.flush();
    }
    this.#now = target;
    await this.flush();
  }
}
