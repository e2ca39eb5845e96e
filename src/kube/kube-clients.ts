import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import {
  AppsV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  KubernetesObjectApi,
  type RequestContext,
} from '@kubernetes/client-node';

/** Where the controller finds the API server. Chosen once, in `main.ts`. */
export type KubeConfigSource =
  | { readonly kind: 'file'; readonly path: string; readonly context?: string }
  | { readonly kind: 'in-cluster' };

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/**
 * A file's path and version (mtime, size): enough to notice a certificate rotated in place, without
 * reading and hashing it again on every request (the library already reads it per request).
 */
const fileVersion = (path: string | undefined): string => {
  if (path === undefined || path === '') return '';
  try {
    const stat = statSync(path);
    return `${path}@${String(stat.mtimeMs)}:${String(stat.size)}`;
  } catch {
    return path;
  }
};

/**
 * A KubeConfig whose API calls share one connection pool per TLS identity. `@kubernetes/client-node`
 * 2.0.1 builds a new undici Agent for every request, so every call paid a TCP + TLS handshake to the
 * API server and left an idle socket behind (ADR 0142). The pool is replaced when what the
 * connections are made with changes (server, CA, client certificate and key, also when rotated in
 * their files); bearer tokens are headers, set per request as before.
 */
export class PooledKubeConfig extends KubeConfig {
  #pool: { readonly identity: string; readonly dispatcher: Dispatcher } | undefined;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (fresh === undefined) return;
    const identity = this.#tlsIdentity();
    if (this.#pool?.identity === identity) {
      // Never used: closing it releases nothing but its bookkeeping.
      void fresh.close();
    } else {
      // Requests in flight on the old pool finish; its connections close after them.
      if (this.#pool !== undefined) void this.#pool.dispatcher.close();
      this.#pool = { identity, dispatcher: fresh };
    }
    context.setDispatcher(this.#pool.dispatcher);
  }

  #tlsIdentity(): string {
    const cluster = this.getCurrentCluster();
    const user = this.getCurrentUser();
    const hash = createHash('sha256');
    for (const part of [
      cluster?.server, cluster?.caData, fileVersion(cluster?.caFile), String(cluster?.skipTLSVerify), cluster?.tlsServerName, cluster?.proxyUrl,
      user?.name, user?.certData, fileVersion(user?.certFile), user?.keyData, fileVersion(user?.keyFile),
    ]) {
      hash.update(part ?? '').update('\0');
    }
    return hash.digest('hex');
  }
}

export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  const kc = new PooledKubeConfig();
  switch (source.kind) {
    case 'file':
      kc.loadFromFile(source.path);
      if (source.context !== undefined) kc.setCurrentContext(source.context);
      break;
    case 'in-cluster':
      kc.loadFromCluster();
      break;
  }
  return kc;
}

/** The typed API clients the controller uses; created once and passed down. */
export interface KubeClients {
  readonly config: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly auth: AuthenticationV1Api;
  readonly coordination: CoordinationV1Api;
  readonly custom: CustomObjectsApi;
  readonly events: EventsV1Api;
  readonly objects: KubernetesObjectApi;
}

export function createKubeClients(config: KubeConfig): KubeClients {
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    apps: config.makeApiClient(AppsV1Api),
    auth: config.makeApiClient(AuthenticationV1Api),
    coordination: config.makeApiClient(CoordinationV1Api),
    custom: config.makeApiClient(CustomObjectsApi),
    events: config.makeApiClient(EventsV1Api),
    objects: KubernetesObjectApi.makeApiClient(config),
  };
}
