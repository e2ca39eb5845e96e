import type { V1Namespace } from '@kubernetes/client-node';
import {
  defaults,
  reasonForError,
  type AnyBackend,
  type Reason,
  type SecretBinding,
} from '../../api/v1alpha1/index.ts';
import { parseDurationMs } from '../../api/v1alpha1/duration.ts';
import { BackendError, type SecretRef } from '../../backends/backend.port.ts';
import { PropertyError, type Resolution, type ResolveOutcome, type SecretResolver } from '../../backends/resolver/resolver.ts';
import {
  defaultBackend,
  renderFiles,
  valueRefId,
  valueRefsOf,
  type FileTemplate,
  type RenderedFile,
  type ValueRef,
} from '../../delivery/files/file-set.ts';
import { contentHmac } from '../../observability/content-hmac.ts';
import type { SecretValue } from '../../observability/secret-value.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import type { BackendPool } from '../backend/backend-pool.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import { checkAccess } from './access-rules.ts';
import { describeBackend, namedBackends, type NamedBackendRef } from './binding-backends.ts';
import { fileTemplates } from './file-templates.ts';

/** The backend queue key of a binding's default backend (`spec.backendRef`). */
export function backendRefKey(binding: SecretBinding): string {
  return namedBackends(binding).get(defaultBackend)?.queueKey ?? '';
}

/** How each backend of a binding fared in its last resolution (status.backends). */
export interface BackendHealth {
  readonly name: string;
  readonly kind: string;
  readonly backendName: string;
  readonly state: 'Current' | 'LastKnownGood' | 'Failed';
  readonly reason: Reason;
  readonly message?: string;
}

/** Which source served a file that has a fallback (status.sources). */
export interface SourceServed {
  readonly path: string;
  readonly served: 'from' | 'fallback';
}

/** One secret a binding reads: the resolver's backend identity, the reference, and the version its content holds. */
export interface PolledRef {
  readonly backendId: string;
  readonly ref: SecretRef;
  readonly version: string;
}

/** What a binding's content is right now, or why it cannot be had. Files are held in memory only. */
export type BindingContent =
  | {
      readonly kind: 'failed';
      readonly reason: Reason;
      readonly message: string;
      readonly retry: boolean;
      /** Per backend, when the binding got as far as reading (absent for spec and lookup failures of the whole binding). */
      readonly backends?: readonly BackendHealth[];
    }
  | {
      readonly kind: 'resolved';
      readonly files: readonly RenderedFile[];
      /** Keyed HMAC of the files: what status, audit and the change stream carry instead of content. */
      readonly hmac: string;
      readonly versions: { backend?: string; key: string; version: string }[];
      readonly stale: { readonly reason: Reason; readonly message: string } | undefined;
      /** Per backend (absent from hand-built contents, e.g. tests of the broker). */
      readonly backends?: readonly BackendHealth[];
      /** Files with a fallback and the source that served each. */
      readonly sources?: readonly SourceServed[];
      /** Every secret read (fallbacks included) at the version read: what the key poller watches (ADR 0203). */
      readonly polled?: readonly PolledRef[];
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
   * How often the binding's secrets are checked: its own refreshInterval, else the shortest of
   * its backends' (so no backend is checked less often than it asks), else the default (the CRD
   * gives the binding no default so that it inherits).
   */
  refreshIntervalMs(binding: SecretBinding): number {
    const own = binding.spec.refreshInterval;
    if (own !== undefined && own !== '') return parseDurationMs(own);
    const intervals = [...namedBackends(binding).values()].map((ref) => parseDurationMs(this.#backendOf(ref)?.spec.refreshInterval ?? defaults.refreshInterval));
    return Math.min(...intervals);
  }

  #backendOf(ref: NamedBackendRef): AnyBackend | undefined {
    return ref.kind === 'ClusterSecretBackend' ? this.#deps.clusterBackends.get(ref.backendName) : this.#deps.namespacedBackends.get(ref.queueKey.slice('SecretBackend/'.length));
  }

  /**
   * Looks a backend up, applies a ClusterSecretBackend's access rules to the keys read from it,
   * and connects it. A failure names the backend and is not retried: a backend created, changed
   * or made Ready later enqueues its bindings.
   */
  async #open(binding: SecretBinding, ref: NamedBackendRef, keys: readonly string[]): Promise<OpenedBackend> {
    const backend = this.#backendOf(ref);
    if (backend === undefined) return { ok: false, reason: 'BackendNotFound', message: `${ref.kind} ${ref.backendName} not found`, retry: false };
    if (backend.kind === 'ClusterSecretBackend') {
      const namespace = binding.metadata.namespace ?? '';
      const ns = this.#deps.namespaces.get(namespace);
      const decision = checkAccess(backend.spec.access, { name: namespace, labels: ns?.metadata?.labels }, keys, ref.backendName);
      if (!decision.allowed) return { ok: false, reason: 'AccessDenied', message: decision.message, retry: false };
    }
    try {
      return { ok: true, backendId: (await this.#deps.pool.ensure(backendQueueKey(backend), backend)).backendId };
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      return { ok: false, reason: 'BackendNotReady', message: `${ref.queueKey}: ${error.message}`, retry: false };
    }
  }

  async #conclude(binding: SecretBinding, signal: AbortSignal, confirmedForMs: number, refresh: boolean): Promise<BindingContent> {
    let templates: FileTemplate[];
    try {
      templates = fileTemplates(binding.spec.files);
    } catch (error) {
      return { kind: 'failed', reason: 'InvalidSpec', message: error instanceof Error ? error.message : String(error), retry: false };
    }
    const refs = valueRefsOf(templates);
    const named = namedBackends(binding);
    const nameOf = (r: ValueRef): string => r.backend ?? defaultBackend;
    const unknown = refs.find((r) => !named.has(nameOf(r)));
    if (unknown !== undefined) {
      // The CRD's CEL rule refuses this; objects that predate it get the same answer.
      return { kind: 'failed', reason: 'InvalidSpec', message: `key "${unknown.key}" names backend ${nameOf(unknown)}, which is neither default nor listed in backends`, retry: false };
    }

    // Every backend the files use (default first), opened at once: one slow lookup does not delay the others.
    const used = [...named.values()].filter((ref) => refs.some((r) => nameOf(r) === ref.name));
    const opened = new Map<string, OpenedBackend>();
    await Promise.all(
      used.map(async (ref) => {
        opened.set(ref.name, await this.#open(binding, ref, [...new Set(refs.filter((r) => nameOf(r) === ref.name).map((r) => r.key))]));
      }),
    );

    const policy = binding.spec.onBackendUnavailable;
    const serveStaleUpToMs =
      (policy?.policy ?? defaults.onBackendUnavailable.policy) === 'ServeLastKnownGood'
        ? policy?.maxStaleness === undefined || policy.maxStaleness === ''
          ? Number.POSITIVE_INFINITY
          : parseDurationMs(policy.maxStaleness)
        : undefined;
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.#deps.resolveTimeoutMs)]);
    const backendIdOf = (r: ValueRef): string | undefined => {
      const open = opened.get(nameOf(r));
      return open?.ok === true ? open.backendId : undefined;
    };
    const readable = refs.filter((r) => backendIdOf(r) !== undefined);
    // Cheap version checks first, per backend and all backends at once: a value is read only where the version moved.
    const checkStartedAt = performance.now();
    await Promise.all(
      used.map(async (ref) => {
        const open = opened.get(ref.name);
        if (open?.ok !== true) return;
        const secretRefs = dedupeSecretRefs(readable.filter((r) => nameOf(r) === ref.name));
        if (refresh) for (const key of new Set(secretRefs.map((r) => r.key))) this.#deps.resolver.invalidate(open.backendId, key);
        await this.#deps.resolver.checkVersions(open.backendId, secretRefs, { maxAgeMs: confirmedForMs, signal: timeout });
      }),
    );
    // What the check found fresh (or confirmed) must still count as fresh for the reads that
    // follow, or an entry that turned stale in between would be read again instead of checked.
    const checkedMaxAgeMs = confirmedForMs + (performance.now() - checkStartedAt);
    const outcomes = await this.#deps.resolver.resolveAll(
      readable.map((r) => ({ backendId: backendIdOf(r) ?? '', ref: { key: r.key, version: r.version }, property: r.property })),
      { maxAgeMs: checkedMaxAgeMs, serveStaleUpToMs, signal: timeout },
    );

    // One result per value reference: what was read, or why not (its backend could not be opened).
    const results = new Map<string, RefResult>();
    readable.forEach((r, i) => {
      const outcome = outcomes[i];
      if (outcome !== undefined) results.set(valueRefId(r), outcome.ok ? { ok: true, resolution: outcome.resolution } : { ok: false, ...failureOf(outcome) });
    });
    for (const r of refs) {
      const open = opened.get(nameOf(r));
      if (open !== undefined && !open.ok) results.set(valueRefId(r), { ok: false, reason: open.reason, message: open.message, retry: open.retry });
    }
    const resultOf = (r: ValueRef): RefResult => results.get(valueRefId(r)) ?? { ok: false, reason: 'InternalError', message: 'not resolved', retry: true };

    // A file with a fallback is served from `from` when it can be, else from `fallback`.
    const sources: SourceServed[] = [];
    const served = templates.map((t): FileTemplate => {
      if (t.kind !== 'single' || t.fallback === undefined) return t;
      const fromServes = resultOf(t.ref).ok || !resultOf(t.fallback).ok;
      sources.push({ path: t.path, served: fromServes ? 'from' : 'fallback' });
      return fromServes ? t : { ...t, ref: t.fallback };
    });
    const needed = valueRefsOf(served);
    const health = this.#health(used, opened, refs, resultOf);
    const blocking = needed.find((r) => !resultOf(r).ok);
    if (blocking !== undefined) {
      const result = resultOf(blocking);
      if (result.ok) throw new Error('unreachable');
      const ref = named.get(nameOf(blocking));
      const where = ref === undefined ? '' : `${describeBackend(ref)}: `;
      return { kind: 'failed', reason: result.reason, message: `${where}${result.message}`, retry: result.retry, backends: health };
    }

    const values = new Map<string, SecretValue>();
    const versions = new Map<string, { backend?: string; key: string; version: string }>();
    const staleBackends: string[] = [];
    let staleReason: Reason | undefined;
    for (const r of needed) {
      const result = resultOf(r);
      if (!result.ok) continue;
      values.set(valueRefId(r), result.resolution.value);
      const backend = r.backend === undefined ? {} : { backend: r.backend };
      versions.set(JSON.stringify([nameOf(r), r.key, result.resolution.version]), { ...backend, key: r.key, version: result.resolution.version });
      if (result.resolution.stale) {
        const ref = named.get(nameOf(r));
        const label = ref === undefined ? nameOf(r) : describeBackend(ref);
        if (!staleBackends.includes(label)) staleBackends.push(label);
        // Degraded names the cause (Throttled, BackendUnavailable, AuthFailed).
        staleReason ??= reasonForError(result.resolution.cause);
      }
    }
    const files = renderFiles(served, (r: ValueRef) => {
      const value = values.get(valueRefId(r));
      if (value === undefined) throw new Error('resolved value missing');
      return value;
    });
    return {
      kind: 'resolved',
      files,
      hmac: contentHmac(this.#deps.contentKey, files),
      versions: [...versions.values()].sort(
        (a, b) => cmp(a.backend ?? '', b.backend ?? '') || cmp(a.key, b.key) || cmp(a.version, b.version),
      ),
      stale:
        staleReason === undefined
          ? undefined
          : { reason: staleReason, message: `${staleBackends.join(', ')}: ${staleReason}; serving its last-known-good content, the other backends' files are current` },
      backends: health,
      sources,
      polled: polledRefs(readable, backendIdOf, resultOf),
    };
  }

  /** Per backend: Failed if a read of it failed, LastKnownGood if one was served from memory, else Current. */
  #health(
    used: readonly NamedBackendRef[],
    opened: ReadonlyMap<string, OpenedBackend>,
    refs: readonly ValueRef[],
    resultOf: (r: ValueRef) => RefResult,
  ): BackendHealth[] {
    return used.map((ref): BackendHealth => {
      const base = { name: ref.name, kind: ref.kind, backendName: ref.backendName };
      const open = opened.get(ref.name);
      if (open !== undefined && !open.ok) return { ...base, state: 'Failed', reason: open.reason, message: open.message };
      const mine = refs.filter((r) => (r.backend ?? defaultBackend) === ref.name).map(resultOf);
      const failed = mine.find((r): r is Extract<RefResult, { ok: false }> => !r.ok);
      if (failed !== undefined) return { ...base, state: 'Failed', reason: failed.reason, message: failed.message };
      const stale = mine.find((r) => r.ok && r.resolution.stale);
      if (stale?.ok === true && stale.resolution.stale) {
        const reason = reasonForError(stale.resolution.cause);
        return { ...base, state: 'LastKnownGood', reason, message: `${reason}; serving last-known-good content` };
      }
      return { ...base, state: 'Current', reason: 'Reconciled' };
    });
  }
}

type OpenedBackend = { readonly ok: true; readonly backendId: string } | { readonly ok: false; readonly reason: Reason; readonly message: string; readonly retry: boolean };

type RefResult =
  | { readonly ok: true; readonly resolution: Resolution }
  | { readonly ok: false; readonly reason: Reason; readonly message: string; readonly retry: boolean };

function failureOf(outcome: Extract<ResolveOutcome, { ok: false }>): { reason: Reason; message: string; retry: boolean } {
  const { error, request } = outcome;
  const where = request.property === undefined ? `key "${request.ref.key}"` : `key "${request.ref.key}" property "${request.property}"`;
  if (error instanceof PropertyError) return { reason: 'PropertyNotFound', message: `${where}: ${error.message}`, retry: false };
  if (error instanceof BackendError) return { reason: reasonForError(error), message: `${where}: ${error.message}`, retry: error.retryable };
  // Unknown failures (a backend being replaced, a bug): retried with backoff.
  return { reason: 'InternalError', message: `${where}: ${error.message}`, retry: true };
}

function polledRefs(refs: readonly ValueRef[], backendIdOf: (r: ValueRef) => string | undefined, resultOf: (r: ValueRef) => RefResult): PolledRef[] {
  const polled = new Map<string, PolledRef>();
  for (const r of refs) {
    const backendId = backendIdOf(r);
    const result = resultOf(r);
    if (backendId === undefined || !result.ok) continue;
    const ref = { key: r.key, version: r.version };
    polled.set(JSON.stringify([backendId, valueRefId(ref)]), { backendId, ref, version: result.resolution.version });
  }
  return [...polled.values()];
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
