/** What a reconcile asks of the queue when it returns (returning means "converged for now"). */
export interface ReconcileResult {
  /** Reconcile this key again after this many milliseconds (e.g. a refresh interval). */
  readonly requeueAfterMs?: number;
}

export interface ReconcileContext {
  /** Aborted when the controller is stopping and its drain deadline has passed. */
  readonly signal: AbortSignal;
}

/**
 * The reconciler contract (controller-runtime's): given a key (`namespace/name` or `name`),
 * re-read the object and what it depends on from the caches, and converge.
 * - return → done (optionally requeue after a delay);
 * - throw → retried with per-key exponential backoff ({@link RetryError}: no later than its bound);
 * - throw {@link TerminalError} → recorded, not retried (it will not succeed until the input changes,
 *   and a change of the input enqueues the key again).
 */
export interface Reconciler {
  reconcile(key: string, context: ReconcileContext): Promise<ReconcileResult>;
}

/**
 * A failure that retrying cannot fix (invalid configuration, a permanent refusal). `reason` should
 * come from the domain's closed list of reasons; it becomes a metric label, so it must never carry
 * a name, a path or a value.
 */
export class TerminalError extends Error {
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
    this.reason = reason;
  }
}

/**
 * A transient failure retried with the key's backoff, but never later than `withinMs`: for work
 * that has its own schedule (a binding polled every refresh interval must see its backend back
 * within that interval, however long the outage made the backoff). `reason` as for TerminalError.
 */
export class RetryError extends Error {
  readonly reason: string;
  readonly withinMs: number;

  constructor(reason: string, message: string, withinMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetryError';
    this.reason = reason;
    this.withinMs = withinMs;
  }
}

/** The `reason` of an error if it carries one (our error classes do), else undefined. */
export function reasonOf(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'reason' in error) {
    const reason = error.reason;
    if (typeof reason === 'string') return reason;
  }
  return undefined;
}
