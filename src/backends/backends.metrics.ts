import type { Registry } from 'prom-client';
import { backendErrorKinds, providerNames, type BackendErrorKind, type ProviderName } from './backend.port.ts';
import { detectionSources } from './change-notice.port.ts';
import { defineCounter, defineHistogram, durationBucketsSeconds, type CounterMetric, type HistogramMetric } from '../observability/metrics.ts';

/**
 * Metrics of the backend layer (resolver and providers). Labels are closed lists: provider,
 * operation, result (an error kind) — never a key, a path, a namespace or a backend name.
 */

export const backendOperations = ['fetch', 'versions', 'connectivity'] as const;
export type BackendOperation = (typeof backendOperations)[number];

/** `ok`, one of our error kinds, or `Error` for a failure that is none of them. */
export const backendResults = ['ok', ...backendErrorKinds, 'Error'] as const;
export type BackendResult = 'ok' | BackendErrorKind | 'Error';

const provider = { provider: providerNames } as const;

export interface BackendMetrics {
  /** Calls to a backend (one `fetch(refs)` is one call), by how the call as a whole ended. */
  readonly requests: CounterMetric<{ provider: typeof providerNames; operation: typeof backendOperations; result: typeof backendResults }>;
  readonly requestDuration: HistogramMetric<{ provider: typeof providerNames; operation: typeof backendOperations }>;
  /** Throttled answers (whole calls or single references). */
  readonly throttles: CounterMetric<typeof provider>;
  /** Secret documents read (values returned), the number that scales with unique secrets. */
  readonly secretsRead: CounterMetric<typeof provider>;
  /** Requests answered from the resolver cache without a backend call. */
  readonly cacheHits: CounterMetric<typeof provider>;
  /** Requests that needed (or joined) a backend call. */
  readonly cacheMisses: CounterMetric<typeof provider>;
  /** Requests answered with a last-known-good value because the backend failed. */
  readonly staleServed: CounterMetric<typeof provider>;
  /** Successful authentications (Vault login, token exchange), reported by providers. */
  readonly logins: CounterMetric<typeof provider>;
  /**
   * Documents whose version moved, by how the change was found: `event` when a change notice
   * caused the check (ADR 0220), `poll` for the interval's checks and requested refreshes.
   */
  readonly changesDetected: CounterMetric<{ provider: typeof providerNames; source: typeof detectionSources }>;
}

export function createBackendMetrics(registry: Registry): BackendMetrics {
  return {
    requests: defineCounter(registry, {
      name: 'secretbinder_backend_requests_total',
      help: 'Calls to secret backends, by provider, operation and result.',
      labels: { provider: providerNames, operation: backendOperations, result: backendResults },
    }),
    requestDuration: defineHistogram(registry, {
      name: 'secretbinder_backend_request_duration_seconds',
      help: 'Duration of calls to secret backends, in seconds.',
      labels: { provider: providerNames, operation: backendOperations },
      buckets: durationBucketsSeconds,
    }),
    throttles: defineCounter(registry, {
      name: 'secretbinder_backend_throttles_total',
      help: 'Throttled answers from secret backends.',
      labels: provider,
    }),
    secretsRead: defineCounter(registry, {
      name: 'secretbinder_backend_secrets_read_total',
      help: 'Secret documents read from backends.',
      labels: provider,
    }),
    cacheHits: defineCounter(registry, {
      name: 'secretbinder_backend_cache_hits_total',
      help: 'Secret requests answered from the resolver cache.',
      labels: provider,
    }),
    cacheMisses: defineCounter(registry, {
      name: 'secretbinder_backend_cache_misses_total',
      help: 'Secret requests that needed or joined a backend call.',
      labels: provider,
    }),
    staleServed: defineCounter(registry, {
      name: 'secretbinder_backend_stale_served_total',
      help: 'Secret requests answered with a last-known-good value during a backend failure.',
      labels: provider,
    }),
    logins: defineCounter(registry, {
      name: 'secretbinder_backend_logins_total',
      help: 'Successful authentications to secret backends.',
      labels: provider,
    }),
    changesDetected: defineCounter(registry, {
      name: 'secretbinder_backend_changes_detected_total',
      help: 'Secret documents whose version changed, by provider and how the change was detected (poll or event).',
      labels: { provider: providerNames, source: detectionSources },
    }),
  };
}

/** The result label of a finished call. */
export function resultOf(error: unknown): BackendResult {
  if (error === undefined) return 'ok';
  const kind: unknown = typeof error === 'object' && error !== null ? (error as { kind?: unknown }).kind : undefined;
  return typeof kind === 'string' && (backendErrorKinds as readonly string[]).includes(kind) ? (kind as BackendErrorKind) : 'Error';
}

/** `BackendContext.onLogin` wired to the logins counter. */
export function loginCounter(metrics: BackendMetrics): (provider: ProviderName) => void {
  return (name) => {
    metrics.logins.inc({ provider: name });
  };
}
