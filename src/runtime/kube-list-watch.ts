import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Random } from './clock.ts';
import type { ListWatchSource, WatchEvent, WatchHandlers } from './informer.ts';
import { requestJson, requestLines, type KubeTransport } from './kube-request.ts';

/**
 * A watch that delivered nothing (no event, no bookmark) for this long ends like one the server
 * closed, and the informer watches again from its version: a connection that died without a FIN
 * is noticed. The same 30 s client-node's `Watch` used before ADR 0200.
 */
const watchIdleTimeoutMs = 30_000;

/** A resource type of the API server: group ('' for core), version, plural. */
export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
}

/** Which objects of the resource an informer holds. */
export interface ListWatchScope {
  /** Only this namespace (namespaced resources); all namespaces when absent. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
}

export interface KubeListWatchOptions {
  /** Objects per list page. Default 500. */
  readonly pageSize?: number;
  /** Server-side watch timeout, drawn per watch from [min, 2·min) s like client-go. Default min 300. */
  readonly minWatchTimeoutSeconds?: number;
  readonly random?: Random;
  /**
   * Runs each whole list (all its pages) in a slot shared with other sources, e.g. `pLimit(2)`:
   * informers that start together (a pod cache per namespace) then list a few at a time instead of
   * holding every first page at once (ADR 0208). Default: no limit.
   */
  readonly listSlots?: <R>(task: () => Promise<R>) => Promise<R>;
}

/** The collection path of `resource` (in `namespace`, if given). */
export function resourcePath(resource: ResourceType, namespace?: string): string {
  const base = resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const ns = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  return `${base}${ns}/${resource.plural}`;
}

/** Resource types whose cluster-wide, unfiltered list would pull every secret-bearing object. */
const neverWatchedWhole = new Set(['secrets', 'configmaps']);

/**
 * Lists and watches one resource type on the API server, for {@link Informer}. Lists are paged
 * GETs with the kubeconfig's TLS and credentials; watches are streamed GETs of JSON lines with
 * bookmarks (our own transport, kube-request.ts: client-node's `Watch` loads undici and the
 * generated API classes, ADR 0200). Refuses to watch all Secrets or ConfigMaps of the cluster: scope it by namespace or
 * selector.
 */
export class KubeListWatch<T extends KubernetesObject> implements ListWatchSource<T> {
  readonly description: string;
  readonly #transport: KubeTransport;
  readonly #path: string;
  readonly #scope: ListWatchScope;
  readonly #pageSize: number;
  readonly #minWatchTimeoutSeconds: number;
  readonly #random: Random;
  readonly #listSlots: (<R>(task: () => Promise<R>) => Promise<R>) | undefined;

  constructor(transport: KubeTransport, resource: ResourceType, scope: ListWatchScope = {}, options: KubeListWatchOptions = {}) {
    const unscoped = scope.namespace === undefined && scope.labelSelector === undefined && scope.fieldSelector === undefined;
    if (resource.group === '' && neverWatchedWhole.has(resource.plural) && unscoped) {
      throw new Error(`refusing to watch all ${resource.plural} of the cluster: give a namespace or a selector`);
    }
    this.#transport = transport;
    this.#path = resourcePath(resource, scope.namespace);
    this.#scope = scope;
    this.#pageSize = options.pageSize ?? 500;
    this.#minWatchTimeoutSeconds = options.minWatchTimeoutSeconds ?? 300;
    this.#random = options.random ?? Math.random;
    this.#listSlots = options.listSlots;
    const parts = [
      `${resource.plural}${resource.group === '' ? '' : `.${resource.group}`}`,
      scope.namespace === undefined ? 'all namespaces' : `namespace ${scope.namespace}`,
      ...(scope.labelSelector === undefined ? [] : [`labels ${scope.labelSelector}`]),
      ...(scope.fieldSelector === undefined ? [] : [`fields ${scope.fieldSelector}`]),
    ];
    this.description = parts.join(', ');
  }

  async list(signal: AbortSignal, transform: (obj: T) => T): Promise<{ readonly items: T[]; readonly resourceVersion: string }> {
    const slots = this.#listSlots;
    return slots === undefined ? this.#listPages(signal, transform) : slots(() => this.#listPages(signal, transform));
  }

  async #listPages(signal: AbortSignal, transform: (obj: T) => T): Promise<{ readonly items: T[]; readonly resourceVersion: string }> {
    const items: T[] = [];
    let resourceVersion = '';
    let continueToken: string | undefined;
    do {
      const query: Record<string, string> = { limit: String(this.#pageSize) };
      if (continueToken !== undefined) query.continue = continueToken;
      if (this.#scope.labelSelector !== undefined) query.labelSelector = this.#scope.labelSelector;
      if (this.#scope.fieldSelector !== undefined) query.fieldSelector = this.#scope.fieldSelector;
      const page = (await requestJson(this.#transport, { method: 'GET', path: this.#path, query, signal })) as KubernetesListObject<T>;
      // Slimmed page by page: the whole objects of one page at most are alive at a time.
      for (const item of page.items) items.push(transform(item));
      resourceVersion = page.metadata?.resourceVersion ?? '';
      const next = page.metadata?._continue ?? (page.metadata as { continue?: string } | undefined)?.continue;
      continueToken = next === undefined || next === '' ? undefined : next;
    } while (continueToken !== undefined);
    return { items, resourceVersion };
  }

  watch(resourceVersion: string, handlers: WatchHandlers<T>, signal: AbortSignal): Promise<void> {
    const timeoutSeconds = Math.floor(this.#minWatchTimeoutSeconds * (1 + this.#random()));
    const query: Record<string, string> = { watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) };
    if (resourceVersion !== '') query.resourceVersion = resourceVersion;
    if (this.#scope.labelSelector !== undefined) query.labelSelector = this.#scope.labelSelector;
    if (this.#scope.fieldSelector !== undefined) query.fieldSelector = this.#scope.fieldSelector;
    return requestLines(
      this.#transport,
      { method: 'GET', path: this.#path, query, signal, idleTimeoutMs: watchIdleTimeoutMs },
      {
        onOpen: () => {
          handlers.onEstablished();
        },
        onLine: (line) => {
          const parsed = JSON.parse(line) as { type?: unknown; object?: unknown };
          const event = toWatchEvent<T>(typeof parsed.type === 'string' ? parsed.type : '', parsed.object);
          if (event !== undefined) handlers.onEvent(event);
        },
      },
    );
  }
}

function toWatchEvent<T>(phase: string, object: unknown): WatchEvent<T> | undefined {
  switch (phase) {
    case 'ADDED':
    case 'MODIFIED':
    case 'DELETED':
      return { type: phase, object: object as T };
    case 'BOOKMARK': {
      const rv = (object as KubernetesObject | undefined)?.metadata?.resourceVersion;
      return rv === undefined ? undefined : { type: 'BOOKMARK', resourceVersion: rv };
    }
    case 'ERROR':
      return { type: 'ERROR', status: object ?? {} };
    default:
      return undefined;
  }
}
