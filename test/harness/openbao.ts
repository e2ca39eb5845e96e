import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baoBinary, freePorts } from './backend-tools.ts';
import { registerNeedlesIn } from './leak-capture.ts';
import { startProcess, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import type { OpenBaoEndpoint } from './world-state.ts';

/**
 * OpenBao for the test world: `bao server -dev` (in memory, unsealed, KV v2 at `secret/`) on
 * 127.0.0.1, with a fixed root token and a file audit device whose log tests read to count backend
 * reads (ADR 0020). Suites may add audit devices through the API (the event-driven rotation suite
 * points a `socket` device at the controller's listener, ADR 0221); the file device stays, so a
 * request never fails for a socket device whose listener went away. Everything after the start
 * goes through the HTTP API with plain fetch.
 */

/** The dev server's root token: a fixed test value, so a world can be driven by hand too. */
export const openBaoRootToken = 'secret-binder-test-root';

export async function startOpenBao(opts: {
  readonly dir: string;
  readonly logDir: string;
}): Promise<{ record: ProcessRecord; endpoint: OpenBaoEndpoint }> {
  const dir = join(opts.dir, 'openbao');
  mkdirSync(dir, { recursive: true });
  // Dev mode also opens its cluster listener on port+1 (127.0.0.1 too), so both must be free.
  const port = await freePorts(2);
  const address = `http://127.0.0.1:${port}`;
  const auditLogPath = join(dir, 'audit.log');
  // Declared in a config file merged into dev mode, the file device exists from the first request
  // on. OpenBao refuses to create audit devices through the API unless told to: the world allows it
  // for the socket devices suites enable at their own listeners (`bao audit enable socket ...`).
  const configPath = join(dir, 'audit.hcl');
  writeFileSync(
    configPath,
    `unsafe_allow_api_audit_creation = true\naudit "file" "file" {\n  options {\n    file_path = ${JSON.stringify(auditLogPath)}\n  }\n}\n`,
  );
  const record = startProcess({
    name: 'openbao',
    command: baoBinary(),
    args: [
      'server',
      '-dev',
      `-dev-root-token-id=${openBaoRootToken}`,
      `-dev-listen-address=127.0.0.1:${port}`,
      '-dev-no-store-token',
      `-config=${configPath}`,
    ],
    // HOME: the CLI's token helper and any dotfiles stay inside the world.
    env: { HOME: dir, BAO_API_ADDR: address },
    cwd: dir,
    logDir: opts.logDir,
    readiness: { kind: 'http', url: `${address}/v1/sys/health`, okStatuses: [200] },
  });
  const endpoint: OpenBaoEndpoint = {
    address,
    rootToken: openBaoRootToken,
    kvMount: 'secret',
    kubernetesAuthMount: 'kubernetes',
    auditLogPath,
  };
  await waitReady(record, 30_000);
  // Dev mode mounts KV v2 at secret/ (checked, not assumed: the adapters rely on it).
  const mounts = (await openBaoRequest(endpoint, 'GET', 'sys/mounts')) as { data?: Record<string, MountInfo> };
  const kv = mounts.data?.['secret/'];
  if (kv?.type !== 'kv' || kv.options?.version !== '2') {
    throw new Error(`openbao: secret/ is not KV v2 (${JSON.stringify(kv)})`);
  }
  return { record, endpoint };
}

interface MountInfo {
  readonly type?: string;
  readonly options?: { readonly version?: string } | null;
}

/** Error of an OpenBao API call; carries the status and OpenBao's `errors`, never the body sent. */
export class OpenBaoApiError extends Error {
  readonly status: number;
  constructor(method: string, path: string, status: number, errors: string) {
    super(`openbao ${method} /v1/${path}: ${status} ${errors}`);
    this.name = 'OpenBaoApiError';
    this.status = status;
  }
}

/**
 * One call to the OpenBao HTTP API as root (or as `token`; '' sends none). Returns the parsed JSON answer, or
 * undefined for 204. Throws OpenBaoApiError on any other non-2xx.
 */
export async function openBaoRequest(
  endpoint: Pick<OpenBaoEndpoint, 'address' | 'rootToken'>,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST',
  path: string,
  body?: unknown,
  token: string = endpoint.rootToken,
): Promise<unknown> {
  const response = await fetch(`${endpoint.address}/v1/${path}`, {
    method,
    headers: {
      ...(token === '' ? {} : { 'X-Vault-Token': token }),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (response.status === 204) return undefined;
  const text = await response.text();
  if (!response.ok) {
    let errors = text.slice(0, 500);
    try {
      errors = ((JSON.parse(text) as { errors?: string[] }).errors ?? []).join('; ');
    } catch {
      // Not JSON: keep the text.
    }
    throw new OpenBaoApiError(method, path, response.status, errors);
  }
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

export interface KubernetesAuthTarget {
  /** https://127.0.0.1:<port> of the kube-apiserver. */
  readonly host: string;
  readonly caPem: string;
  /** The service-account issuer of the cluster (`iss` of its tokens). */
  readonly issuer: string;
  /** A token allowed to call TokenReview (system:auth-delegator). */
  readonly tokenReviewerJwt: string;
}

/**
 * Enables the kubernetes auth method at `mount` (default: the endpoint's, `kubernetes`) and points
 * it at the world's apiserver. Idempotent: an already enabled mount is reconfigured.
 */
export async function configureOpenBaoKubernetesAuth(
  endpoint: OpenBaoEndpoint,
  kube: KubernetesAuthTarget,
  mount: string = endpoint.kubernetesAuthMount,
): Promise<void> {
  const auths = (await openBaoRequest(endpoint, 'GET', 'sys/auth')) as { data?: Record<string, unknown> };
  if (auths.data?.[`${mount}/`] === undefined) {
    await openBaoRequest(endpoint, 'POST', `sys/auth/${mount}`, { type: 'kubernetes' });
  }
  await openBaoRequest(endpoint, 'POST', `auth/${mount}/config`, {
    kubernetes_host: kube.host,
    kubernetes_ca_cert: kube.caPem,
    token_reviewer_jwt: kube.tokenReviewerJwt,
    issuer: kube.issuer,
    // The issuer is known, so OpenBao checks it too (the apiserver's TokenReview checks it anyway).
    disable_iss_validation: false,
  });
}

/**
 * The audience the test world's kubernetes auth roles expect by default, and backends request: a
 * backend's token never carries the API server's audience (ADR 0150).
 */
export const kubernetesAuthAudience = 'vault';

/** Creates or replaces a role of the kubernetes auth method. */
export async function createKubernetesRole(
  endpoint: OpenBaoEndpoint,
  options: {
    readonly role: string;
    readonly boundServiceAccountNames: readonly string[];
    readonly boundNamespaces: readonly string[];
    readonly policies: readonly string[];
    /** The `aud` a login token must carry; default {@link kubernetesAuthAudience}. */
    readonly audience?: string;
    readonly tokenTtlSeconds?: number;
    readonly mount?: string;
  },
): Promise<void> {
  const mount = options.mount ?? endpoint.kubernetesAuthMount;
  await openBaoRequest(endpoint, 'POST', `auth/${mount}/role/${encodeURIComponent(options.role)}`, {
    bound_service_account_names: options.boundServiceAccountNames,
    bound_service_account_namespaces: options.boundNamespaces,
    token_policies: options.policies,
    audience: options.audience ?? kubernetesAuthAudience,
    token_ttl: options.tokenTtlSeconds ?? 3600,
  });
}

/** Creates or replaces an ACL policy (HCL text). */
export async function writePolicy(endpoint: OpenBaoEndpoint, name: string, policy: string): Promise<void> {
  await openBaoRequest(endpoint, 'PUT', `sys/policies/acl/${encodeURIComponent(name)}`, { policy });
}

/** Logs in through the kubernetes auth method; returns the client token and its policies. */
export async function loginWithKubernetes(
  endpoint: OpenBaoEndpoint,
  options: { readonly role: string; readonly jwt: string; readonly mount?: string },
): Promise<{ clientToken: string; policies: readonly string[] }> {
  const mount = options.mount ?? endpoint.kubernetesAuthMount;
  const answer = (await openBaoRequest(endpoint, 'POST', `auth/${mount}/login`, { role: options.role, jwt: options.jwt }, '')) as {
    auth?: { client_token?: string; policies?: string[] };
  };
  const clientToken = answer.auth?.client_token;
  if (clientToken === undefined) throw new Error('openbao kubernetes login: no client token in the answer');
  return { clientToken, policies: answer.auth?.policies ?? [] };
}

/** Writes a new version of a KV v2 secret; returns the version OpenBao assigned. */
export async function writeKvSecret(
  endpoint: OpenBaoEndpoint,
  path: string,
  data: Readonly<Record<string, string>>,
  token?: string,
): Promise<number> {
  registerNeedlesIn(data, `openbao:${path}`);
  const answer = (await openBaoRequest(endpoint, 'POST', `${endpoint.kvMount}/data/${path}`, { data }, token)) as {
    data?: { version?: number };
  };
  const version = answer.data?.version;
  if (version === undefined) throw new Error(`openbao: no version in the answer to a write of ${path}`);
  return version;
}

/** Reads a KV v2 secret (latest, or `version`). */
export async function readKvSecret(
  endpoint: OpenBaoEndpoint,
  path: string,
  options: { readonly version?: number; readonly token?: string } = {},
): Promise<{ data: Record<string, string>; version: number }> {
  const query = options.version === undefined ? '' : `?version=${options.version}`;
  const answer = (await openBaoRequest(endpoint, 'GET', `${endpoint.kvMount}/data/${path}${query}`, undefined, options.token)) as {
    data?: { data?: Record<string, string>; metadata?: { version?: number } };
  };
  const data = answer.data?.data;
  const version = answer.data?.metadata?.version;
  if (data === undefined || version === undefined) throw new Error(`openbao: malformed read of ${path}`);
  return { data, version };
}

/**
 * `bao audit enable -path=<path> socket address=<socket> socket_type=unix`: OpenBao sends every
 * audit entry (JSON lines) to the listener at `socket` too. OpenBao sends a test entry first and
 * refuses the device when nothing answers there, so the listener must be up.
 */
export async function enableSocketAuditDevice(endpoint: Pick<OpenBaoEndpoint, 'address' | 'rootToken'>, path: string, socket: string): Promise<void> {
  await openBaoRequest(endpoint, 'PUT', `sys/audit/${encodeURIComponent(path)}`, {
    type: 'socket',
    options: { address: socket, socket_type: 'unix', format: 'json' },
  });
}

/** `bao audit disable <path>`. */
export async function disableAuditDevice(endpoint: Pick<OpenBaoEndpoint, 'address' | 'rootToken'>, path: string): Promise<void> {
  await openBaoRequest(endpoint, 'DELETE', `sys/audit/${encodeURIComponent(path)}`);
}
