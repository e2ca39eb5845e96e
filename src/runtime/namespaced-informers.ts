import type { KubernetesObject } from '@kubernetes/client-node';
import type { Informer, InformerHandlers } from './informer.ts';
import { silentLogger, type RuntimeLogger } from './logger.ts';
import { splitKey, type CacheReader, type Indexer } from './object-store.ts';
import type { Runnable, SyncStatus } from './runnable.ts';

export interface NamespacedInformersOptions<T extends KubernetesObject> {
  /** Fixed resource name (readiness check name, logs). */
  readonly resource: string;
  /** Builds the informer for one namespace (scoped source, same transform and options). */
  readonly newInformer: (namespace: string) => Informer<T>;
  readonly logger?: RuntimeLogger;
}

interface Member<T extends KubernetesObject> {
  readonly informer: Informer<T>;
  readonly unsubscribe: (() => void)[];
  abort?: AbortController;
  done?: Promise<void>;
}

/**
 * One informer per namespace in a set that changes at run time, read as one cache: watches pods
 * only where bindings exist, instead of every pod of the cluster. Handlers and indexes apply to
 * every member, present and future.
 *
 * Removing a namespace drops its cache without delete events: the objects still exist, we merely
 * stop caring about them, and a delete event would make controllers believe they were gone.
 */
export class NamespacedInformers<T extends KubernetesObject> implements CacheReader<T>, SyncStatus, Runnable {
  readonly name: string;
  readonly needLeaderElection = false;
  readonly #newInformer: (namespace: string) => Informer<T>;
  readonly #logger: RuntimeLogger;
  readonly #members = new Map<string, Member<T>>();
  readonly #handlers = new Set<InformerHandlers<T>>();
  readonly #indexers = new Map<string, Indexer<T>>();
  #running: AbortSignal | undefined;

  constructor(options: NamespacedInformersOptions<T>) {
    this.name = options.resource;
    this.#newInformer = options.newInformer;
    this.#logger = options.logger ?? silentLogger;
  }

  namespaces(): string[] {
    return [...this.#members.keys()].sort();
  }

  /** Starts caching `namespace` (no-op if it is already cached). */
  addNamespace(namespace: string): void {
    if (this.#members.has(namespace)) return;
    const informer = this.#newInformer(namespace);
    for (const [name, indexer] of this.#indexers) informer.addIndex(name, indexer);
    const member: Member<T> = { informer, unsubscribe: [...this.#handlers].map((h) => informer.addHandler(h)) };
    this.#members.set(namespace, member);
    this.#logger.info('namespace informer added', { resource: this.name, namespace });
    if (this.#running !== undefined && !this.#running.aborted) this.#startMember(member);
  }

  /** Stops caching `namespace`; its objects leave the cache silently (see class comment). */
  removeNamespace(namespace: string): void {
    const member = this.#members.get(namespace);
    if (member === undefined) return;
    this.#members.delete(namespace);
    for (const unsubscribe of member.unsubscribe) unsubscribe();
    member.abort?.abort();
    this.#logger.info('namespace informer removed', { resource: this.name, namespace });
  }

  /** Makes the set exactly `namespaces`. */
  setNamespaces(namespaces: Iterable<string>): void {
    const wanted = new Set(namespaces);
    for (const ns of [...this.#members.keys()]) if (!wanted.has(ns)) this.removeNamespace(ns);
    for (const ns of wanted) this.addNamespace(ns);
  }

  addHandler(handlers: InformerHandlers<T>): () => void {
    this.#handlers.add(handlers);
    const unsubscribes = [...this.#members.values()].map((m) => {
      const unsubscribe = m.informer.addHandler(handlers);
      m.unsubscribe.push(unsubscribe);
      return unsubscribe;
    });
    return () => {
      this.#handlers.delete(handlers);
      for (const unsubscribe of unsubscribes) unsubscribe();
    };
  }

  addIndex(name: string, indexer: Indexer<T>): void {
    this.#indexers.set(name, indexer);
    for (const m of this.#members.values()) m.informer.addIndex(name, indexer);
  }

  get(key: string): T | undefined {
    const { namespace } = splitKey(key);
    return namespace === undefined ? undefined : this.#members.get(namespace)?.informer.get(key);
  }

  list(): T[] {
    return [...this.#members.values()].flatMap((m) => m.informer.list());
  }

  listNamespace(namespace: string): T[] {
    return this.#members.get(namespace)?.informer.list() ?? [];
  }

  byIndex(index: string, value: string): T[] {
    if (!this.#indexers.has(index) && index !== 'namespace') throw new Error(`no index named ${index}`);
    return [...this.#members.values()].flatMap((m) => m.informer.byIndex(index, value));
  }

  /** Synced when running and every member has listed once (an empty set is synced). */
  hasSynced(): boolean {
    return this.#running !== undefined && [...this.#members.values()].every((m) => m.informer.hasSynced());
  }

  /**
   * Resolves true once `namespace`'s cache has listed, false when it is not cached or stops first
   * (a waiter on a namespace removed before it started waits no longer than the informer's run).
   */
  whenNamespaceSynced(namespace: string): Promise<boolean> {
    const member = this.#members.get(namespace);
    if (member === undefined) return Promise.resolve(false);
    return member.informer.whenSynced(member.abort?.signal);
  }

  /** Whether `namespace` is cached and has listed once: a reader must not trust an unsynced namespace. */
  hasSyncedNamespace(namespace: string): boolean {
    return this.#members.get(namespace)?.informer.hasSynced() ?? false;
  }

  /** The stalest member's staleness (0 for an empty set). */
  staleness(): number {
    return Math.max(0, ...[...this.#members.values()].map((m) => m.informer.staleness()));
  }

  async start(signal: AbortSignal): Promise<void> {
    if (this.#running !== undefined) throw new Error(`namespaced informers ${this.name} were already started`);
    this.#running = signal;
    for (const member of this.#members.values()) this.#startMember(member);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => { resolve(); }, { once: true });
    });
    await Promise.all([...this.#members.values()].flatMap((m) => (m.done === undefined ? [] : [m.done])));
  }

  #startMember(member: Member<T>): void {
    const abort = new AbortController();
    const running = this.#running;
    const onStop = (): void => { abort.abort(); };
    running?.addEventListener('abort', onStop, { once: true });
    abort.signal.addEventListener('abort', () => running?.removeEventListener('abort', onStop), { once: true });
    member.abort = abort;
    member.done = member.informer.start(abort.signal).catch((error: unknown) => {
      this.#logger.error('namespace informer ended with an error', { resource: this.name, error: String(error) });
    });
  }
}
