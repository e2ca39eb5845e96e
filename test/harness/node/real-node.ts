import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { binaryPaths, freePort } from '../control-plane.ts';
import { issueFromWorldCa } from '../pki.ts';
import { isAlive, startProcess, stopProcess, waitFor, type ProcessRecord } from '../process.ts';
import { writeWorldState, type WorldState } from '../world-state.ts';
import { buildImage, busyboxEntries, type BuiltImage, type ImageSpec } from './images.ts';
import { cleanUpKubeProxyRules, clusterDomain, corednsUser, startServiceNetwork } from './service-network.ts';

/**
 * Tier 2 of the test world: a real node (ADR 0140). containerd + runc + the CNI bridge plugin from
 * Debian's packages, a kubelet and a kube-scheduler built like the control plane, images built on
 * this host and imported with `ctr`, no registry. Everything lives under `realNodeDir(world)`, every
 * listener is on 127.0.0.1, every process runs under `timeout`. The node is tainted
 * `secretbinder.dev/e2e=true:NoSchedule`, so only pods that tolerate it (the e2e suites') land
 * on it, and its images are never pulled (`imagePullPolicy: Never`).
 */

/** The node's name is its address: the kubelet reports it as InternalIP (ADR 0140). */
export const realNodeName = '127.0.0.1';
export const realNodeTaint = { key: 'secretbinder.dev/e2e', value: 'true', effect: 'NoSchedule' } as const;
export const busyboxImage = 'docker.io/library/busybox:secret-binder-e2e';
const pauseImage = 'registry.k8s.io/pause:3.10';

const debianBinaries = {
  containerd: '/usr/bin/containerd',
  ctr: '/usr/bin/ctr',
  shim: '/usr/bin/containerd-shim-runc-v2',
  runc: '/usr/sbin/runc',
  busybox: '/bin/busybox',
  cniBridge: '/usr/lib/cni/bridge',
  cniHostLocal: '/usr/lib/cni/host-local',
  cniLoopback: '/usr/lib/cni/loopback',
} as const;

/**
 * The node's directory for a world: short and outside the world's directory, because the kubelet's
 * plugin sockets live under it and a unix socket path has at most 107 bytes.
 */
export function realNodeDir(worldDir: string): string {
  return join(tmpdir(), `sb-node-${createHash('sha256').update(worldDir).digest('hex').slice(0, 10)}`);
}

/**
 * Why this host cannot run the node tier, or undefined when it can. Only limits of the host count
 * (not root, no overlayfs, no memory cgroup); missing packages are the installer's business and make
 * the tier fail, not skip.
 */
export function realNodeUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the real-node tier needs root (mounts, cgroups, network namespaces)';
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay')) return 'the kernel has no overlayfs (containerd snapshots)';
  const cgroups = readFileSync('/proc/cgroups', 'utf8');
  if (!existsSync('/sys/fs/cgroup/cgroup.controllers') && !/^memory\s+\d+\s+\d+\s+1$/m.test(cgroups)) return 'no memory cgroup controller';
  return undefined;
}

export interface RealNode {
  readonly name: string;
  readonly dir: string;
  /** The kubelet's --root-dir (pods, plugins, plugins_registry). */
  readonly kubeletRootDir: string;
  readonly containerdSocket: string;
  /**
   * The host's address on the pod network (the bridge's): where host listeners bind to be a Service
   * endpoint (`exposeHostService`), e.g. CoreDNS and the webhook (ADR 0180).
   */
  readonly bridgeAddress: string;
  /** `kube-system/kube-dns`'s ClusterIP, the pods' nameserver (ADR 0181). */
  readonly clusterDnsIp: string;
  readonly processes: readonly ProcessRecord[];
  /** Builds an image on this host and imports it into the node's containerd (namespace k8s.io). */
  importImage(spec: ImageSpec): BuiltImage;
  /** `ctr -n k8s.io <args>` against the node's containerd; stdout. */
  ctr(args: readonly string[]): string;
  /** Deletes every pod left on the node, stops the kubelet, scheduler and containerd, cleans up. */
  stop(): Promise<void>;
}

function missingBinaries(): string[] {
  const { kubernetes: k8s, coredns } = binaryPaths();
  return [...Object.values(debianBinaries), ...['kubelet', 'kube-scheduler', 'kube-proxy'].map((b) => join(k8s, b)), join(coredns, 'coredns')].filter((p) => !existsSync(p));
}

function kubeconfig(path: string, server: string, caPath: string, client: { certPath: string; keyPath: string }): void {
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'world', cluster: { server, 'certificate-authority': caPath } }],
      users: [{ name: 'user', user: { 'client-certificate': client.certPath, 'client-key': client.keyPath } }],
      contexts: [{ name: 'world', context: { cluster: 'world', user: 'user' } }],
      'current-context': 'world',
    }),
    { mode: 0o600 },
  );
}

/**
 * Names derived from the world's directory, so two worlds' nodes never share host objects: a bridge
 * (≤ 15 characters), a /24 of 10.244.0.0/16, and the kubelet's cgroup root (a kubelet removes pod
 * cgroups under its root that it does not know).
 */
function hostNamesOf(dir: string): { bridge: string; subnet: string; cgroupRoot: string } {
  const hash = createHash('sha256').update(dir).digest();
  return { bridge: `sbe2e${hash.subarray(0, 3).toString('hex')}`, subnet: `10.244.${String(hash[3] ?? 0)}.0/24`, cgroupRoot: `/secret-binder-e2e-${hash.subarray(0, 4).toString('hex')}` };
}

/** The pod /24 of a world's node (routed to the world's sink while the node's bridge is absent, ADR 0180). */
export function realNodePodSubnet(worldDir: string): string {
  return hostNamesOf(realNodeDir(worldDir)).subnet;
}

/** Pods reach nothing beyond the host: what the bridge would forward elsewhere is dropped (ADR 0180). */
function forwardGuardRule(bridge: string): string[] {
  return ['-i', bridge, '!', '-o', bridge, '-m', 'comment', '--comment', 'secret-binder node: pods reach nothing beyond this host', '-j', 'DROP'];
}

/**
 * The bridge with the host's address on the pod /24, before containerd: host listeners (CoreDNS,
 * the webhook) bind that address before the first pod exists. The CNI bridge plugin then finds its
 * bridge with the gateway address it would have set.
 */
function createBridge(bridge: string, subnet: string): string {
  const address = subnet.replace(/\.0\/24$/, '.1');
  execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `${address}/24`, 'dev', bridge]);
  execFileSync('ip', ['link', 'set', bridge, 'up']);
  execFileSync('iptables', ['-w', '5', '-I', 'FORWARD', ...forwardGuardRule(bridge)]);
  return address;
}

/** The mounted cgroup v1 hierarchies (`/sys/fs/cgroup/<name>`); empty on a cgroup v2 host. */
function cgroupV1Hierarchies(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[2] === 'cgroup')
    .map((f) => f[1] ?? '');
}

/**
 * Creates the kubelet's cgroup root in every v1 hierarchy (the kubelet requires it to exist); a new
 * cpuset cgroup starts with no CPUs or memory nodes, so it gets its parent's.
 */
function createCgroupRoot(cgroupRoot: string): void {
  for (const hierarchy of cgroupV1Hierarchies()) {
    const dir = join(hierarchy, cgroupRoot);
    mkdirSync(dir, { recursive: true });
    for (const file of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(join(dir, file)) && readFileSync(join(dir, file), 'utf8').trim() === '') writeFileSync(join(dir, file), readFileSync(join(hierarchy, file)));
    }
  }
}

/** Removes a cgroup tree, deepest first (cgroups are removed with rmdir, once empty of processes). */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeCgroupTree(join(dir, entry.name));
  try {
    rmdirSync(dir);
  } catch {
    // Still has processes (their shims were killed, the kernel reaps them) or already gone.
  }
}

function containerdConfig(dir: string, cniConfDir: string): string {
  // TOML by hand: a handful of keys, all strings we control (ADR 0140).
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${dir}/containerd.sock"
[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  sandbox_image = "${pauseImage}"
  enable_selinux = false
  # The sandbox lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj below ours (ADR 0140).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "${debianBinaries.runc}"
        Root = "${dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConfDir}"
  # No registry is reachable, and none may be asked: every image is imported (imagePullPolicy Never).
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["http://127.0.0.1:9"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]
    endpoint = ["http://127.0.0.1:9"]
`;
}

function kubeletConfig(options: { dir: string; cgroupRoot: string | undefined; port: number; healthzPort: number; containerdSocket: string; clusterDnsIp: string; pki: { ca: string; cert: string; key: string } }): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: '127.0.0.1',
    port: options.port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: options.healthzPort,
    cgroupDriver: 'cgroupfs',
    ...(options.cgroupRoot === undefined ? {} : { cgroupRoot: options.cgroupRoot }),
    failSwapOn: false,
    failCgroupV1: false,
    containerRuntimeEndpoint: `unix://${options.containerdSocket}`,
    tlsCertFile: options.pki.cert,
    tlsPrivateKeyFile: options.pki.key,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: options.pki.ca } },
    authorization: { mode: 'Webhook' },
    registerWithTaints: [realNodeTaint],
    podLogsDir: join(options.dir, 'pod-logs'),
    // A test node: never evict or garbage-collect images because the shared disk is busy.
    evictionHard: {},
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    enforceNodeAllocatable: [],
    localStorageCapacityIsolation: false,
    // Pods resolve through kube-system/kube-dns (CoreDNS on the host, ADR 0181), never the host's resolver.
    resolvConf: '',
    clusterDNS: [options.clusterDnsIp],
    clusterDomain,
    serializeImagePulls: false,
    // Pods report Running/Ready and volumes republish faster than the production defaults.
    syncFrequency: '10s',
    nodeStatusUpdateFrequency: '5s',
  });
}

/** Mount points at or under `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => (line.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Every process in a cgroup tree (cgroup.procs of the cgroup and its descendants). */
function processesIn(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const own = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter((l) => l !== '').map(Number);
  return [...own, ...readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => processesIn(join(dir, e.name)))];
}

/**
 * Undoes what a node left on the host once its kubelet and containerd are gone: container processes
 * and their shims, mounts under its directory, its cgroups, its bridge. Idempotent; `harness down`
 * calls it for a world whose node was not stopped by its suite.
 */
export function cleanUpRealNodeHost(dir: string): void {
  const { bridge, cgroupRoot } = hostNamesOf(dir);
  try {
    execFileSync('pkill', ['-KILL', '-f', `^/usr/bin/containerd-shim-runc-v2 .*-address ${join(dir, 'containerd.sock')}$`], { stdio: 'ignore' });
  } catch {
    // No shim left.
  }
  const cgroupMounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2')
    .map((f) => f[1] ?? '');
  for (const pid of new Set(cgroupMounts.flatMap((m) => processesIn(join(m, cgroupRoot))))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  for (const mount of mountsUnder(dir)) {
    try {
      execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
    } catch {
      // Already gone with its parent.
    }
  }
  try {
    execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  } catch {
    // Never created, or already deleted.
  }
  for (;;) {
    try {
      execFileSync('iptables', ['-w', '5', '-D', 'FORWARD', ...forwardGuardRule(bridge)], { stdio: 'ignore' });
    } catch {
      break;
    }
  }
  cleanUpKubeProxyRules();
  // A killed process leaves its cgroup once the kernel has reaped it: a few tries.
  for (let attempt = 0; attempt < 20 && cgroupMounts.some((m) => existsSync(join(m, cgroupRoot))); attempt++) {
    for (const m of cgroupMounts) removeCgroupTree(join(m, cgroupRoot));
    if (cgroupMounts.some((m) => existsSync(join(m, cgroupRoot)))) execFileSync('sleep', ['0.1']);
  }
}

/**
 * Starts the node tier for `world` and waits until the Node is Ready. Throws (with the failing
 * process's log) when a part does not come up; stops what it started then.
 */
export async function startRealNode(world: WorldState, options: { readonly log?: (line: string) => void } = {}): Promise<RealNode> {
  const unavailable = realNodeUnavailable();
  if (unavailable !== undefined) throw new Error(`the real-node tier cannot run here: ${unavailable}`);
  const missing = missingBinaries();
  if (missing.length > 0) throw new Error(`the real-node tier is not installed (run test/harness/install/all.sh): missing ${missing.join(', ')}`);
  const network = world.network;
  if (network?.sink === undefined) throw new Error(`the world in ${world.dir} has no routed Service range (${network?.unrouted ?? 'started by an older harness'}): start a new world (ADR 0180)`);
  const log = options.log ?? ((): void => undefined);
  const dir = realNodeDir(world.dir);
  // Whatever an earlier node of this world left (a crashed run) goes first, mounts before files.
  cleanUpRealNodeHost(dir);
  rmSync(dir, { recursive: true, force: true });
  const kubeletRootDir = join(dir, 'kubelet');
  const cniConfDir = join(dir, 'cni');
  for (const d of [dir, kubeletRootDir, cniConfDir, join(dir, 'pod-logs'), join(dir, 'images')]) mkdirSync(d, { recursive: true });
  const containerdSocket = join(dir, 'containerd.sock');
  const processes: ProcessRecord[] = [];
  const common = { logDir: world.logDir, maxLifetimeSeconds: 3 * 3600 };
  const k8s = binaryPaths().kubernetes;
  const pkiDir = join(world.dir, 'pki');
  const ca = { certPath: join(pkiDir, 'ca.crt'), keyPath: join(pkiDir, 'ca.key') };

  const ctr = (args: readonly string[]): string =>
    execFileSync(debianBinaries.ctr, ['--address', containerdSocket, '-n', 'k8s.io', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const importImage = (spec: ImageSpec): BuiltImage => {
    const built = buildImage(spec, join(dir, 'images'));
    ctr(['images', 'import', built.archivePath]);
    return built;
  };
  const admin = new KubeConfig();
  admin.loadFromFile(world.kube.kubeconfigPath);
  const core = admin.makeApiClient(CoreV1Api);

  const stop = async (): Promise<void> => {
    // Pods first, while the kubelet and the CSI plugin can still tear them down properly.
    const kubelet = processes.find((p) => p.name === 'kubelet');
    if (kubelet !== undefined && isAlive(kubelet)) {
      const left = (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${realNodeName}` }).catch(() => ({ items: [] }))).items;
      for (const pod of left) {
        await core.deleteNamespacedPod({ name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', gracePeriodSeconds: 0 }).catch(() => undefined);
      }
      await waitFor('pods gone from the node', () => Promise.resolve(existsSync(join(kubeletRootDir, 'pods')) && readdirSync(join(kubeletRootDir, 'pods')).length === 0), { timeoutMs: 30_000 }).catch(() => undefined);
    }
    for (const record of [...processes].reverse()) await stopProcess(record, 15_000);
    // Containers the kubelet did not remove outlive containerd with their shims: cleaned up here.
    cleanUpRealNodeHost(dir);
    if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    writeWorldState({ ...world, processes: world.processes.filter((p) => !processes.some((q) => q.pid === p.pid)) });
    await core.deleteNode({ name: realNodeName }).catch(() => undefined);
  };

  try {
    // containerd
    const { bridge, subnet, cgroupRoot } = hostNamesOf(dir);
    const bridgeAddress = createBridge(bridge, subnet);
    writeFileSync(
      join(cniConfDir, '10-secret-binder-e2e.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'secret-binder-e2e',
        plugins: [
          // No masquerade, no port maps: pods reach nothing beyond this host.
          // No default route either: besides the bridge, pods have a route to the Service range
          // only, through the host, where kube-proxy translates it (ADR 0180).
          { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: network.serviceRange }], dataDir: join(dir, 'cni-ipam') } },
          { type: 'loopback' },
        ],
      }),
    );
    writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, cniConfDir));
    const containerd = startProcess({ ...common, name: 'containerd', command: debianBinaries.containerd, args: ['--config', join(dir, 'containerd.toml')] });
    processes.push(containerd);
    await waitFor('containerd ready', () => Promise.resolve(existsSync(containerdSocket) && ctr(['version']).includes('Server')), { timeoutMs: 30_000, record: containerd });
    const t0 = Date.now();
    const busybox = busyboxEntries(debianBinaries.busybox);
    // The sandbox ("pause") image: busybox sleeping; the runtime stops sandboxes with SIGKILL.
    importImage({ reference: pauseImage, entries: busybox, entrypoint: ['/bin/sleep', '2147483647'] });
    importImage({ reference: busyboxImage, entries: busybox, cmd: ['/bin/sh'] });
    log(`[node] containerd ready, images built and imported in ${String(Date.now() - t0)} ms`);

    // kubelet
    const clientCert = await issueFromWorldCa({ dir: pkiDir, ca }, 'kubelet-client', { name: { CN: `system:node:${realNodeName}`, O: 'system:nodes' }, client: true });
    const servingCert = await issueFromWorldCa({ dir: pkiDir, ca }, 'kubelet-serving', { name: { CN: realNodeName }, server: { dns: ['localhost'], ips: [realNodeName] } });
    kubeconfig(join(dir, 'kubelet.kubeconfig'), world.kube.server, ca.certPath, clientCert);
    const [port, healthzPort] = [await freePort(), await freePort()];
    // On cgroup v1 the node gets a cgroup root of its own; on v2 the kubelet's default ("/").
    const v1 = cgroupV1Hierarchies().length > 0;
    if (v1) createCgroupRoot(cgroupRoot);
    writeFileSync(
      join(dir, 'kubelet.json'),
      kubeletConfig({ dir, cgroupRoot: v1 ? cgroupRoot : undefined, port, healthzPort, containerdSocket, clusterDnsIp: network.clusterDnsIp, pki: { ca: ca.certPath, cert: servingCert.certPath, key: servingCert.keyPath } }),
    );
    const kubelet = startProcess({
      ...common,
      name: 'kubelet',
      command: join(k8s, 'kubelet'),
      args: [
        '--config', join(dir, 'kubelet.json'),
        '--kubeconfig', join(dir, 'kubelet.kubeconfig'),
        '--root-dir', kubeletRootDir,
        '--cert-dir', join(dir, 'kubelet-pki'),
        // The node name is an IP address, so the kubelet reports it as the node's InternalIP: the
        // API server reaches the kubelet (exec, logs) on 127.0.0.1; `--node-ip` refuses loopback.
        '--hostname-override', realNodeName,
        '--v', '1',
      ],
      readiness: { kind: 'tcp', host: '127.0.0.1', port: healthzPort },
    });
    processes.push(kubelet);

    // kube-scheduler
    kubeconfig(join(dir, 'scheduler.kubeconfig'), world.kube.server, ca.certPath, { certPath: join(pkiDir, 'kube-scheduler.crt'), keyPath: join(pkiDir, 'kube-scheduler.key') });
    const schedulerPort = await freePort();
    const scheduler = startProcess({
      ...common,
      name: 'kube-scheduler',
      command: join(k8s, 'kube-scheduler'),
      args: [
        `--kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
        `--authentication-kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
        `--authorization-kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
        '--authentication-skip-lookup=true',
        '--bind-address=127.0.0.1',
        `--secure-port=${String(schedulerPort)}`,
        '--leader-elect=false',
      ],
      readiness: { kind: 'tcp', host: '127.0.0.1', port: schedulerPort },
    });
    processes.push(scheduler);

    await waitFor(
      `node ${realNodeName} Ready`,
      async () => {
        const node = await core.readNode({ name: realNodeName });
        return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      },
      { timeoutMs: 60_000, intervalMs: 250, record: kubelet },
    );
    log(`[node] kubelet: node ${realNodeName} Ready; kube-scheduler started`);

    // Service networking and cluster DNS (ADR 0180, 0181).
    const proxyCert = await issueFromWorldCa({ dir: pkiDir, ca }, 'kube-proxy', { name: { CN: 'system:kube-proxy' }, client: true });
    kubeconfig(join(dir, 'kube-proxy.kubeconfig'), world.kube.server, ca.certPath, proxyCert);
    const corednsCert = await issueFromWorldCa({ dir: pkiDir, ca }, 'coredns', { name: { CN: corednsUser }, client: true });
    kubeconfig(join(dir, 'coredns.kubeconfig'), world.kube.server, ca.certPath, corednsCert);
    const services = await startServiceNetwork({
      kc: admin,
      dir,
      nodeName: realNodeName,
      bridgeAddress,
      podSubnet: subnet,
      clusterDnsIp: network.clusterDnsIp,
      kubeProxyKubeconfig: join(dir, 'kube-proxy.kubeconfig'),
      corednsKubeconfig: join(dir, 'coredns.kubeconfig'),
      common,
      onStarted: (record) => {
        processes.push(record);
      },
    });
    log(`[node] kube-proxy (iptables) ready; CoreDNS on ${bridgeAddress}:${String(services.dnsPort)} is kube-system/kube-dns ${network.clusterDnsIp}`);
    // Recorded with the world, so `harness down` stops them should this process die first.
    writeWorldState({ ...world, processes: [...world.processes, ...processes] });
    return { name: realNodeName, dir, kubeletRootDir, containerdSocket, bridgeAddress, clusterDnsIp: network.clusterDnsIp, processes, importImage, ctr, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
