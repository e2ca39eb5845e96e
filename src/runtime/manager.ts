import { realClock, sleep, type Clock } from './clock.ts';
import type { CheckResult, HealthServer } from './health-server.ts';
import { LeaderElector, type ElectionEnd, type LeaderElectorOptions } from './leader-election.ts';
import { describeError, silentLogger, type RuntimeLogger } from './logger.ts';
import { LeadershipLostError, type Runnable, type SyncStatus } from './runnable.ts';

export interface ManagerObserver {
  leaderChanged(isLeader: boolean): void;
}

export interface ManagerOptions {
  /** Leader election on a Lease; without it, leader-only runnables run at once (single replica, tests). */
  readonly leaderElection?: Omit<LeaderElectorOptions, 'callbacks' | 'clock' | 'logger'>;
  /** Serves /healthz, /readyz, /metrics for the manager's life. */
  readonly health?: HealthServer;
  /** Budget for a graceful stop: draining, releasing the lease, stopping the rest. Default 25 s. */
  readonly shutdownTimeoutMs?: number;
  /** An informer whose newest sign of life is older than this makes /readyz fail. Default 2 min. */
  readonly maxInformerStalenessMs?: number;
  readonly clock?: Clock;
  readonly logger?: RuntimeLogger;
  readonly observer?: ManagerObserver;
}

/** Why the manager stopped; `run` resolves only for `signal`. */
type StopCause = { readonly kind: 'signal' } | { readonly kind: 'lost' } | { readonly kind: 'fatal'; readonly error: unknown };

/**
 * Runs runnables for the life of the process: those that need leadership only while this replica
 * holds the lease, the others on every replica. Stops gracefully when `signal` aborts:
 * 1. /readyz fails (stop receiving traffic);
 * 2. leader-only runnables stop and drain their queues, while the lease is still renewed;
 * 3. the lease is released (only if they all finished in time: otherwise it must expire first);
 * 4. the other runnables stop, then the health server.
 * A lost lease or a failing runnable also stops everything, and `run` rejects: the process should
 * exit and be restarted with a clean state.
 */
export class Manager {
  readonly #runnables: Runnable[] = [];
  readonly #options: ManagerOptions;
  readonly #clock: Clock;
  readonly #logger: RuntimeLogger;
  readonly #health: HealthServer | undefined;
  #elector: LeaderElector | undefined;
  #running = false;
  #stopping = false;
  #leading = false;

  constructor(options: ManagerOptions = {}) {
    this.#options = options;
    this.#clock = options.clock ?? realClock;
    this.#logger = options.logger ?? silentLogger;
    this.#health = options.health;
    this.#health?.addReadinessCheck('shutdown', () => (this.#stopping ? { ok: false, message: 'shutting down' } : { ok: true }));
  }

  add(runnable: Runnable): void {
    if (this.#running) throw new Error(`cannot add ${runnable.name}: the manager is running`);
    this.#runnables.push(runnable);
  }

  /** Adds a cache: run on every replica, and ready only once synced and not stale. */
  addInformer(informer: Runnable & SyncStatus): void {
    this.add(informer);
    this.addReadinessCheck(`informer:${informer.name}`, () => informerReadiness(informer, this.#options.maxInformerStalenessMs ?? 120_000));
  }

  addReadinessCheck(name: string, check: () => CheckResult | Promise<CheckResult>): void {
    if (this.#health === undefined) return;
    this.#health.addReadinessCheck(name, check);
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /** Runs until `signal` aborts (resolves after a graceful stop) or a fatal condition (rejects). */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#running) throw new Error('manager is already running');
    this.#running = true;
    const { promise: stopCause, resolve: stop } = Promise.withResolvers<StopCause>();
    /** Runnables started and not returned yet: what a late stop names. */
    const running = new Set<Runnable>();
    const track = (runnable: Runnable, runSignal: AbortSignal): Promise<void> => {
      running.add(runnable);
      return runnable.start(runSignal).finally(() => running.delete(runnable)).then(
        () => {
          if (!runSignal.aborted) this.#logger.warn('runnable returned before being stopped', { runnable: runnable.name });
        },
        (error: unknown) => {
          this.#logger.error('runnable failed', { runnable: runnable.name, error: describeError(error) });
          stop({ kind: 'fatal', error });
        },
      );
    };

    await this.#health?.listen();
    const everyone = new AbortController();
    const leadersStop = new AbortController();
    const electorStop = new AbortController();
    const others = this.#runnables.filter((r) => !r.needLeaderElection);
    const leaders = this.#runnables.filter((r) => r.needLeaderElection);
    const otherTasks = others.map((r) => track(r, everyone.signal));
    let leaderTasks: Promise<void>[] = [];
    const startLeaders = (leadership?: AbortSignal): void => {
      if (this.#stopping) return;
      this.#setLeading(true);
      const runSignal = leadership === undefined ? leadersStop.signal : AbortSignal.any([leadership, leadersStop.signal]);
      leaderTasks = leaders.map((r) => track(r, runSignal));
    };

    let election: Promise<ElectionEnd> | undefined;
    const leaderElection = this.#options.leaderElection;
    if (leaderElection === undefined) {
      startLeaders();
    } else {
      const elector = new LeaderElector({
        ...leaderElection,
        clock: this.#clock,
        logger: this.#logger,
        callbacks: {
          onStartedLeading: (leadership) => {
            startLeaders(leadership);
          },
          onStoppedLeading: () => {
            this.#setLeading(false);
          },
        },
      });
      this.#elector = elector;
      election = elector.run(electorStop.signal);
      void election.then((end) => {
        if (end === 'lost') stop({ kind: 'lost' });
      });
    }
    const onSignal = (): void => {
      stop({ kind: 'signal' });
    };
    if (signal.aborted) onSignal();
    else signal.addEventListener('abort', onSignal, { once: true });

    const cause = await stopCause;
    signal.removeEventListener('abort', onSignal);
    this.#stopping = true;
    const deadline = this.#clock.now() + (this.#options.shutdownTimeoutMs ?? 25_000);
    this.#logger.info('manager stopping', { cause: cause.kind });

    leadersStop.abort(cause.kind === 'lost' ? new LeadershipLostError() : new Error('manager stopping'));
    const leadersDone = await this.#within(leaderTasks, deadline);
    if (election !== undefined) {
      if (!leadersDone) {
        this.#logger.warn('leader runnables did not stop in time; leaving the lease to expire');
        this.#elector?.keepLeaseOnStop();
      }
      electorStop.abort();
      await this.#within([election], deadline);
    }
    everyone.abort(new Error('manager stopping'));
    if (!(await this.#within(otherTasks, deadline))) this.#logger.warn('runnables did not stop in time', { runnables: others.filter((r) => running.has(r)).map((r) => r.name) });
    await this.#health?.close();
    this.#logger.info('manager stopped', { cause: cause.kind });
    if (cause.kind === 'lost') throw new LeadershipLostError();
    if (cause.kind === 'fatal') throw cause.error;
  }

  #setLeading(leading: boolean): void {
    this.#leading = leading;
    this.#options.observer?.leaderChanged(leading);
  }

  /** Waits for `tasks` until `deadline`; true if they all finished. */
  async #within(tasks: readonly Promise<unknown>[], deadline: number): Promise<boolean> {
    const timeout = new AbortController();
    const all = Promise.all(tasks).then(() => true);
    const late = sleep(this.#clock, Math.max(0, deadline - this.#clock.now()), timeout.signal).then(() => false);
    const done = await Promise.race([all, late]);
    timeout.abort();
    return done;
  }
}

/** Readiness of a cache: synced once, and its newest sign of life no older than `maxStalenessMs`. */
export function informerReadiness(informer: SyncStatus, maxStalenessMs: number): CheckResult {
  if (!informer.hasSynced()) return { ok: false, message: 'not synced' };
  const staleness = informer.staleness();
  if (staleness > maxStalenessMs) return { ok: false, message: `stale for ${Math.round(staleness / 1000)} s` };
  return { ok: true };
}

/**
 * An AbortSignal that aborts on the first of `signals` (SIGTERM, SIGINT by default), for
 * `manager.run`. For the composition root; `dispose` removes the handlers. The handlers stay
 * installed until then: a second signal during the graceful stop (a supervisor such as
 * `timeout` forwarding the one its process group received) must not kill the process before it
 * has released its Lease.
 */
export function shutdownSignal(
  signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
  target: Pick<NodeJS.Process, 'on' | 'off'> = process,
): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const handler = (name: NodeJS.Signals): void => {
    if (!controller.signal.aborted) controller.abort(new Error(`received ${name}`));
  };
  for (const name of signals) target.on(name, handler);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const name of signals) target.off(name, handler);
    },
  };
}
