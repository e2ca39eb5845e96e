import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ControllerObserver, ReconcileOutcome } from './controller.ts';
import type { InformerObserver } from './informer.ts';
import { reasonOf } from './reconciler.ts';

export interface RuntimeMetricsOptions {
  /**
   * The error reasons that may appear as the `reason` label (the domain's closed list). Anything
   * else is counted as `Unknown`, so the label set stays closed whatever an error carries.
   */
  readonly errorReasons?: readonly string[];
}

/** The `reason` label for errors whose reason is not in the closed list. */
export const unknownReason = 'Unknown';

/**
 * The runtime's metrics, registered in the registry passed in (no global registry):
 * - `secretbinder_reconcile_duration_seconds{controller,result}` histogram
 * - `secretbinder_reconcile_total{controller,result}`
 * - `secretbinder_reconcile_errors_total{controller,reason}`
 * - `secretbinder_workqueue_depth{controller}`
 * - `secretbinder_informer_restarts_total{resource}`
 * - `secretbinder_leader` (1 while this replica holds the lease)
 *
 * Labels are controller and resource names fixed in code, results from a closed list and reasons
 * from the closed list given here: never object names, keys or paths.
 */
export class RuntimeMetrics implements ControllerObserver, InformerObserver {
  readonly #reasons: ReadonlySet<string>;
  readonly #duration: Histogram<'controller' | 'result'>;
  readonly #total: Counter<'controller' | 'result'>;
  readonly #errors: Counter<'controller' | 'reason'>;
  readonly #depth: Gauge<'controller'>;
  readonly #restarts: Counter<'resource'>;
  readonly #leader: Gauge;

  constructor(registry: Registry, options: RuntimeMetricsOptions = {}) {
    this.#reasons = new Set(options.errorReasons ?? []);
    const registers = [registry];
    this.#duration = new Histogram({
      name: 'secretbinder_reconcile_duration_seconds',
      help: 'Time taken by one reconcile, by controller and result.',
      labelNames: ['controller', 'result'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#total = new Counter({
      name: 'secretbinder_reconcile_total',
      help: 'Reconciles, by controller and result (success, requeue, error, terminal).',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.#errors = new Counter({
      name: 'secretbinder_reconcile_errors_total',
      help: 'Failed reconciles, by controller and reason.',
      labelNames: ['controller', 'reason'],
      registers,
    });
    this.#depth = new Gauge({
      name: 'secretbinder_workqueue_depth',
      help: 'Keys waiting in the work queue, by controller.',
      labelNames: ['controller'],
      registers,
    });
    this.#restarts = new Counter({
      name: 'secretbinder_informer_restarts_total',
      help: 'Informer restarts after a failed list or watch, by resource.',
      labelNames: ['resource'],
      registers,
    });
    this.#leader = new Gauge({
      name: 'secretbinder_leader',
      help: '1 while this replica holds the leader lease, else 0.',
      registers,
    });
    this.#leader.set(0);
  }

  reconciled(controller: string, outcome: ReconcileOutcome, seconds: number): void {
    this.#duration.observe({ controller, result: outcome }, seconds);
    this.#total.inc({ controller, result: outcome });
  }

  reconcileFailed(controller: string, error: unknown, _terminal: boolean): void {
    const reason = reasonOf(error);
    this.#errors.inc({ controller, reason: reason !== undefined && this.#reasons.has(reason) ? reason : unknownReason });
  }

  queueDepth(controller: string, depth: number): void {
    this.#depth.set({ controller }, depth);
  }

  informerRestarted(resource: string): void {
    this.#restarts.inc({ resource });
  }

  leaderChanged(isLeader: boolean): void {
    this.#leader.set(isLeader ? 1 : 0);
  }
}
