import { V1ObjectMeta, type KubernetesObject } from '@kubernetes/client-node';
import type { ListWatchSource, WatchEvent, WatchHandlers } from './informer.ts';
import { KubeApiError } from './kube-api-error.ts';

export interface FakeObject extends KubernetesObject {
  data?: Record<string, string>;
}

interface LoggedEvent {
  readonly rv: number;
  readonly event: WatchEvent<FakeObject>;
}

/**
 * An in-memory {@link ListWatchSource} for unit tests of the informer (a fake of our own port, not
 * of the API server). It keeps an event log like the watch cache: a watch from resourceVersion N
 * replays the events after N, or answers 410 Gone if N is older than the log's retained window.
 * Tests break it on purpose: failing lists, failing or closing watches.
 */
export class FakeListWatch implements ListWatchSource<FakeObject> {
  readonly description: string;
  #rv = 100;
  readonly #objects = new Map<string, FakeObject>();
  #log: LoggedEvent[] = [];
  /** Events older than this resourceVersion are compacted away. */
  #oldestRetained = 100;
  #active: { handlers: WatchHandlers<FakeObject>; close: () => void; fail: (e: Error) => void; from: number } | undefined;
  readonly listCalls: number[] = [];
  readonly watchCalls: string[] = [];
  /** The next N list calls fail. */
  failLists = 0;
  /** The next N watch calls fail before being established. */
  failWatches = 0;
  /** The next N watches are accepted, then closed at once by the "server". */
  closeWatchesImmediately = 0;
  readonly #now: () => number;

  constructor(now: () => number, description = 'fake') {
    this.#now = now;
    this.description = description;
  }

  get watching(): boolean {
    return this.#active !== undefined;
  }

  list(_signal: AbortSignal, transform: (obj: FakeObject) => FakeObject = (obj) => obj): Promise<{ items: FakeObject[]; resourceVersion: string }> {
    this.listCalls.push(this.#now());
    if (this.failLists > 0) {
      this.failLists--;
      return Promise.reject(new KubeApiError(0, undefined, 'connect ECONNREFUSED'));
    }
    return Promise.resolve({ items: [...this.#objects.values()].map((o) => transform(structuredClone(o))), resourceVersion: String(this.#rv) });
  }

  watch(resourceVersion: string, handlers: WatchHandlers<FakeObject>, signal: AbortSignal): Promise<void> {
    this.watchCalls.push(resourceVersion);
    if (this.failWatches > 0) {
      this.failWatches--;
      return Promise.reject(new KubeApiError(0, undefined, 'connect ECONNREFUSED'));
    }
    const from = Number(resourceVersion);
    return new Promise<void>((resolve, reject) => {
      const detach = (): void => {
        this.#active = undefined;
        signal.removeEventListener('abort', close);
      };
      const close = (): void => {
        detach();
        resolve();
      };
      signal.addEventListener('abort', close, { once: true });
      handlers.onEstablished();
      if (this.closeWatchesImmediately > 0) {
        this.closeWatchesImmediately--;
        close();
        return;
      }
      this.#active = {
        handlers,
        close,
        fail: (e) => {
          detach();
          reject(e);
        },
        from,
      };
      if (from < this.#oldestRetained) {
        handlers.onEvent({ type: 'ERROR', status: { code: 410, reason: 'Expired', message: 'too old resource version' } });
        return;
      }
      for (const logged of this.#log) if (logged.rv > from) handlers.onEvent(structuredClone(logged.event));
    });
  }

  /** Server-side create or update. */
  put(namespace: string, name: string, data: Record<string, string>, extra: Partial<FakeObject['metadata']> = {}): FakeObject {
    const key = `${namespace}/${name}`;
    const exists = this.#objects.has(key);
    const obj: FakeObject = { metadata: Object.assign(new V1ObjectMeta(), { namespace, name, resourceVersion: String(++this.#rv) }, extra), data };
    this.#objects.set(key, obj);
    this.#record({ type: exists ? 'MODIFIED' : 'ADDED', object: structuredClone(obj) });
    return obj;
  }

  remove(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const obj = this.#objects.get(key);
    if (obj === undefined) return;
    this.#objects.delete(key);
    const gone = structuredClone(obj);
    gone.metadata = Object.assign(new V1ObjectMeta(), obj.metadata, { resourceVersion: String(++this.#rv) });
    this.#record({ type: 'DELETED', object: gone });
  }

  bookmark(): void {
    this.#active?.handlers.onEvent({ type: 'BOOKMARK', resourceVersion: String(this.#rv) });
  }

  /** Forgets events up to now: watches from older versions get 410 Gone. */
  compact(): void {
    this.#log = [];
    this.#oldestRetained = this.#rv;
  }

  /** The server ends the watch normally. */
  closeWatch(): void {
    this.#active?.close();
  }

  /** The connection breaks. */
  breakWatch(): void {
    this.#active?.fail(new KubeApiError(0, undefined, 'socket hang up'));
  }

  /** The server sends a watch ERROR event. */
  errorEvent(code: number): void {
    this.#active?.handlers.onEvent({ type: 'ERROR', status: { code, reason: 'InternalError', message: 'boom' } });
  }

  #record(event: WatchEvent<FakeObject>): void {
    this.#log.push({ rv: this.#rv, event });
    this.#active?.handlers.onEvent(structuredClone(event));
  }
}
