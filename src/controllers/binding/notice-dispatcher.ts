import type { AnyBackend, SecretBinding } from '../../api/v1alpha1/index.ts';
import type { ChangeNotice, ChangeNoticeSink, NoticeRejection, NoticeSourceKind } from '../../backends/change-notice.port.ts';
import type { NoticeMetrics } from '../../backends/notices/notice.metrics.ts';
import { valueRefsOf } from '../../delivery/files/file-set.ts';
import type { Clock, TimerHandle } from '../../runtime/clock.ts';
import { objectKey, type CacheReader } from '../../runtime/object-store.ts';
import { fileTemplates } from './file-templates.ts';

/** Where a backend's documents live, as notices name them; undefined for providers without notices. */
export function noticeScopeOf(backend: AnyBackend): { readonly provider: ChangeNotice['provider']; readonly scope: string } | undefined {
  const spec = backend.spec;
  if (spec.vault !== undefined) return { provider: 'vault', scope: trimSlashes(spec.vault.mount ?? 'secret') };
  if (spec.awsSecretsManager !== undefined) return { provider: 'awsSecretsManager', scope: spec.awsSecretsManager.region };
  if (spec.azureKeyVault !== undefined) {
    try {
      return { provider: 'azureKeyVault', scope: new URL(spec.azureKeyVault.vaultUrl).host.toLowerCase() };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export interface NoticeDispatcherDeps {
  readonly bindings: CacheReader<SecretBinding>;
  /**
   * The backend object a binding refers to by `name` (its `spec.backends` entry; undefined: the
   * default `backendRef`), from the caches.
   */
  readonly backendOf: (binding: SecretBinding, name: string | undefined) => AnyBackend | undefined;
  /** The resolver identity of a backend object's current client, if one was created. */
  readonly backendIdOf: (backend: AnyBackend) => string | undefined;
  /** Marks the resolver's entries of `key` unconfirmed, so the next reconcile checks them now. */
  readonly invalidate: (backendId: string, key: string) => void;
  /** Queues a binding's reconcile (`namespace/name`). */
  readonly enqueue: (bindingKey: string) => void;
  readonly clock: Clock;
  readonly metrics: NoticeMetrics;
  /**
   * Notices of one document within this many ms of a check it caused cost at most one more check,
   * at the end of the window (ADR 0220).
   */
  readonly windowMs: number;
}

/** A binding that reads a document, and the name of the backend it reads it from (undefined: default). */
interface IndexEntry {
  readonly binding: string;
  readonly backend: string | undefined;
}

interface Pending {
  /** When the last check of this document was scheduled. */
  lastAt: number;
  /** The trailing check, when notices came after the last one was scheduled. */
  trailing: TimerHandle | undefined;
}

/** Entries of the window state kept before old ones are swept. */
const sweepAbove = 4096;

/**
 * Turns change notices into early reconciles (ADR 0220). A notice of a document no binding uses
 * is dropped; one that a binding uses marks the resolver's entry unconfirmed and queues the
 * bindings that use it: their reconcile checks the version (cheap) and reads the value only if
 * it moved, through the backend's rate budget like every read. Per document, the first notice
 * schedules a check at once; notices within the window after it schedule one more at its end,
 * so a change announced late in a burst is still seen, and a burst of any size costs two checks
 * and one value read per real change. Work queue keys deduplicate bindings shared by documents.
 */
export class NoticeDispatcher implements ChangeNoticeSink {
  readonly #deps: NoticeDispatcherDeps;
  readonly #pending = new Map<string, Pending>();
  /** Document id → bindings that use it, rebuilt after a binding or backend changed. */
  #index: Map<string, IndexEntry[]> | undefined;
  #closed = false;

  constructor(deps: NoticeDispatcherDeps) {
    this.#deps = deps;
  }

  /** Bindings or backends changed: the index is rebuilt at the next notice. */
  invalidateIndex(): void {
    this.#index = undefined;
  }

  notice(source: NoticeSourceKind, notice: ChangeNotice): void {
    if (this.#closed) return;
    this.#heard(source);
    const id = documentId(notice.provider, notice.scope, trimSlashes(notice.key));
    const users = this.#indexed().get(id);
    if (users === undefined) {
      this.#deps.metrics.notices.inc({ source, result: 'unbound' });
      return;
    }
    const now = this.#deps.clock.now();
    const pending = this.#pending.get(id);
    if (pending === undefined || now - pending.lastAt >= this.#deps.windowMs) {
      this.#deps.metrics.notices.inc({ source, result: 'scheduled' });
      this.#pending.set(id, { lastAt: now, trailing: undefined });
      if (this.#pending.size > sweepAbove) this.#sweep(now);
      this.#dispatch(id, notice);
      return;
    }
    this.#deps.metrics.notices.inc({ source, result: 'coalesced' });
    if (pending.trailing !== undefined) return;
    pending.trailing = this.#deps.clock.setTimeout(() => {
      pending.trailing = undefined;
      pending.lastAt = this.#deps.clock.now();
      this.#dispatch(id, notice);
    }, pending.lastAt + this.#deps.windowMs - now);
  }

  ignored(source: NoticeSourceKind): void {
    this.#deps.metrics.notices.inc({ source, result: 'ignored' });
    this.#heard(source);
  }

  rejected(source: NoticeSourceKind, why: NoticeRejection): void {
    this.#deps.metrics.rejected.inc({ source, reason: why });
  }

  up(source: NoticeSourceKind, up: boolean): void {
    this.#deps.metrics.up.set({ source }, up ? 1 : 0);
  }

  /** Cancels trailing checks; later notices are dropped. */
  close(): void {
    this.#closed = true;
    for (const pending of this.#pending.values()) if (pending.trailing !== undefined) this.#deps.clock.clearTimeout(pending.trailing);
    this.#pending.clear();
  }

  /** The heartbeat: any valid input proves the source is connected and speaking. */
  #heard(source: NoticeSourceKind): void {
    this.#deps.metrics.lastInput.set({ source }, this.#deps.clock.wallNow().getTime() / 1000);
  }

  #dispatch(id: string, notice: ChangeNotice): void {
    if (this.#closed) return;
    const users = this.#indexed().get(id) ?? [];
    const invalidated = new Set<string>();
    const enqueued = new Set<string>();
    const key = trimSlashes(notice.key);
    for (const user of users) {
      const binding = this.#deps.bindings.get(user.binding);
      const backend = binding === undefined ? undefined : this.#deps.backendOf(binding, user.backend);
      const backendId = backend === undefined ? undefined : this.#deps.backendIdOf(backend);
      if (backendId !== undefined && !invalidated.has(backendId)) {
        invalidated.add(backendId);
        this.#deps.invalidate(backendId, key);
      }
      if (!enqueued.has(user.binding)) {
        enqueued.add(user.binding);
        this.#deps.enqueue(user.binding);
      }
    }
  }

  /** Per document: the bindings that read it and through which of their backends (ADR 0240). */
  #indexed(): Map<string, IndexEntry[]> {
    if (this.#index !== undefined) return this.#index;
    const index = new Map<string, IndexEntry[]>();
    for (const binding of this.#deps.bindings.list()) {
      let refs: ReturnType<typeof valueRefsOf>;
      try {
        refs = valueRefsOf(fileTemplates(binding.spec.files));
      } catch {
        // An invalid spec reads nothing; its reconcile reports why.
        continue;
      }
      const seen = new Set<string>();
      for (const ref of refs) {
        const backend = this.#deps.backendOf(binding, ref.backend);
        const scope = backend === undefined ? undefined : noticeScopeOf(backend);
        if (scope === undefined) continue;
        const id = documentId(scope.provider, scope.scope, trimSlashes(ref.key));
        const entry: IndexEntry = { binding: objectKey(binding), backend: ref.backend };
        const once = `${id}\u0000${entry.backend ?? ''}`;
        if (seen.has(once)) continue;
        seen.add(once);
        const list = index.get(id);
        if (list === undefined) index.set(id, [entry]);
        else list.push(entry);
      }
    }
    this.#index = index;
    return index;
  }

  #sweep(now: number): void {
    for (const [id, pending] of this.#pending) {
      if (pending.trailing === undefined && now - pending.lastAt >= this.#deps.windowMs) this.#pending.delete(id);
    }
  }
}

function documentId(provider: string, scope: string, key: string): string {
  return `${provider}\u0000${scope}\u0000${key}`;
}

function trimSlashes(path: string): string {
  return path.replace(/^\/+|\/+$/g, '');
}
