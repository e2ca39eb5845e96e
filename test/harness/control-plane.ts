import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createWorldPki } from './pki.ts';
import type { KeyPairFiles, WorldPki } from './pki.ts';
import { startProcess, waitReady } from './process.ts';
import type { ProcessRecord, ProcessSpec } from './process.ts';
import type { KubeEndpoint } from './world-state.ts';

/**
 * The test world's Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager,
 * built from source by install/go-binaries.sh, every listener on 127.0.0.1 (ADR 0011).
 */

/** Where install/go-binaries.sh put the binaries (same defaults as install/env.sh). */
export function binaryPaths(): { readonly kubernetes: string; readonly etcd: string; readonly coredns: string } {
  const cache = process.env.SECRET_BINDER_CACHE ?? join(homedir(), '.cache', 'secret-binder');
  const k8s = process.env.SECRET_BINDER_K8S_VERSION ?? 'v1.34.4';
  const etcd = process.env.SECRET_BINDER_ETCD_VERSION ?? 'v3.5.35';
  const coredns = process.env.SECRET_BINDER_COREDNS_VERSION ?? 'v1.14.7';
  return { kubernetes: join(cache, 'kubernetes', k8s, 'bin'), etcd: join(cache, 'etcd', etcd, 'bin'), coredns: join(cache, 'coredns', coredns, 'bin') };
}

/** Path of a built binary; throws with the install hint when it is missing. */
export function binary(name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubelet' | 'kubectl'): string {
  const paths = binaryPaths();
  const path = join(name === 'etcd' ? paths.etcd : paths.kubernetes, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash test/harness/install/go-binaries.sh\``);
  return path;
}

/** A TCP port free on 127.0.0.1 right now (the kernel picks it; we release it at once). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** Writes a kubeconfig with embedded credentials for one client certificate. */
export function writeKubeconfig(path: string, options: { server: string; caPem: string; user: string; client: KeyPairFiles }): void {
  const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'secret-binder-test', cluster: { server: options.server, 'certificate-authority-data': b64(options.caPem) } }],
    users: [
      {
        name: options.user,
        user: {
          'client-certificate-data': b64(readFileSync(options.client.certPath)),
          'client-key-data': b64(readFileSync(options.client.keyPath)),
        },
      },
    ],
    contexts: [{ name: 'secret-binder-test', context: { cluster: 'secret-binder-test', user: options.user } }],
    'current-context': 'secret-binder-test',
  };
  writeFileSync(path, stringify(config), { mode: 0o600 });
}

export interface ControlPlaneOptions {
  /** World directory: `pki/`, `etcd/` (data), kubeconfigs. */
  readonly dir: string;
  readonly logDir: string;
  readonly maxLifetimeSeconds?: number;
  /** Called with each process as soon as it is started, so a failure later can stop it. */
  readonly onStarted: (record: ProcessRecord) => void;
  readonly readyTimeoutMs?: number;
  /** The Service range (a /24 routed to the world's sink, ADR 0180) and its first address. */
  readonly serviceRange: string;
  readonly kubernetesServiceIp: string;
}

export interface ControlPlane {
  readonly kube: KubeEndpoint;
  readonly pki: WorldPki;
  readonly processes: readonly ProcessRecord[];
}

/** etcd's data directory in a world directory (the only bulky thing in it). */
export function etcdDataDir(worldDir: string): string {
  return join(worldDir, 'etcd');
}

/**
 * The API server's audit log of the writes the leak scan reads (ADR 0177): the request bodies of
 * every Event and of every write to our resources (spec and status), including those in
 * namespaces deleted later. Nothing else is logged (Secrets and TokenReviews hold tokens by design).
 */
export function apiserverAuditLogPath(logDir: string): string {
  return join(logDir, 'kube-apiserver-audit.jsonl');
}

const auditPolicy = {
  apiVersion: 'audit.k8s.io/v1',
  kind: 'Policy',
  omitStages: ['RequestReceived', 'ResponseStarted', 'Panic'],
  rules: [
    {
      level: 'Request',
      verbs: ['create', 'update', 'patch'],
      resources: [
        { group: '', resources: ['events'] },
        { group: 'events.k8s.io', resources: ['events'] },
        { group: 'secretbinder.dev' },
      ],
    },
    { level: 'None' },
  ],
};

/** Starts etcd, then kube-apiserver, then kube-controller-manager, each waited ready. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { dir, logDir } = options;
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  mkdirSync(logDir, { recursive: true });
  const pki = await createWorldPki(join(dir, 'pki'), { kubernetesServiceIp: options.kubernetesServiceIp });
  const nextPort = distinctPorts();
  const etcdClientPort = await nextPort();
  const etcdPeerPort = await nextPort();
  const apiserverPort = await nextPort();
  const kcmPort = await nextPort();
  const common = { logDir, ...(options.maxLifetimeSeconds === undefined ? {} : { maxLifetimeSeconds: options.maxLifetimeSeconds }) };
  const started: ProcessRecord[] = [];
  const start = (spec: ProcessSpec): ProcessRecord => {
    const record = startProcess(spec);
    started.push(record);
    options.onStarted(record);
    return record;
  };

  const etcdUrl = `https://127.0.0.1:${etcdClientPort}`;
  const etcdPeerUrl = `https://127.0.0.1:${etcdPeerPort}`;
  const etcd = start({
    ...common,
    name: 'etcd',
    command: binary('etcd'),
    args: [
      '--name=world',
      `--data-dir=${etcdDataDir(dir)}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=world=${etcdPeerUrl}`,
      '--initial-cluster-state=new',
      `--cert-file=${pki.etcd.certPath}`,
      `--key-file=${pki.etcd.keyPath}`,
      `--trusted-ca-file=${pki.ca.certPath}`,
      '--client-cert-auth=true',
      `--peer-cert-file=${pki.etcd.certPath}`,
      `--peer-key-file=${pki.etcd.keyPath}`,
      `--peer-trusted-ca-file=${pki.ca.certPath}`,
      '--peer-client-cert-auth=true',
      // Metrics stay on the client port (no --listen-metrics-urls): no extra listener.
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    readiness: {
      kind: 'http',
      url: `${etcdUrl}/health`,
      tls: { caPath: pki.ca.certPath, certPath: pki.apiserverEtcdClient.certPath, keyPath: pki.apiserverEtcdClient.keyPath },
    },
  });
  await waitReady(etcd, timeoutMs);

  const server = `https://127.0.0.1:${apiserverPort}`;
  // The issuer is the apiserver's own URL, so OIDC discovery (/.well-known/openid-configuration,
  // /openid/v1/jwks) is really reachable at it. API audiences: the issuer only, as on real
  // clusters; `secretbinder.dev` tokens are checked with TokenReview naming that audience (ADR 0012).
  const issuer = server;
  const admin = { caPath: pki.ca.certPath, certPath: pki.admin.certPath, keyPath: pki.admin.keyPath };
  const auditPolicyPath = join(dir, 'audit-policy.yaml');
  writeFileSync(auditPolicyPath, stringify(auditPolicy));
  const apiserver = start({
    ...common,
    name: 'kube-apiserver',
    command: binary('kube-apiserver'),
    args: [
      `--etcd-servers=${etcdUrl}`,
      `--etcd-cafile=${pki.ca.certPath}`,
      `--etcd-certfile=${pki.apiserverEtcdClient.certPath}`,
      `--etcd-keyfile=${pki.apiserverEtcdClient.keyPath}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiserverPort}`,
      `--tls-cert-file=${pki.apiserver.certPath}`,
      `--tls-private-key-file=${pki.apiserver.keyPath}`,
      `--client-ca-file=${pki.ca.certPath}`,
      `--kubelet-client-certificate=${pki.apiserverKubeletClient.certPath}`,
      `--kubelet-client-key=${pki.apiserverKubeletClient.keyPath}`,
      '--authorization-mode=Node,RBAC',
      // PodTolerationRestriction acts only on a namespace annotated with default tolerations: the
      // install e2e suite lets the README's own namespaces onto the tainted real node that way.
      '--enable-admission-plugins=NodeRestriction,PodTolerationRestriction',
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${pki.serviceAccount.publicKeyPath}`,
      `--service-account-signing-key-file=${pki.serviceAccount.privateKeyPath}`,
      `--api-audiences=${issuer}`,
      `--service-cluster-ip-range=${options.serviceRange}`,
      // The `kubernetes` Service cannot point at a loopback address (Endpoints validation refuses
      // 127.0.0.1), so the reconciler would only log errors; pods reach the apiserver another way.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      '--event-ttl=10m',
      '--profiling=false',
      `--audit-policy-file=${auditPolicyPath}`,
      `--audit-log-path=${apiserverAuditLogPath(logDir)}`,
      '--audit-log-format=json',
      '--audit-log-maxsize=0',
    ],
    readiness: { kind: 'http', url: `${server}/readyz`, tls: admin },
  });
  await waitReady(apiserver, timeoutMs);

  const adminKubeconfigPath = join(dir, 'admin.kubeconfig');
  writeKubeconfig(adminKubeconfigPath, { server, caPem: pki.caPem, user: 'secret-binder-admin', client: pki.admin });
  const kcmKubeconfigPath = join(dir, 'kube-controller-manager.kubeconfig');
  writeKubeconfig(kcmKubeconfigPath, {
    server,
    caPem: pki.caPem,
    user: 'system:kube-controller-manager',
    client: pki.controllerManager,
  });

  const kcm = start({
    ...common,
    name: 'kube-controller-manager',
    command: binary('kube-controller-manager'),
    args: [
      `--kubeconfig=${kcmKubeconfigPath}`,
      `--authentication-kubeconfig=${kcmKubeconfigPath}`,
      `--authorization-kubeconfig=${kcmKubeconfigPath}`,
      // No front proxy in this world: trust --client-ca-file only, without the requestheader lookup.
      '--authentication-skip-lookup=true',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--tls-cert-file=${pki.controllerManager.certPath}`,
      `--tls-private-key-file=${pki.controllerManager.keyPath}`,
      `--client-ca-file=${pki.ca.certPath}`,
      `--root-ca-file=${pki.ca.certPath}`,
      `--service-account-private-key-file=${pki.serviceAccount.privateKeyPath}`,
      '--use-service-account-credentials=true',
      `--cluster-signing-cert-file=${pki.ca.certPath}`,
      `--cluster-signing-key-file=${pki.ca.keyPath}`,
      `--service-cluster-ip-range=${options.serviceRange}`,
      '--controllers=*,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller',
      // One instance: no election, so a restart takes over at once instead of after a lease expiry.
      '--leader-elect=false',
      // The default client limit (20 qps) makes starting ~40 controllers, each minting its own
      // service-account credentials, take seconds; a test world has no other clients to protect.
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--profiling=false',
    ],
    readiness: { kind: 'http', url: `https://127.0.0.1:${kcmPort}/healthz`, tls: { caPath: pki.ca.certPath } },
  });
  await waitReady(kcm, timeoutMs);

  return {
    kube: { kubeconfigPath: adminKubeconfigPath, server, caPem: pki.caPem, serviceAccountIssuer: issuer },
    pki,
    processes: started,
  };
}

/** Free ports, each different from the ones handed out before by the same allocator. */
function distinctPorts(): () => Promise<number> {
  const taken = new Set<number>();
  return async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
}
