import type { Registry } from 'prom-client';
import { defineCounter, defineGauge, defineHistogram, durationBucketsSeconds } from '../observability/metrics.ts';
import { reconcileOutcomes, type ControllerObserver, type ReconcileOutcome } from './controller.ts';
import type { InformerObserver } from './informer.ts';
import type { ManagerObserver } from './manager.ts';
import { reasonOf } from './reconciler.ts';

export interface RuntimeMetricsOptions {
  /** Every controller name that reports (`binding`, `backend`, …). */
  readonly controllers: readonly string[];
  /** Every informer resource name that reports (`pods`, `secretbindings`, …). */
  readonly resources: readonly string[];
  /** The reasons that may appear as the `reason` label: the domain's closed list. */
  readonly errorReasons: readonly string[];
}

/** The label value for a name or reason outside the declared lists. */
export const otherLabel = 'Other';

/**
 * The runtime's metrics, in the registry passed in, with closed label sets (ADR 0051):
 * - `secretbinder_reconcile_duration_seconds{controller,result}` histogram
 * - `secretbinder_reconcile_total{controller,result}`
 * - `secretbinder_reconcile_errors_total{controller,reason}`
 * - `secretbinder_workqueue_depth{controller}`
 * - `secretbinder_informer_restarts_total{resource}`
 * - `secretbinder_informer_lists_total{resource}` (full lists: a relist storm shows here)
 * - `secretbinder_leader` (1 while this replica holds the lease)
 *
 * A controller, resource or reason not declared up front is counted as `Other` rather than
 * dropped or thrown at a worker: the series shows that the declaration is incomplete.
 */
export class RuntimeMetrics implements ControllerObserver, InformerObserver, ManagerObserver {
  readonly #controllers: ReadonlySet<string>;
  readonly #resources: ReadonlySet<string>;
  readonly #reasons: ReadonlySet<string>;
  readonly #duration;
  readonly #total;
  readonly #errors;
  readonly #depth;
  readonly #restarts;
  readonly #lists;
  readonly #leader;

  constructor(registry: Registry, options: RuntimeMetricsOptions) {
    this.#controllers = new Set(options.controllers);
    this.#resources = new Set(options.resources);
    this.#reasons = new Set(options.errorReasons);
    const controller = [...options.controllers, otherLabel];
    const result = reconcileOutcomes;
    this.#duration = defineHistogram(registry, {
      name: 'secretbinder_reconcile_duration_seconds',
      help: 'Time taken by one reconcile, by controller and result.',
      labels: { controller, result },
      buckets: durationBucketsSeconds,
    });
    this.#total = defineCounter(registry, {
      name: 'secretbinder_reconcile_total',
      help: 'Reconciles, by controller and result (success, requeue, error, terminal).',
      labels: { controller, result },
    });
    this.#errors = defineCounter(registry, {
      name: 'secretbinder_reconcile_errors_total',
      help: 'Failed reconciles, by controller and reason.',
      labels: { controller, reason: [...options.errorReasons, otherLabel] },
    });
    this.#depth = defineGauge(registry, {
      name: 'secretbinder_workqueue_depth',
      help: 'Keys waiting in the work queue, by controller.',
      labels: { controller },
    });
    this.#restarts = defineCounter(registry, {
      name: 'secretbinder_informer_restarts_total',
      help: 'Informer restarts after a failed list or watch, by resource.',
      labels: { resource: [...options.resources, otherLabel] },
    });
    this.#lists = defineCounter(registry, {
      name: 'secretbinder_informer_lists_total',
      help: 'Full lists cached by informers (the first, after 410 Gone, periodic), by resource.',
      labels: { resource: [...options.resources, otherLabel] },
    });
    this.#leader = defineGauge(registry, {
      name: 'secretbinder_leader',
      help: '1 while this replica holds the leader lease, else 0.',
      labels: {},
    });
    this.#leader.set({}, 0);
  }

  reconciled(controller: string, outcome: ReconcileOutcome, seconds: number): void {
    const labels = { controller: this.#controller(controller), result: outcome };
    this.#duration.observe(labels, seconds);
    this.#total.inc(labels);
  }

  reconcileFailed(controller: string, error: unknown, _terminal: boolean): void {
    const reason = reasonOf(error);
    this.#errors.inc({ controller: this.#controller(controller), reason: reason !== undefined && this.#reasons.has(reason) ? reason : otherLabel });
  }

  queueDepth(controller: string, depth: number): void {
    this.#depth.set({ controller: this.#controller(controller) }, depth);
  }

  informerRestarted(resource: string): void {
    this.#restarts.inc({ resource: this.#resources.has(resource) ? resource : otherLabel });
  }

  informerListed(resource: string): void {
    this.#lists.inc({ resource: this.#resources.has(resource) ? resource : otherLabel });
  }

  leaderChanged(isLeader: boolean): void {
    this.#leader.set({}, isLeader ? 1 : 0);
  }

  #controller(name: string): string {
    return this.#controllers.has(name) ? name : otherLabel;
  }
}
