import { readFileSync, statSync } from 'node:fs';
import { Agent, type RequestOptions } from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import type { KubeTransport } from '../runtime/kube-request.ts';

/** Where the controller finds the API server. Chosen once, in `main.ts`. */
export type KubeConfigSource =
  | { readonly kind: 'file'; readonly path: string; readonly context?: string }
  | { readonly kind: 'in-cluster' };

const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How often a token file is read again (a projected service-account token rotates; client-go: 1 min). */
const tokenFileRereadMs = 60_000;

/** What the controller reads of a kubeconfig: the current context's cluster and user. */
interface Endpoint {
  readonly server: string;
  readonly caData?: string;
  readonly caFile?: string;
  readonly skipTlsVerify: boolean;
  readonly tlsServerName?: string;
  readonly certData?: string;
  readonly certFile?: string;
  readonly keyData?: string;
  readonly keyFile?: string;
  readonly token?: string;
  readonly tokenFile?: string;
  readonly username?: string;
  readonly password?: string;
}

/**
 * The API server's address, TLS material and credentials, read from a kubeconfig file or the pod's
 * service account (ADR 0200). It is the {@link KubeTransport} every API call of the controller goes
 * through: one keep-alive connection pool per TLS identity, replaced when a certificate or key file
 * is rotated in place (ADR 0142); bearer tokens are headers, a token file is re-read every minute.
 *
 * client-node's `KubeConfig` does the same and more, but importing it loads every generated API
 * class (~70 MiB RSS). Users with an `exec` or `auth-provider` credential plugin, or a proxy, get
 * the library's `KubeConfig` instead ({@link loadKubeConnection}), paying its memory only then.
 */
export class KubeConnection implements KubeTransport {
  readonly #endpoint: Endpoint;
  #pool: { readonly identity: string; readonly agent: Agent } | undefined;
  #token: { readonly value: string; readonly readAt: number } | undefined;

  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
  }

  getCurrentCluster(): { readonly server: string } {
    return { server: this.#endpoint.server };
  }

  applyToHTTPSOptions(options: RequestOptions): Promise<void> {
    const e = this.#endpoint;
    const ca = material(e.caData, e.caFile);
    const cert = material(e.certData, e.certFile);
    const key = material(e.keyData, e.keyFile);
    if (ca !== undefined) options.ca = ca;
    if (cert !== undefined) options.cert = cert;
    if (key !== undefined) options.key = key;
    if (e.skipTlsVerify) options.rejectUnauthorized = false;
    if (e.tlsServerName !== undefined) options.servername = e.tlsServerName;
    const headers = (options.headers ?? {}) as Record<string, string>;
    const token = this.#bearerToken();
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    else if (e.username !== undefined) options.auth = `${e.username}:${e.password ?? ''}`;
    options.headers = headers;
    options.agent = this.#agent(options);
    return Promise.resolve();
  }

  /** Closes the pooled connections (at shutdown). */
  close(): void {
    this.#pool?.agent.destroy();
    this.#pool = undefined;
  }

  #agent(options: RequestOptions): Agent {
    const e = this.#endpoint;
    const identity = [e.server, e.caData, fileVersion(e.caFile), String(e.skipTlsVerify), e.tlsServerName, e.certData, fileVersion(e.certFile), e.keyData, fileVersion(e.keyFile)]
      .map((part) => part ?? '')
      .join('\0');
    if (this.#pool?.identity === identity) return this.#pool.agent;
    // Requests in flight on the old pool finish; its idle connections close.
    const old = this.#pool?.agent;
    const agent = new Agent({
      keepAlive: true,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ...(options.cert === undefined ? {} : { cert: options.cert }),
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: options.rejectUnauthorized }),
      ...(options.servername === undefined ? {} : { servername: options.servername }),
    });
    this.#pool = { identity, agent };
    if (old !== undefined) setImmediate(() => { old.destroy(); });
    return agent;
  }

  #bearerToken(): string | undefined {
    const e = this.#endpoint;
    if (e.tokenFile === undefined) return e.token;
    const now = Date.now();
    if (this.#token === undefined || now - this.#token.readAt >= tokenFileRereadMs) {
      this.#token = { value: readFileSync(e.tokenFile, 'utf8').trim(), readAt: now };
    }
    return this.#token.value;
  }
}

/**
 * The connection to the API server for `source`. A kubeconfig whose user runs a credential plugin
 * (`exec`, `auth-provider`) or whose cluster names a proxy is handed to client-node's `KubeConfig`,
 * loaded only then.
 */
export async function loadKubeConnection(source: KubeConfigSource, env: InClusterEnv): Promise<KubeTransport> {
  if (source.kind === 'in-cluster') return new KubeConnection(inClusterEndpoint(env));
  const text = readFileSync(source.path, 'utf8');
  const read = readKubeconfig(parse(text) as unknown, source.path, source.context);
  if (read.kind === 'endpoint') return new KubeConnection(read.endpoint);
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromString(text);
  if (source.context !== undefined) kc.setCurrentContext(source.context);
  // Relative paths in the file are relative to the file, as `loadFromFile` would resolve them.
  kc.makePathsAbsolute(dirname(source.path));
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error(`kubeconfig ${source.path}: no current cluster`);
  return { getCurrentCluster: () => cluster, applyToHTTPSOptions: (options) => kc.applyToHTTPSOptions(options) };
}

/** The API server's Service address, as the kubelet sets it in every container's environment. */
export interface InClusterEnv {
  readonly KUBERNETES_SERVICE_HOST?: string | undefined;
  readonly KUBERNETES_SERVICE_PORT?: string | undefined;
}

function inClusterEndpoint(env: InClusterEnv): Endpoint {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || port === undefined) throw new Error('not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    caFile: join(serviceAccountDir, 'ca.crt'),
    tokenFile: join(serviceAccountDir, 'token'),
    skipTlsVerify: false,
  };
}

type Read = { readonly kind: 'endpoint'; readonly endpoint: Endpoint } | { readonly kind: 'plugin' };

/** The current context's cluster and user of a parsed kubeconfig; relative files resolved against its directory. */
export function readKubeconfig(doc: unknown, path: string, context?: string): Read {
  const root = record(doc);
  const contextName = context ?? str(root['current-context']);
  if (contextName === undefined) throw new Error(`kubeconfig ${path}: no current-context`);
  const ctx = record(named(root.contexts, contextName, path, 'context').context);
  const clusterName = str(ctx.cluster);
  const userName = str(ctx.user);
  if (clusterName === undefined) throw new Error(`kubeconfig ${path}: context ${contextName} names no cluster`);
  const cluster = record(named(root.clusters, clusterName, path, 'cluster').cluster);
  const user = userName === undefined ? {} : record(named(root.users, userName, path, 'user').user);
  if (user.exec !== undefined || user['auth-provider'] !== undefined || cluster['proxy-url'] !== undefined) return { kind: 'plugin' };
  const server = str(cluster.server);
  if (server === undefined) throw new Error(`kubeconfig ${path}: cluster ${clusterName} has no server`);
  const file = (value: unknown): string | undefined => {
    const p = str(value);
    return p === undefined || isAbsolute(p) ? p : join(dirname(path), p);
  };
  const fields: Record<string, string | undefined> = {
    caData: str(cluster['certificate-authority-data']),
    caFile: file(cluster['certificate-authority']),
    tlsServerName: str(cluster['tls-server-name']),
    certData: str(user['client-certificate-data']),
    certFile: file(user['client-certificate']),
    keyData: str(user['client-key-data']),
    keyFile: file(user['client-key']),
    token: str(user.token),
    tokenFile: file(user.tokenFile),
    username: str(user.username),
    password: str(user.password),
  };
  const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<Endpoint>;
  return { kind: 'endpoint', endpoint: { ...defined, server, skipTlsVerify: cluster['insecure-skip-tls-verify'] === true } };
}

function named(list: unknown, name: string, path: string, what: string): Record<string, unknown> {
  const found = (Array.isArray(list) ? list : []).map(record).find((entry) => entry.name === name);
  if (found === undefined) throw new Error(`kubeconfig ${path}: no ${what} named ${name}`);
  return found;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** `-data` fields are base64 of PEM; files hold PEM. Read per request, as client-node does. */
function material(data: string | undefined, file: string | undefined): Buffer | undefined {
  if (data !== undefined) return Buffer.from(data, 'base64');
  if (file !== undefined) return readFileSync(file);
  return undefined;
}

/**
 * A file's path and version (mtime, size): enough to notice a certificate rotated in place, without
 * hashing it on every request.
 */
function fileVersion(path: string | undefined): string {
  if (path === undefined) return '';
  try {
    const stat = statSync(path);
    return `${path}@${String(stat.mtimeMs)}:${String(stat.size)}`;
  } catch {
    return path;
  }
}
