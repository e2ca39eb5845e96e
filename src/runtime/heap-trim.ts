import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sleep, type Clock } from './clock.ts';
import type { RuntimeLogger } from './logger.ts';
import type { Runnable } from './runnable.ts';

export interface HeapTrimOptions {
  readonly clock: Clock;
  readonly logger: RuntimeLogger;
  /** How often the process looks. Default 5 s. */
  readonly intervalMs?: number;
  /** Busiest event loop (share of the last interval) still counted as quiet. Default 0.05. */
  readonly maxUtilization?: number;
  /** RSS growth over the lowest reading since the last trim that is worth a trim. Default 32 MiB. */
  readonly minGrowthBytes?: number;
}

/** One reading of the process: how busy the last interval was, and its RSS now. */
export interface HeapTrimReading {
  readonly utilization: number;
  readonly rssBytes: number;
}

/**
 * Whether to trim now: the process was quiet over the last interval and its RSS stands at least
 * `minGrowthBytes` above its floor (the lowest RSS since the last trim). Pure, for tests.
 */
export function shouldTrim(reading: HeapTrimReading, floorBytes: number, options: { readonly maxUtilization: number; readonly minGrowthBytes: number }): boolean {
  return reading.utilization <= options.maxUtilization && reading.rssBytes - floorBytes >= options.minGrowthBytes;
}

type GcFunction = (options: { type: 'major'; execution: 'async'; flavor: 'last-resort' }) => Promise<void>;

/**
 * Gives memory back after a burst (ADR 0209). V8 keeps the pages a large heap shrank from in a
 * pool and returns them to the system only on a memory-reducing collection, which a busy-then-idle
 * controller rarely gets: after 5,000 bindings synced, its RSS stayed ~60 MiB above what a
 * last-resort collection leaves. When the event loop has been quiet for an interval and RSS stands
 * well above its floor, this runs one such collection (asynchronously, on a task of its own). At
 * most one per interval, and only after growth: an idle process is never collected again and again.
 * For the process entry points only (it exposes `gc` inside V8): never in a shared test process.
 */
export function heapTrimmer(options: HeapTrimOptions): Runnable {
  const intervalMs = options.intervalMs ?? 5_000;
  const limits = { maxUtilization: options.maxUtilization ?? 0.05, minGrowthBytes: options.minGrowthBytes ?? 32 * 2 ** 20 };
  return {
    name: 'heap-trim',
    needLeaderElection: false,
    start: async (signal) => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as GcFunction;
      let floor = process.memoryUsage.rss();
      let mark = performance.eventLoopUtilization();
      while (await sleep(options.clock, intervalMs, signal)) {
        const now = performance.eventLoopUtilization();
        const reading = { utilization: performance.eventLoopUtilization(now, mark).utilization, rssBytes: process.memoryUsage.rss() };
        mark = now;
        floor = Math.min(floor, reading.rssBytes);
        if (!shouldTrim(reading, floor, limits)) continue;
        await gc({ type: 'major', execution: 'async', flavor: 'last-resort' });
        floor = process.memoryUsage.rss();
        options.logger.info('heap trimmed', { rssBeforeMiB: Math.round(reading.rssBytes / 2 ** 20), rssAfterMiB: Math.round(floor / 2 ** 20) });
        mark = performance.eventLoopUtilization();
      }
    },
  };
}
