/**
 * Something the manager runs for the life of the process (informers, controllers, servers).
 * `start` runs until `signal` aborts, then cleans up and resolves; a rejection is fatal to the
 * manager (it stops everything and reports the error).
 */
export interface Runnable {
  readonly name: string;
  /**
   * true: runs only while this replica holds the leader lease (anything that writes to the API
   * server or polls backends); false: runs on every replica (caches, servers).
   */
  readonly needLeaderElection: boolean;
  start(signal: AbortSignal): Promise<void>;
}

/** What `/readyz` asks of a cache: has it listed once, and how old is its newest evidence. */
export interface SyncStatus {
  readonly name: string;
  hasSynced(): boolean;
  /** Milliseconds since the last successful list, watch start, event or bookmark (Infinity before the first). */
  staleness(): number;
}

/**
 * The abort reason given to leader-only runnables when the lease was lost: another replica may
 * already be writing, so stop at once, without draining queued work.
 */
export class LeadershipLostError extends Error {
  constructor() {
    super('leadership lost');
    this.name = 'LeadershipLostError';
  }
}

/** True if `signal` was aborted because leadership was lost (see {@link LeadershipLostError}). */
export function leadershipLost(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof LeadershipLostError;
}
