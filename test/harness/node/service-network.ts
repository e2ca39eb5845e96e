import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, CoreV1Api, DiscoveryV1Api, RbacAuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { binaryPaths, freePort } from '../control-plane.ts';
import { startProcess, stopProcess, waitReady, type ProcessRecord } from '../process.ts';

/**
 * The real node's Service networking (ADR 0180) and cluster DNS (ADR 0181): kube-proxy in iptables
 * mode and a CoreDNS process on the host, listening on the node's bridge address and published as
 * the ClusterIP Service `kube-system/kube-dns` with an EndpointSlice naming that address, so pods
 * (and the API server, for webhooks) reach host listeners through ClusterIPs exactly as in a cluster.
 */

/** Which world's kube-proxy owns this host's KUBE-* iptables chains (one at a time, ADR 0180). */
export const kubeProxyLock = join(tmpdir(), 'secret-binder-kube-proxy.lock');

export const clusterDomain = 'cluster.local';

export interface HostServicePort {
  readonly name: string;
  readonly protocol: 'TCP' | 'UDP';
  /** The Service's port. */
  readonly port: number;
  /** Where the host listener is, on the node's bridge address. */
  readonly hostPort: number;
}

/**
 * A ClusterIP Service without selector for a listener on the host, and the EndpointSlice naming the
 * node's bridge address: the way a cluster reaches a host-network pod. Replaces a slice left by an
 * earlier node of the world. An endpoint cannot be a loopback address, so the listener binds the
 * bridge address.
 */
export async function exposeHostService(
  kc: KubeConfig,
  options: { readonly namespace: string; readonly name: string; readonly address: string; readonly ports: readonly HostServicePort[]; readonly clusterIP?: string },
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const { namespace, name } = options;
  // Kept from an earlier node of the world (its ClusterIP too). Read first: a create naming a taken
  // ClusterIP fails on the address (422) before it would on the name (409).
  const existing = await core.readNamespacedService({ namespace, name }).catch((error: unknown) => {
    if (error instanceof ApiException && error.code === 404) return undefined;
    throw error;
  });
  if (existing === undefined) {
    await core.createNamespacedService({
      namespace,
      body: {
        metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'secret-binder-harness' } },
        spec: {
          ...(options.clusterIP === undefined ? {} : { clusterIP: options.clusterIP }),
          ports: options.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.port, targetPort: p.hostPort })),
        },
      },
    });
  }
  const slice = `${name}-host`;
  await discovery.deleteNamespacedEndpointSlice({ namespace, name: slice }).catch(() => undefined);
  await discovery.createNamespacedEndpointSlice({
    namespace,
    body: {
      metadata: { name: slice, labels: { 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'harness.secretbinder.dev' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [options.address], conditions: { ready: true } }],
      ports: options.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.hostPort })),
    },
  });
}

function kubeProxyConfig(options: { kubeconfig: string; nodeName: string; podSubnet: string; healthzPort: number; metricsPort: number }): string {
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: options.kubeconfig },
    hostnameOverride: options.nodeName,
    mode: 'iptables',
    bindAddress: '127.0.0.1',
    healthzBindAddress: `127.0.0.1:${String(options.healthzPort)}`,
    metricsBindAddress: `127.0.0.1:${String(options.metricsPort)}`,
    // Traffic from outside the pod /24 to a Service (the API server calling a webhook) is
    // masqueraded, as on a cluster.
    clusterCIDR: options.podSubnet,
    detectLocalMode: 'ClusterCIDR',
    // NodePorts only on the bridge address; no localhost NodePorts (they need route_localnet).
    nodePortAddresses: [options.podSubnet],
    iptables: { localhostNodePorts: false, syncPeriod: '10s', minSyncPeriod: '0s' },
    // Zeros leave the host's conntrack sysctls alone; the sandbox may not lower oom_score_adj.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s', udpTimeout: '0s', udpStreamTimeout: '0s' },
    oomScoreAdj: 0,
  });
}

/** True while some world's kube-proxy holds the lock. */
function kubeProxyLockHeld(): boolean {
  try {
    execFileSync('flock', ['--nonblock', kubeProxyLock, 'true'], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

/**
 * Removes kube-proxy's iptables rules (`kube-proxy --cleanup`) unless another world's kube-proxy
 * runs (holds the lock): its rules are not ours to remove.
 */
export function cleanUpKubeProxyRules(): void {
  try {
    const kubeProxy = join(binaryPaths().kubernetes, 'kube-proxy');
    if (!existsSync(kubeProxy)) return;
    // Loopback addresses even for this run, which binds nothing (port 0 fails validation).
    execFileSync('flock', ['--nonblock', kubeProxyLock, kubeProxy, '--cleanup', '--healthz-bind-address=127.0.0.1:10256', '--metrics-bind-address=127.0.0.1:10249'], { stdio: 'ignore', timeout: 30_000 });
  } catch {
    // Lock held by a running kube-proxy, or nothing to clean (it exits non-zero without nft).
  }
}

export interface ServiceNetworkOptions {
  readonly kc: KubeConfig;
  readonly dir: string;
  readonly nodeName: string;
  readonly bridgeAddress: string;
  readonly podSubnet: string;
  readonly clusterDnsIp: string;
  readonly kubeProxyKubeconfig: string;
  readonly corednsKubeconfig: string;
  readonly common: { readonly logDir: string; readonly maxLifetimeSeconds: number };
  readonly onStarted: (record: ProcessRecord) => void;
}

/** The ClusterRole a CoreDNS `kubernetes` plugin needs (kubeadm's `system:coredns`). */
export const corednsUser = 'secret-binder:coredns';

async function ensureCorednsRbac(kc: KubeConfig): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  const ignoreConflict = (error: unknown): void => {
    if (!(error instanceof ApiException && error.code === 409)) throw error;
  };
  await rbac
    .createClusterRole({
      body: {
        metadata: { name: corednsUser },
        rules: [
          { apiGroups: [''], resources: ['services', 'namespaces'], verbs: ['list', 'watch'] },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
        ],
      },
    })
    .catch(ignoreConflict);
  await rbac
    .createClusterRoleBinding({
      body: {
        metadata: { name: corednsUser },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: corednsUser },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: corednsUser }],
      },
    })
    .catch(ignoreConflict);
}

/**
 * Starts kube-proxy and CoreDNS, waits until both are ready, then publishes `kube-system/kube-dns`.
 * Returns what `stop` undoes. Throws when another world's kube-proxy owns the host's rules.
 */
export async function startServiceNetwork(options: ServiceNetworkOptions): Promise<{ readonly processes: readonly ProcessRecord[]; readonly dnsPort: number; stop(): Promise<void> }> {
  if (kubeProxyLockHeld()) {
    throw new Error(`another test world's kube-proxy runs on this host (${kubeProxyLock} is locked): kube-proxy's iptables chains are host-wide, so one real node at a time (ADR 0180)`);
  }
  const processes: ProcessRecord[] = [];
  const started = (record: ProcessRecord): ProcessRecord => {
    processes.push(record);
    options.onStarted(record);
    return record;
  };
  const [healthzPort, metricsPort, dnsPort, readyPort, healthPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];

  const proxyConfig = join(options.dir, 'kube-proxy.json');
  writeFileSync(proxyConfig, kubeProxyConfig({ kubeconfig: options.kubeProxyKubeconfig, nodeName: options.nodeName, podSubnet: options.podSubnet, healthzPort, metricsPort }));
  const kubeProxy = started(
    startProcess({
      ...options.common,
      name: 'kube-proxy',
      // The lock is held as long as this kube-proxy lives; a second world's fails at once.
      command: 'flock',
      args: ['--nonblock', '--conflict-exit-code', '75', kubeProxyLock, join(binaryPaths().kubernetes, 'kube-proxy'), '--config', proxyConfig, '--v', '1'],
      readiness: { kind: 'http', url: `http://127.0.0.1:${String(healthzPort)}/healthz` },
    }),
  );

  await ensureCorednsRbac(options.kc);
  const corefile = join(options.dir, 'Corefile');
  // Only cluster.local and the reverse zones; no `forward`: nothing is asked off this host.
  writeFileSync(
    corefile,
    `${clusterDomain}:${String(dnsPort)} in-addr.arpa:${String(dnsPort)} ip6.arpa:${String(dnsPort)} {
    bind ${options.bridgeAddress}
    errors
    log
    ready 127.0.0.1:${String(readyPort)}
    health 127.0.0.1:${String(healthPort)}
    kubernetes ${clusterDomain} in-addr.arpa ip6.arpa {
        kubeconfig ${options.corednsKubeconfig} world
        ttl 5
    }
    cache 5
}
`,
  );
  const coredns = started(
    startProcess({
      ...options.common,
      name: 'coredns',
      command: join(binaryPaths().coredns, 'coredns'),
      args: ['-conf', corefile],
      readiness: { kind: 'http', url: `http://127.0.0.1:${String(readyPort)}/ready` },
    }),
  );
  const stop = async (): Promise<void> => {
    await options.kc.makeApiClient(DiscoveryV1Api).deleteNamespacedEndpointSlice({ namespace: 'kube-system', name: 'kube-dns-host' }).catch(() => undefined);
    for (const record of [...processes].reverse()) await stopProcess(record, 10_000);
    cleanUpKubeProxyRules();
  };
  try {
    await Promise.all([waitReady(kubeProxy, 60_000), waitReady(coredns, 60_000)]);
    await exposeHostService(options.kc, {
      namespace: 'kube-system',
      name: 'kube-dns',
      address: options.bridgeAddress,
      clusterIP: options.clusterDnsIp,
      ports: [
        { name: 'dns', protocol: 'UDP', port: 53, hostPort: dnsPort },
        { name: 'dns-tcp', protocol: 'TCP', port: 53, hostPort: dnsPort },
      ],
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { processes, dnsPort, stop };
}
