import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import type { Operator } from '../../../src/controllers/operator.ts';
import { BrokerHttpClient } from '../../../src/delivery/csi/broker-http.client.ts';
import { CsiServer } from '../../../src/delivery/csi/csi.server.ts';
import { NodePlugin } from '../../../src/delivery/csi/node-plugin.ts';
import { SystemMounter } from '../../../src/delivery/csi/tmpfs.mounter.ts';
import { loadKubeConnection } from '../../../src/kube/kube-connection.ts';
import { createAuditLog, type AuditLog } from '../../../src/observability/audit.ts';
import { CapturedOutput } from '../../../src/observability/captured-output.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { KubeletDriver, type PodVolumeMount } from '../../harness/kubelet-driver.ts';
import { teeLogToCapture } from '../../harness/leak-capture.ts';
import type { OpenBaoEndpoint } from '../../harness/world-state.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from '../support/cluster.ts';
import type { RotationBackend } from './rotation-backends.ts';
import { buildInProcessController } from '../support/in-process-controller.ts';

/**
 * The delivery path of the rotation suites, all real but the kubelet: the controller with its
 * broker in-process against the world's API server and OpenBao, one in-process node plugin per
 * Node object (each on its own CSI unix socket, with a token bound to its own pod on that node),
 * and one kubelet driver per plugin publishing real pods' volumes into real tmpfs (root only).
 */

export interface NodeSide {
  readonly node: string;
  readonly plugin: NodePlugin;
  readonly server: CsiServer;
  readonly kubelet: KubeletDriver;
}

export interface DeliveryWorld {
  readonly suffix: string;
  readonly ns: string;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly bao: OpenBaoEndpoint;
  readonly nodes: readonly NodeSide[];
  readonly operator: Operator;
  readonly controllerLog: CapturedOutput;
  readonly pluginLog: CapturedOutput;
  readonly auditOut: CapturedOutput;
  readonly registry: Registry;
  /** Whether the controller's manager has returned (it runs until close). */
  managerExited(): boolean;
  /**
   * Stops node `nodeIndex`'s plugin and CSI server (its volumes stay mounted, as when a DaemonSet
   * pod is replaced) and starts new ones on the same socket; they know no volume until the
   * kubelet's next publish of each. Returns the new side (also in `nodes`).
   */
  restartNodePlugin(nodeIndex: number): Promise<NodeSide>;
  /** Creates a pod bound to `binding` on node `nodeIndex` and publishes its volume there. */
  podWithVolume(name: string, binding: string, nodeIndex: number): Promise<{ pod: V1Pod; mount: PodVolumeMount; side: NodeSide }>;
  /** The same pod without publishing its volume (a test that expects the publish to be refused). */
  createPod(name: string, binding: string, nodeIndex: number): Promise<{ pod: V1Pod; side: NodeSide }>;
  createBinding(name: string, spec: Record<string, unknown>): Promise<void>;
  /**
   * Stops the controller abruptly (its manager aborted, nothing handed over), runs `whileDown`, and
   * starts a new controller on the same namespaces (a new broker: the node plugins keep their
   * volumes but cannot reach it). `operator` then names the new one.
   */
  restartController(whileDown: () => Promise<void>): Promise<void>;
  bindingStatus(name: string): Promise<BindingStatus | undefined>;
  /** Stops everything started here and deletes what was created. */
  close(): Promise<void>;
}

export interface BindingStatus {
  readonly contentHmac?: string;
  readonly lastRotationTime?: string;
  readonly conditions?: { type: string; status: string; reason: string; message?: string; lastTransitionTime?: string }[];
  readonly consumers?: { pods?: number; stale?: number };
}

/** The SecretBackend of a delivery world, and the Secret its auth reads (both in the app namespace). */
const backendName = 'backend';
export const credentialsSecret = 'backend-credentials';

export const readText = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);

/**
 * The same, synchronously: for polling many files in a loop. The node plugins under test share
 * this process's event loop and libuv pool; hundreds of async reads every 100 ms would queue
 * their file writes behind the observer (tmpfs reads are microseconds, blocking is cheaper).
 */
export function readTextNow(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export interface DeliveryWorldOptions {
  readonly prefix: string;
  readonly nodes: number;
  /** The SecretBackend every binding reads and its credentials (default: the world's OpenBao). */
  readonly backend?: Pick<RotationBackend, 'spec' | 'credentials'>;
  /** Further controller flags (e.g. a change-notice source), given the app namespace. */
  readonly controllerArgs?: (namespace: string) => readonly string[];
  /**
   * Further SecretBackends, by name (their credentials join the same Secret: the keys of the
   * world's backends do not collide). Bindings name them in `spec.backends`.
   */
  readonly moreBackends?: Readonly<Record<string, Pick<RotationBackend, 'spec' | 'credentials'>>>;
}

export async function startDeliveryWorld(options: DeliveryWorldOptions): Promise<DeliveryWorld> {
  const kc = adminKubeConfig();
  const operatorKc = await loadKubeConnection({ kind: 'file', path: currentWorld().kube.kubeconfigPath }, {});
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  await installCrds(kc);
  const bao = currentWorld().openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const suffix = randomBytes(3).toString('hex');
  const ns = `${options.prefix}-app-${suffix}`;
  const systemNs = `${options.prefix}-sys-${suffix}`;
  const tmp = mkdtempSync(`/tmp/sb-${options.prefix}-`);
  const nodeNames = Array.from({ length: options.nodes }, (_, i) => `${options.prefix}-node-${String(i)}-${suffix}`);

  for (const name of [ns, systemNs]) await core.createNamespace({ body: { metadata: { name } } });
  for (const node of nodeNames) await core.createNode({ body: { metadata: { name: node } } });
  await core.createNamespacedServiceAccount({ namespace: systemNs, body: { metadata: { name: 'node-plugin' } } });
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
  const backend = options.backend ?? {
    spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: credentialsSecret, key: 'token' } } } } },
    credentials: { token: bao.rootToken },
  };
  const backends = { [backendName]: backend, ...options.moreBackends };
  const credentials = Object.assign({}, ...Object.values(backends).map((b) => b.credentials)) as Record<string, string>;
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: credentialsSecret }, stringData: credentials } });
  for (const [name, { spec }] of Object.entries(backends)) {
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: ns,
      body: { apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name }, spec },
    });
  }

  const controllerLog = new CapturedOutput();
  const pluginLog = new CapturedOutput();
  const auditOut = new CapturedOutput();
  const registry = new Registry();
  const audit: AuditLog = createAuditLog({ destination: { kind: 'stream', stream: auditOut } });
  const controllerOptions = (name: string): Parameters<typeof buildInProcessController>[0] => ({
    dir: tmp,
    name,
    identity: `${options.prefix}-test-${suffix}`,
    namespace: systemNs,
    watchNamespaces: [ns],
    nodePluginServiceAccount: `${systemNs}:node-plugin`,
    // As main.ts builds it: the controller's own pooled client configuration (ADR 0142).
    kubeConfig: operatorKc,
    log: { stream: controllerLog, level: 'info' },
    // Captured at info: debug lines for 200 volumes push propagation over the suites' bounds (ADR 0177).
    captureLevel: 'info',
    registry,
    audit,
    ...(options.controllerArgs === undefined ? {} : { extraArgs: options.controllerArgs(ns) }),
  });
  const first = buildInProcessController(controllerOptions('controller'));
  let operator = first.operator;
  const caOut = first.caPath;
  let stop = new AbortController();
  let exited = false;
  let running = operator.manager.run(stop.signal).finally(() => {
    exited = true;
  });
  if (operator.broker === undefined) throw new Error('the broker is not enabled');
  const address = await operator.broker.address();

  /** A node plugin and its CSI server on `socket`, as the DaemonSet's container starts them. */
  const startNodePlugin = async (node: string, socket: string, tokenFile: string): Promise<Pick<NodeSide, 'plugin' | 'server'>> => {
    const logger = createLogger({ level: 'info', component: 'csi', stream: teeLogToCapture(`csi-${node}`, pluginLog, 'info') });
    const plugin = new NodePlugin({
      broker: new BrokerHttpClient({ url: `https://127.0.0.1:${String(address.port)}`, caPem: readFileSync(caOut, 'utf8'), tokenFile, timeoutMs: 10_000 }),
      mounter: new SystemMounter(),
      logger,
      tmpfsSizeBytes: 64 * 1024,
      changesWaitSeconds: 30,
      backoff: { minMs: 200, maxMs: 2000 },
    });
    const server = new CsiServer({ plugin, logger, nodeName: node, version: 'test', csiSocket: socket });
    await server.start();
    plugin.start();
    return { plugin, server };
  };

  const nodes: NodeSide[] = [];
  const sockets: { socket: string; tokenFile: string }[] = [];
  for (const [i, node] of nodeNames.entries()) {
    const dir = join(tmp, `node-${String(i)}`);
    const socket = join(dir, 'plugin', 'csi.sock');
    const tokenFile = join(tmp, `plugin-token-${String(i)}`);
    sockets.push({ socket, tokenFile });
    const kubelet = new KubeletDriver({ kubeConfig: kc, csiSocket: socket, rootDir: join(dir, 'kubelet') });
    const pluginPod = await core.createNamespacedPod({
      namespace: systemNs,
      body: {
        metadata: { name: `node-plugin-${String(i)}` },
        spec: { nodeName: node, serviceAccountName: 'node-plugin', automountServiceAccountToken: false, containers: [{ name: 'plugin', image: 'busybox' }] },
      },
    });
    writeFileSync(tokenFile, (await kubelet.mintPodToken(pluginPod)).token, { mode: 0o600 });
    nodes.push({ node, kubelet, ...(await startNodePlugin(node, socket, tokenFile)) });
  }

  const bindingStatus = async (name: string): Promise<BindingStatus | undefined> => {
    const b = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name })) as { status?: BindingStatus };
    return b.status;
  };

  /** A pod bound to `binding` on node `nodeIndex`, its volume not published yet. */
  const createPod = async (name: string, binding: string, nodeIndex: number): Promise<{ pod: V1Pod; side: NodeSide }> => {
    const side = nodes[nodeIndex];
    if (side === undefined) throw new Error(`no node ${String(nodeIndex)}`);
    const pod = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name, labels: { binding } },
        spec: {
          nodeName: side.node,
          serviceAccountName: 'web',
          automountServiceAccountToken: false,
          containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] }],
          volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding } } }],
        },
      },
    });
    return { pod, side };
  };

  let closed = false;
  let restarts = 0;
  return {
    suffix, ns, kc, core, custom, bao, nodes, controllerLog, pluginLog, auditOut, registry,
    get operator() {
      return operator;
    },
    restartController: async (whileDown) => {
      stop.abort();
      await running;
      await operator.close();
      await whileDown();
      restarts += 1;
      operator = buildInProcessController({ ...controllerOptions(`controller-${String(restarts)}`), registry: new Registry() }).operator;
      stop = new AbortController();
      exited = false;
      running = operator.manager.run(stop.signal).finally(() => {
        exited = true;
      });
    },
    bindingStatus,
    managerExited: () => exited,
    createBinding: async (name, spec) => {
      await custom.createNamespacedCustomObject({
        group, version, plural: resources.SecretBinding.plural, namespace: ns,
        body: { apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name }, spec: { backendRef: { kind: 'SecretBackend', name: backendName }, containers: ['app'], ...spec } },
      });
      await eventually(`binding ${name} resolved`, async () => (await bindingStatus(name))?.contentHmac, 60_000);
    },
    restartNodePlugin: async (nodeIndex) => {
      const side = nodes[nodeIndex];
      const where = sockets[nodeIndex];
      if (side === undefined || where === undefined) throw new Error(`no node ${String(nodeIndex)}`);
      // As a DaemonSet pod replaced in place: the process goes, the tmpfs mounts stay.
      await side.plugin.stop();
      await side.server.stop();
      const restarted: NodeSide = { node: side.node, kubelet: side.kubelet, ...(await startNodePlugin(side.node, where.socket, where.tokenFile)) };
      nodes[nodeIndex] = restarted;
      return restarted;
    },
    podWithVolume: async (name, binding, nodeIndex) => {
      const { pod, side } = await createPod(name, binding, nodeIndex);
      // The broker checks pods in its cache (or one GET): a publish right after the create may race
      // the watch; the kubelet retries too.
      const mount = await eventually(`publish ${name}`, async () => (await side.kubelet.publishPod(pod).catch(() => undefined))?.[0], 30_000);
      return { pod, mount, side };
    },
    createPod,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const side of nodes) {
        for (const volume of side.plugin.volumes()) await side.plugin.unpublish(volume.volumeId, volume.targetPath).catch(() => undefined);
        side.kubelet.close();
        await side.plugin.stop();
        await side.server.stop();
      }
      stop.abort();
      await running;
      await operator.close();
      await audit.close();
      for (const name of [ns, systemNs]) await core.deleteNamespace({ name }).catch(() => undefined);
      for (const node of nodeNames) await core.deleteNode({ name: node }).catch(() => undefined);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** Runs `task` over `items` with at most `limit` at a time. */
export async function inParallel<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** OpenBao audit responses after byte `from` (JSON lines). */
export function baoResponses(bao: OpenBaoEndpoint, from: number): { request?: { operation?: string; path?: string } }[] {
  return readFileSync(bao.auditLogPath)
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { type?: string; request?: { operation?: string; path?: string } })
    .filter((e) => e.type === 'response');
}

/**
 * The sum of a metric's samples in `registry` whose labels include `labels`; `sample` picks a
 * histogram's `_count` or `_sum` (default: the metric's own samples, as a counter's).
 */
export async function metricSum(registry: Registry, name: string, labels: Readonly<Record<string, string>> = {}, sample = name): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? [])
    .filter((v) => ((v as { metricName?: string }).metricName ?? name) === sample && Object.entries(labels).every(([k, value]) => v.labels[k] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
