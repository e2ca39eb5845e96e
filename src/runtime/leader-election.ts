import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { realClock, sleep, type Clock, type Random } from './clock.ts';
import { describeError, silentLogger, type RuntimeLogger } from './logger.ts';
import { LeadershipLostError } from './runnable.ts';

/** The leader record held in a Lease's spec. */
export interface LeaderRecord {
  /** Empty or undefined: nobody holds it (released). */
  readonly holderIdentity: string | undefined;
  readonly leaseDurationSeconds: number;
  readonly acquireTime: Date | undefined;
  readonly renewTime: Date | undefined;
  readonly leaseTransitions: number;
}

/** A record as read from the store, with the version used for optimistic concurrency. */
export interface ObservedLease {
  readonly record: LeaderRecord;
  readonly version: string;
}

/**
 * Where the leader record lives (the port; `kube-lease-store.ts` keeps it in a
 * coordination.k8s.io/v1 Lease). `create` and `update` must fail when someone else wrote first
 * (already exists / version conflict); that is what makes at most one leader.
 */
export interface LeaseStore {
  readonly description: string;
  get(signal: AbortSignal): Promise<ObservedLease | undefined>;
  create(record: LeaderRecord, signal: AbortSignal): Promise<ObservedLease>;
  update(record: LeaderRecord, version: string, signal: AbortSignal): Promise<ObservedLease>;
}

export interface LeaderCallbacks {
  /** This replica became leader. `signal` aborts when it stops being leader (lost or released). */
  onStartedLeading(signal: AbortSignal): void;
  /** This replica stopped being leader (after `onStartedLeading`'s signal aborted). */
  onStoppedLeading(): void;
  /** The observed holder changed (any replica, including this one). */
  onNewLeader?(identity: string): void;
}

export interface LeaderElectorOptions {
  readonly store: LeaseStore;
  /** Unique per process: see {@link leaderIdentity}. */
  readonly identity: string;
  /** How long others wait, from the last renewal they observed, before taking over. Default 15 s. */
  readonly leaseDurationMs?: number;
  /** The leader gives up if it could not renew for this long. Default 10 s; < lease duration. */
  readonly renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew. Default 2 s. */
  readonly retryPeriodMs?: number;
  readonly callbacks: LeaderCallbacks;
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: RuntimeLogger;
}

/** How {@link LeaderElector.run} ended. */
export type ElectionEnd = 'stopped' | 'lost';

/** A process-unique identity: pod name (or hostname) plus random hex, like client-go's. */
export function leaderIdentity(podName?: string): string {
  const base = podName === undefined || podName === '' ? hostname() : podName;
  return `${base}_${randomBytes(6).toString('hex')}`;
}

type Attempt = 'acquired' | 'renewed' | 'held-by-other' | 'failed';

/**
 * Lease-based leader election with client-go's rules:
 * - a candidate takes the lease when it is free or when its holder has not renewed for the
 *   lease's duration, measured on the candidate's own clock from when it last saw the record
 *   change (no trust in other clocks);
 * - the leader renews every retry period and steps down (signal aborted, `onStoppedLeading`) if it
 *   could not renew within the renew deadline, or sees another holder;
 * - on a graceful stop the leader releases the lease so a successor need not wait.
 * All writes are optimistic (resourceVersion), so two candidates never both win.
 */
export class LeaderElector {
  readonly identity: string;
  readonly #store: LeaseStore;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #callbacks: LeaderCallbacks;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #logger: RuntimeLogger;
  #observed: ObservedLease | undefined;
  #observedAt = 0;
  #lastHolder: string | undefined;
  #leading = false;
  #running = false;
  #releaseOnStop = true;

  constructor(options: LeaderElectorOptions) {
    this.identity = options.identity;
    this.#store = options.store;
    this.#leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (this.#leaseDurationMs <= this.#renewDeadlineMs) throw new Error('leader election: lease duration must exceed the renew deadline');
    if (this.#renewDeadlineMs <= this.#retryPeriodMs * 1.2) throw new Error('leader election: renew deadline must exceed 1.2 × retry period');
    if (this.identity === '') throw new Error('leader election: empty identity');
    this.#callbacks = options.callbacks;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger ?? silentLogger;
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /**
   * Makes a later stop leave the lease to expire instead of releasing it: for when work started as
   * leader may still be running, so no successor may start before the lease duration has passed.
   */
  keepLeaseOnStop(): void {
    this.#releaseOnStop = false;
  }

  /** The holder last observed in the lease (undefined if none or not yet read). */
  observedLeader(): string | undefined {
    const holder = this.#observed?.record.holderIdentity;
    return holder === '' ? undefined : holder;
  }

  /**
   * Campaigns until leader, then renews until `signal` aborts (→ release, `'stopped'`) or the
   * lease is lost (`'lost'`). Returns after `onStoppedLeading` ran. Runs once per instance.
   */
  async run(signal: AbortSignal): Promise<ElectionEnd> {
    if (this.#running) throw new Error('leader elector is already running');
    this.#running = true;
    this.#logger.info('leader election: campaigning', { identity: this.identity, lease: this.#store.description });
    let acquiredAt: number | undefined;
    while (!signal.aborted) {
      const started = this.#clock.now();
      // 'renewed' while campaigning: the lease already names us (our create went through but its
      // answer was lost, or we restarted under the same identity), so it is ours to lead with.
      const attempt = await this.#tryAcquireOrRenew(signal, this.#renewDeadlineMs);
      if (attempt === 'acquired' || attempt === 'renewed') {
        acquiredAt = started;
        break;
      }
      // Jittered so that candidates do not retry in lock-step.
      await sleep(this.#clock, this.#retryPeriodMs * (1 + 0.2 * this.#random()), signal);
    }
    if (acquiredAt === undefined) return 'stopped';

    this.#leading = true;
    const leadership = new AbortController();
    this.#logger.info('leader election: became leader', { identity: this.identity });
    this.#call(() => {
      this.#callbacks.onStartedLeading(leadership.signal);
    });

    let lastRenew = acquiredAt;
    let lost = false;
    while (!signal.aborted) {
      if (!(await sleep(this.#clock, this.#retryPeriodMs, signal))) break;
      const started = this.#clock.now();
      const remaining = lastRenew + this.#renewDeadlineMs - started;
      const result = remaining > 0 ? await this.#tryAcquireOrRenew(signal, remaining) : 'failed';
      if (result === 'renewed' || result === 'acquired') {
        lastRenew = started;
      } else if (result === 'held-by-other') {
        lost = true;
        break;
      } else if (this.#clock.now() - lastRenew >= this.#renewDeadlineMs) {
        lost = true;
        break;
      }
    }

    this.#leading = false;
    leadership.abort(lost ? new LeadershipLostError() : new Error('leader election stopped'));
    if (lost) this.#logger.warn('leader election: lost the lease', { identity: this.identity, holder: this.observedLeader() });
    else if (this.#releaseOnStop) await this.#release();
    else this.#logger.warn('leader election: stopping without releasing the lease; it expires on its own', { identity: this.identity });
    this.#call(() => {
      this.#callbacks.onStoppedLeading();
    });
    return lost ? 'lost' : 'stopped';
  }

  async #tryAcquireOrRenew(signal: AbortSignal, timeoutMs: number): Promise<Attempt> {
    const attempt = new AbortController();
    const onAbort = (): void => {
      attempt.abort();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = this.#clock.setTimeout(() => {
      attempt.abort(new Error('lease request timed out'));
    }, timeoutMs);
    const now = this.#clock.now();
    const wallNow = this.#clock.wallNow();
    try {
      const current = await this.#store.get(attempt.signal);
      if (current === undefined) {
        const created = await this.#store.create(
          { holderIdentity: this.identity, leaseDurationSeconds: this.#leaseDurationSeconds(), acquireTime: wallNow, renewTime: wallNow, leaseTransitions: 0 },
          attempt.signal,
        );
        this.#observe(created, now);
        return 'acquired';
      }
      if (current.version !== this.#observed?.version) this.#observe(current, now);
      const holder = current.record.holderIdentity;
      const mine = holder === this.identity;
      const free = holder === undefined || holder === '';
      if (!mine && !free && this.#observedAt + current.record.leaseDurationSeconds * 1000 > now) return 'held-by-other';
      const updated = await this.#store.update(
        {
          holderIdentity: this.identity,
          leaseDurationSeconds: this.#leaseDurationSeconds(),
          acquireTime: mine ? (current.record.acquireTime ?? wallNow) : wallNow,
          renewTime: wallNow,
          leaseTransitions: mine ? current.record.leaseTransitions : current.record.leaseTransitions + 1,
        },
        current.version,
        attempt.signal,
      );
      this.#observe(updated, now);
      return mine ? 'renewed' : 'acquired';
    } catch (error) {
      // Conflicts (another candidate wrote first) and API errors alike: try again next period.
      this.#logger.debug('leader election: attempt failed', { identity: this.identity, error: describeError(error) });
      return 'failed';
    } finally {
      this.#clock.clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Gives the lease up (holder cleared, 1 s duration) so a successor can take it at once. */
  async #release(): Promise<void> {
    const observed = this.#observed;
    if (observed?.record.holderIdentity !== this.identity) return;
    const attempt = new AbortController();
    const timer = this.#clock.setTimeout(() => {
      attempt.abort(new Error('lease release timed out'));
    }, this.#renewDeadlineMs);
    try {
      const released = await this.#store.update(
        {
          holderIdentity: undefined,
          leaseDurationSeconds: 1,
          acquireTime: observed.record.acquireTime,
          renewTime: this.#clock.wallNow(),
          leaseTransitions: observed.record.leaseTransitions,
        },
        observed.version,
        attempt.signal,
      );
      this.#observe(released, this.#clock.now());
      this.#logger.info('leader election: released the lease', { identity: this.identity });
    } catch (error) {
      // The lease then simply expires after its duration.
      this.#logger.warn('leader election: could not release the lease', { identity: this.identity, error: describeError(error) });
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }

  #observe(lease: ObservedLease, at: number): void {
    this.#observed = lease;
    this.#observedAt = at;
    const holder = lease.record.holderIdentity;
    if (holder !== undefined && holder !== '' && holder !== this.#lastHolder) {
      this.#lastHolder = holder;
      this.#logger.info('leader election: leader is', { identity: this.identity, leader: holder });
      this.#call(() => {
        this.#callbacks.onNewLeader?.(holder);
      });
    }
  }

  #leaseDurationSeconds(): number {
    return Math.max(1, Math.ceil(this.#leaseDurationMs / 1000));
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#logger.error('leader election: callback threw', { identity: this.identity, error: describeError(error) });
    }
  }
}
