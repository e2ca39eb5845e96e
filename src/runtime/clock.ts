/** An opaque timer handle returned by {@link Clock.setTimeout}. */
export interface TimerHandle {
  readonly _timer: unknown;
}

/**
 * Time and timers, injected everywhere the runtime waits, so unit tests can drive time
 * (see `fake-clock.ts`) instead of sleeping.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale (not wall-clock time). */
  now(): number;
  /** Wall-clock time, for timestamps written to the API server (Lease renewTime). */
  wallNow(): Date;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The process clock: `performance.now()` and Node timers. Timers keep the process alive (a runtime
 * waiting for its next retry is still working); every wait is cancelled when its owner stops.
 */
export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => new Date(),
  setTimeout: (callback, ms) => {
    return { _timer: setTimeout(callback, Math.max(0, ms)) };
  },
  clearTimeout: (handle) => {
    clearTimeout(handle._timer as NodeJS.Timeout);
  },
};

/**
 * Resolves after `ms` on `clock`, or as soon as `signal` aborts (never rejects).
 * Returns true if the full time elapsed, false if it was cut short by the signal.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      resolve(false);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A source of randomness in [0, 1), injected for deterministic jitter in tests. */
export type Random = () => number;
