import type { V1Namespace } from '@kubernetes/client-node';
import {
  defaults,
  reasonForError,
  type AnyBackend,
  type Reason,
  type SecretBinding,
} from '../../api/v1alpha1/index.ts';
import { parseDurationMs } from '../../api/v1alpha1/duration.ts';
import { BackendError } from '../../backends/backend.port.ts';
import { PropertyError, type ResolveOutcome, type SecretResolver } from '../../backends/resolver/resolver.ts';
import { renderFiles, valueRefId, valueRefsOf, type FileTemplate, type RenderedFile, type ValueRef } from '../../delivery/files/file-set.ts';
import { contentHmac } from '../../observability/content-hmac.ts';
import type { SecretValue } from '../../observability/secret-value.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import type { BackendPool } from '../backend/backend-pool.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import { checkAccess } from './access-rules.ts';
import { fileTemplates } from './file-templates.ts';

/** The backend queue key a binding refers to (also the index the binding cache is keyed by). */
export function backendRefKey(binding: SecretBinding): string {
  const ref = binding.spec.backendRef;
  return ref.kind === 'ClusterSecretBackend'
    ? `ClusterSecretBackend/${ref.name}`
    : `SecretBackend/${binding.metadata.namespace ?? ''}/${ref.name}`;
}

/** What a binding's content is right now, or why it cannot be had. Files are held in memory only. */
export type BindingContent =
  | { readonly kind: 'failed'; readonly reason: Reason; readonly message: string; readonly retry: boolean }
  | {
      readonly kind: 'resolved';
      readonly files: readonly RenderedFile[];
      /** Keyed HMAC of the files: what status, audit and the change stream carry instead of content. */
      readonly hmac: string;
      readonly versions: { key: string; version: string }[];
      readonly stale: { readonly reason: Reason; readonly message: string } | undefined;
    };

export interface ResolveOptions {
  /** Check the binding's keys at the backend now, whatever the age of the cached versions. */
  readonly refresh?: boolean;
}

export interface BindingContentDeps {
  readonly clusterBackends: CacheReader<AnyBackend>;
  readonly namespacedBackends: CacheReader<AnyBackend>;
  readonly namespaces: CacheReader<V1Namespace>;
  readonly pool: BackendPool;
  readonly resolver: SecretResolver;
  readonly contentKey: SecretValue;
  /** How long one resolution waits for the backend. */
  readonly resolveTimeoutMs: number;
}

/**
 * Computes a binding's file set: resolves its backend and access rules, reads its values through
 * the resolver (one read per unique secret, shared by every binding and every caller), renders
 * the files and their content HMAC. Used by the binding reconciler (status) and the broker
 * (delivery), so both always agree on what a binding holds.
 */
/**
 * The polling schedule of a refresh interval P (ADR 0143). A cached version counts as confirmed for
 * P − s, where the slack s is a tenth of P, at most 1 s; a binding is reconciled again P − s plus up
 * to s/2 of jitter after a reconcile ends. So the next check of a key starts within P of the last
 * one as long as a reconcile takes less than s/2, and the checks of many bindings spread out — a
 * change is detected within the interval, not one interval plus however long reconciles took.
 */
export function pollSchedule(refreshMs: number, random: () => number = Math.random): { readonly confirmedForMs: number; readonly nextInMs: number } {
  const slackMs = Math.min(1000, refreshMs / 10);
  const confirmedForMs = refreshMs - slackMs;
  return { confirmedForMs, nextInMs: confirmedForMs + random() * (slackMs / 2) };
}

export class BindingContentResolver {
  readonly #deps: BindingContentDeps;

  constructor(deps: BindingContentDeps) {
    this.#deps = deps;
  }

  /**
   * The binding's content. With `refresh`, the resolver's cache of the binding's keys counts as
   * unconfirmed, so their versions are checked now (a user's `secretbinder.dev/refresh-requested`).
   */
  async resolve(binding: SecretBinding, signal: AbortSignal, options?: ResolveOptions): Promise<BindingContent> {
    return this.#conclude(binding, signal, pollSchedule(this.refreshIntervalMs(binding)).confirmedForMs, options?.refresh === true);
  }

  /**
   * How often the binding's secrets are checked: its own refreshInterval, else its backend's,
   * else the default (the CRD gives the binding no default so that it inherits).
   */
  refreshIntervalMs(binding: SecretBinding): number {
    const own = binding.spec.refreshInterval;
    if (own !== undefined && own !== '') return parseDurationMs(own);
    const backend = this.#backendOf(binding);
    return parseDurationMs(backend?.spec.refreshInterval ?? defaults.refreshInterval);
  }

  #backendOf(binding: SecretBinding): AnyBackend | undefined {
    const ref = binding.spec.backendRef;
    return ref.kind === 'ClusterSecretBackend'
      ? this.#deps.clusterBackends.get(ref.name)
      : this.#deps.namespacedBackends.get(`${binding.metadata.namespace ?? ''}/${ref.name}`);
  }

  async #conclude(binding: SecretBinding, signal: AbortSignal, confirmedForMs: number, refresh: boolean): Promise<BindingContent> {
    const namespace = binding.metadata.namespace ?? '';
    const refKey = backendRefKey(binding);
    const ref = binding.spec.backendRef;
    const backend = this.#backendOf(binding);
    if (backend === undefined) {
      // A backend created later enqueues its bindings; no retry needed until then.
      return { kind: 'failed', reason: 'BackendNotFound', message: `${ref.kind ?? 'SecretBackend'} ${ref.name} not found`, retry: false };
    }

    let templates: FileTemplate[];
    try {
      templates = fileTemplates(binding.spec.files);
    } catch (error) {
      return { kind: 'failed', reason: 'InvalidSpec', message: error instanceof Error ? error.message : String(error), retry: false };
    }
    const refs = valueRefsOf(templates);

    if (backend.kind === 'ClusterSecretBackend') {
      const ns = this.#deps.namespaces.get(namespace);
      const decision = checkAccess(
        backend.spec.access,
        { name: namespace, labels: ns?.metadata?.labels },
        [...new Set(refs.map((r) => r.key))],
        ref.name,
      );
      // A denial lasts until the backend's rules or the namespace's labels change; both enqueue us.
      if (!decision.allowed) return { kind: 'failed', reason: 'AccessDenied', message: decision.message, retry: false };
    }

    let pooled;
    try {
      pooled = await this.#deps.pool.ensure(backendQueueKey(backend), backend);
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      return { kind: 'failed', reason: 'BackendNotReady', message: `${refKey}: ${error.message}`, retry: false };
    }

    const policy = binding.spec.onBackendUnavailable;
    const serveStaleUpToMs =
      (policy?.policy ?? defaults.onBackendUnavailable.policy) === 'ServeLastKnownGood'
        ? policy?.maxStaleness === undefined || policy.maxStaleness === ''
          ? Number.POSITIVE_INFINITY
          : parseDurationMs(policy.maxStaleness)
        : undefined;
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.#deps.resolveTimeoutMs)]);
    const secretRefs = dedupeSecretRefs(refs);
    if (refresh) for (const key of new Set(secretRefs.map((r) => r.key))) this.#deps.resolver.invalidate(pooled.backendId, key);
    // Cheap version checks first: a value is read only where the version moved.
    const checkStartedAt = performance.now();
    await this.#deps.resolver.checkVersions(pooled.backendId, secretRefs, { maxAgeMs: confirmedForMs, signal: timeout });
    // What the check found fresh (or confirmed) must still count as fresh for the reads that
    // follow, or an entry that turned stale in between would be read again instead of checked.
    const checkedMaxAgeMs = confirmedForMs + (performance.now() - checkStartedAt);
    const outcomes = await this.#deps.resolver.resolveAll(
      refs.map((r) => ({ backendId: pooled.backendId, ref: { key: r.key, version: r.version }, property: r.property })),
      { maxAgeMs: checkedMaxAgeMs, serveStaleUpToMs, signal: timeout },
    );

    const failed = outcomes.find((o): o is Extract<ResolveOutcome, { ok: false }> => !o.ok);
    if (failed !== undefined) return failure(failed);

    const values = new Map<string, SecretValue>();
    const versions = new Map<string, { key: string; version: string }>();
    let stale: { reason: Reason; message: string } | undefined;
    refs.forEach((r, i) => {
      const outcome = outcomes[i];
      if (outcome === undefined || !outcome.ok) return;
      values.set(valueRefId(r), outcome.resolution.value);
      versions.set(`${r.key}\u0000${outcome.resolution.version}`, { key: r.key, version: outcome.resolution.version });
      if (outcome.resolution.stale && stale === undefined) {
        // Degraded names the cause (Throttled, BackendUnavailable, AuthFailed); the message says
        // what is served meanwhile.
        const cause = reasonForError(outcome.resolution.cause);
        stale = { reason: cause, message: `backend ${refKey}: ${cause}; serving last-known-good content` };
      }
    });
    const files = renderFiles(templates, (r: ValueRef) => {
      const value = values.get(valueRefId(r));
      if (value === undefined) throw new Error('resolved value missing');
      return value;
    });
    return {
      kind: 'resolved',
      files,
      hmac: contentHmac(this.#deps.contentKey, files),
      versions: [...versions.values()].sort((a, b) => (a.key === b.key ? cmp(a.version, b.version) : cmp(a.key, b.key))),
      stale,
    };
  }

}

function failure(outcome: Extract<ResolveOutcome, { ok: false }>): BindingContent {
  const { error, request } = outcome;
  const where = request.property === undefined ? `key "${request.ref.key}"` : `key "${request.ref.key}" property "${request.property}"`;
  if (error instanceof PropertyError) return { kind: 'failed', reason: 'PropertyNotFound', message: `${where}: ${error.message}`, retry: false };
  if (error instanceof BackendError) {
    return { kind: 'failed', reason: reasonForError(error), message: `${where}: ${error.message}`, retry: error.retryable };
  }
  // Unknown failures (a backend being replaced, a bug): retried with backoff.
  return { kind: 'failed', reason: 'InternalError', message: `${where}: ${error.message}`, retry: true };
}

function dedupeSecretRefs(refs: readonly ValueRef[]): { key: string; version: ValueRef['version'] }[] {
  const seen = new Map<string, { key: string; version: ValueRef['version'] }>();
  for (const r of refs) {
    const id = valueRefId({ key: r.key, version: r.version });
    if (!seen.has(id)) seen.set(id, { key: r.key, version: r.version });
  }
  return [...seen.values()];
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
