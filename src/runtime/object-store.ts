import type { KubernetesObject } from '@kubernetes/client-node';

/** Maps an object to the values it is indexed under (e.g. a pod to its node name). */
export type Indexer<T> = (obj: T) => readonly string[];

/** Read access to an informer's cache. Objects are shared: treat them as read-only. */
export interface CacheReader<T> {
  /** By key: `namespace/name`, or `name` for cluster-scoped objects. */
  get(key: string): T | undefined;
  list(): T[];
  listNamespace(namespace: string): T[];
  /** Objects whose indexer (see `addIndex`) returned `value`. */
  byIndex(index: string, value: string): T[];
}

/** The cache key of an object: `namespace/name`, or `name` when cluster-scoped. */
export function objectKey(obj: KubernetesObject): string {
  const name = obj.metadata?.name ?? '';
  const namespace = obj.metadata?.namespace;
  return namespace === undefined || namespace === '' ? name : `${namespace}/${name}`;
}

/** The parts of a cache key. */
export function splitKey(key: string): { readonly namespace: string | undefined; readonly name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

const lastApplied = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Drops what no controller reads but every object carries: `metadata.managedFields` and kubectl's
 * last-applied annotation (a full copy of the object). Mutates and returns `obj`.
 */
export function stripForCache<T extends KubernetesObject>(obj: T): T {
  const metadata = obj.metadata;
  if (metadata !== undefined) {
    delete metadata.managedFields;
    if (metadata.annotations !== undefined && lastApplied in metadata.annotations) {
      const { [lastApplied]: _dropped, ...rest } = metadata.annotations;
      metadata.annotations = rest;
    }
  }
  return obj;
}

const namespaceIndex = 'namespace';

/** What changed when the whole content was replaced by a fresh list. */
export interface StoreDiff<T> {
  readonly added: T[];
  readonly updated: { readonly old: T; readonly current: T }[];
  readonly deleted: T[];
}

/** The informer's cache: objects by key, plus named indexes kept in step with every change. */
export class ObjectStore<T extends KubernetesObject> implements CacheReader<T> {
  readonly #items = new Map<string, T>();
  readonly #indexers = new Map<string, Indexer<T>>();
  /** index name → indexed value → keys */
  readonly #indices = new Map<string, Map<string, Set<string>>>();

  constructor() {
    this.addIndex(namespaceIndex, (obj) => [obj.metadata?.namespace ?? '']);
  }

  get size(): number {
    return this.#items.size;
  }

  /** Adds (or replaces) a named index and indexes the objects already cached. */
  addIndex(name: string, indexer: Indexer<T>): void {
    this.#indexers.set(name, indexer);
    const index = new Map<string, Set<string>>();
    this.#indices.set(name, index);
    for (const [key, obj] of this.#items) addToIndex(index, indexer(obj), key);
  }

  get(key: string): T | undefined {
    return this.#items.get(key);
  }

  list(): T[] {
    return [...this.#items.values()];
  }

  listNamespace(namespace: string): T[] {
    return this.byIndex(namespaceIndex, namespace);
  }

  byIndex(index: string, value: string): T[] {
    const indexMap = this.#indices.get(index);
    if (indexMap === undefined) throw new Error(`no index named ${index}`);
    const keys = indexMap.get(value);
    if (keys === undefined) return [];
    const result: T[] = [];
    for (const key of keys) {
      const obj = this.#items.get(key);
      if (obj !== undefined) result.push(obj);
    }
    return result;
  }

  /** Stores `obj`; returns the object it replaced, if any. */
  upsert(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.#items.get(key);
    if (old !== undefined) this.#unindex(key, old);
    this.#items.set(key, obj);
    for (const [name, indexer] of this.#indexers) addToIndex(this.#index(name), indexer(obj), key);
    return old;
  }

  /** Removes the object with `key`; returns it, if it was cached. */
  remove(key: string): T | undefined {
    const old = this.#items.get(key);
    if (old === undefined) return undefined;
    this.#unindex(key, old);
    this.#items.delete(key);
    return old;
  }

  /**
   * Makes the store hold exactly `items` and says what changed. An object whose resourceVersion
   * did not change counts as unchanged (and keeps its cached instance).
   */
  replace(items: readonly T[]): StoreDiff<T> {
    const diff: StoreDiff<T> = { added: [], updated: [], deleted: [] };
    const seen = new Set<string>();
    for (const obj of items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.#items.get(key);
      if (old === undefined) {
        this.upsert(obj);
        diff.added.push(obj);
      } else if (!sameVersion(old, obj)) {
        this.upsert(obj);
        diff.updated.push({ old, current: obj });
      }
    }
    for (const [key, obj] of [...this.#items]) {
      if (!seen.has(key)) {
        this.remove(key);
        diff.deleted.push(obj);
      }
    }
    return diff;
  }

  #index(name: string): Map<string, Set<string>> {
    let index = this.#indices.get(name);
    if (index === undefined) {
      index = new Map();
      this.#indices.set(name, index);
    }
    return index;
  }

  #unindex(key: string, obj: T): void {
    for (const [name, indexer] of this.#indexers) {
      const index = this.#index(name);
      for (const value of indexer(obj)) {
        const keys = index.get(value);
        if (keys === undefined) continue;
        keys.delete(key);
        if (keys.size === 0) index.delete(value);
      }
    }
  }
}

function addToIndex(index: Map<string, Set<string>>, values: readonly string[], key: string): void {
  for (const value of values) {
    let keys = index.get(value);
    if (keys === undefined) {
      keys = new Set();
      index.set(value, keys);
    }
    keys.add(key);
  }
}

export function sameVersion(a: KubernetesObject, b: KubernetesObject): boolean {
  const av = a.metadata?.resourceVersion;
  return av !== undefined && av !== '' && av === b.metadata?.resourceVersion;
}
