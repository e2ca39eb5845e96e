/**
 * The scale tier's node-side rows (ADR 0270): node-plugin processes from the compiled JavaScript
 * (`dist/delivery/node-plugin.main.js`, as the DaemonSet runs it), each with a real node identity —
 * a Node object, the plugin's own pod on it and a token bound to that pod — talking to the leader's
 * broker over TLS; one kubelet-like driver per node publishes real pods' volumes into real tmpfs.
 * Three rows: the plugin's RSS at 110 volumes, the broker's mount latency at 100 concurrent mounts,
 * and rotation (change detected → files updated) over every volume on every node.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { processLog } from '../harness/controller-process.ts';
import { KubeletDriver, type PodVolumeMount } from '../harness/kubelet-driver.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { startProcess, stopProcess, waitFor, type ProcessRecord } from '../harness/process.ts';
import { benchBackend, imageEnv, nodeChild, settledRss, type BenchWorld, type ControllerUnderBench } from './scale-world.ts';
import { atMost, median, mib, quantile, row, scaleFigures, type Row } from './scale-report.ts';
import { boundText, fetchMetrics, histogramBuckets, quantileBetween } from './scale-metrics.ts';

export interface NodeRowOptions {
  /** Node-plugin processes (≥ 4 for the rotation row's target). */
  readonly nodes: number;
  /** Volumes in all, over every node (the rotation row). */
  readonly volumes: number;
  /** Volumes on the first node when its plugin's RSS is read. */
  readonly pluginVolumes: number;
  /** Mounts started at once (the broker row). */
  readonly concurrentMounts: number;
  readonly refreshSeconds: number;
  readonly settleSeconds: number;
  readonly samples: number;
}

interface NodeSide {
  readonly node: string;
  readonly plugin: ProcessRecord;
  readonly pid: number;
  readonly kubelet: KubeletDriver;
}

const root = process.cwd();
const fleet = 'fleet';

/** The leader's broker port, from its "broker listening" log line. */
async function brokerPort(controller: ControllerUnderBench): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const match = /"address":"127\.0\.0\.1:(\d+)"[^\n]*"message":"broker listening"/.exec(processLog(controller.record)) ?? /"message":"broker listening"[^\n]*"address":"127\.0\.0\.1:(\d+)"/.exec(processLog(controller.record));
    if (match?.[1] !== undefined) return Number(match[1]);
    await sleep(100);
  }
  throw new Error(`controller ${controller.identity}: no "broker listening" line in its log`);
}

/** Runs `task` over `count` indexes with at most `limit` at a time. */
async function inParallel(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await task(next++);
  }));
}

function readNow(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export async function nodeRows(bench: BenchWorld, leader: ControllerUnderBench, o: NodeRowOptions, log: (line: string) => void): Promise<Row[]> {
  const { core, custom } = bench;
  const ns = bench.namespaces[0] as string;
  const systemNs = bench.systemNamespace;
  const suffix = randomBytes(3).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'sb-scale-nodes-'));
  const nodeNames = Array.from({ length: o.nodes }, (_, i) => `bench-node-${String(i)}-${suffix}`);
  const sides: NodeSide[] = [];
  const published: { pod: V1Pod; side: NodeSide; mount: PodVolumeMount }[] = [];
  const rows: Row[] = [];
  const key = `bench/${systemNs}/fleet`;
  const bao = bench.world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  try {
    // The broker's trust bundle, as the chart mounts it into the DaemonSet.
    const tls = await core.readNamespacedSecret({ namespace: systemNs, name: 'secret-binder-broker-tls' });
    const caFile = join(dir, 'broker-ca.crt');
    writeFileSync(caFile, Buffer.from(tls.data?.['ca.crt'] ?? '', 'base64'));
    const port = await brokerPort(leader);
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: fleet } } });
    for (const [i, node] of nodeNames.entries()) {
      await core.createNode({ body: { metadata: { name: node } } });
      const socket = join(dir, `n${String(i)}`, 'csi.sock');
      const tokenFile = join(dir, `plugin-token-${String(i)}`);
      const kubelet = new KubeletDriver({ kubeConfig: bench.kc, csiSocket: socket, rootDir: join(dir, `n${String(i)}`, 'kubelet'), tokenSeconds: 3600 });
      const pluginPod = await core.createNamespacedPod({
        namespace: systemNs,
        body: { metadata: { name: `node-plugin-${String(i)}-${suffix}` }, spec: { nodeName: node, serviceAccountName: 'node-plugin', automountServiceAccountToken: false, containers: [{ name: 'plugin', image: 'busybox' }] } },
      });
      writeFileSync(tokenFile, (await kubelet.mintPodToken(pluginPod)).token, { mode: 0o600 });
      const plugin = startProcess({
        name: `bench-node-plugin-${String(i)}-${suffix}`,
        command: process.execPath,
        args: [
          join(root, 'dist/delivery/node-plugin.main.js'),
          '--node-name', node,
          '--csi-socket', socket,
          '--registration-socket', '',
          '--broker-url', `https://127.0.0.1:${String(port)}`,
          '--broker-ca-file', caFile,
          '--token-file', tokenFile,
        ],
        env: imageEnv(),
        logDir: bench.world.logDir,
        maxLifetimeSeconds: 4 * 3600,
      });
      sides.push({ node, plugin, pid: nodeChild(plugin.pid), kubelet });
    }
    for (const side of sides) await waitFor(`node plugin ${side.node}`, () => Promise.resolve(existsSync(join(dir, `n${String(sides.indexOf(side))}`, 'csi.sock'))), { timeoutMs: 30_000, record: side.plugin });
    const idleRss = await settledRss((sides[0] as NodeSide).pid, o.settleSeconds, o.samples);
    log(`${String(o.nodes)} node plugins up (first: ${mib(idleRss)} with no volume)`);

    // One binding for every volume: two files from one key of its own (no other binding rotates).
    await writeKvSecret(bao, key, { user: 'fleet', password: randomBytes(12).toString('hex') });
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBinding.plural, namespace: ns,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name: fleet },
        spec: { backendRef: { kind: 'SecretBackend', name: benchBackend }, podSelector: { matchLabels: { fleet } }, containers: ['app'], files: [{ path: 'user', key, property: 'user' }, { path: 'password', key, property: 'password' }] },
      },
    });
    for (let i = 0; ; i++) {
      const b = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name: fleet })) as { status?: { contentHmac?: string } };
      if (b.status?.contentHmac !== undefined) break;
      if (i > 600) throw new Error('the fleet binding did not resolve within 60 s');
      await sleep(100);
    }

    const createPod = async (i: number, side: NodeSide): Promise<V1Pod> =>
      core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: `fleet-${String(i)}-${suffix}`, labels: { fleet } },
          spec: {
            nodeName: side.node, serviceAccountName: fleet, automountServiceAccountToken: false,
            containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] }],
            volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: fleet } } }],
          },
        },
      });
    /** Publishes the pod's volume; the broker may not have seen the pod yet (its watch): retried, as the kubelet does. */
    const publish = async (pod: V1Pod, side: NodeSide): Promise<number> => {
      for (let attempt = 0; ; attempt++) {
        const t = performance.now();
        try {
          const [mount] = await side.kubelet.publishPod(pod);
          if (mount === undefined) throw new Error('the pod has no secretbinder.dev volume');
          published.push({ pod, side, mount });
          return performance.now() - t;
        } catch (error) {
          if (attempt >= 50) throw error;
          await sleep(200);
        }
      }
    };

    // Node plugin RSS at `pluginVolumes` volumes on the first node.
    const first = sides[0] as NodeSide;
    await inParallel(o.pluginVolumes, 8, async (i) => { await publish(await createPod(i, first), first); });
    const rss = await settledRss(first.pid, o.settleSeconds, o.samples);
    log(`node plugin RSS at ${String(o.pluginVolumes)} volumes: ${mib(rss)}`);
    rows.push(row(scaleFigures[8], '≤ 64 MiB', `${mib(rss)} at ${String(o.pluginVolumes)} volumes (${mib(idleRss)} with none), settled; compiled JavaScript with the image's NODE_OPTIONS`, atMost(rss, 64), { rssMiB: rss, idleRssMiB: idleRss, volumes: o.pluginVolumes }));

    // Broker: `concurrentMounts` publishes at once over the other nodes, timed at the kubelet and by the broker's own histogram.
    const others = sides.length > 1 ? sides.slice(1) : sides;
    const base = o.pluginVolumes;
    const pods = await Promise.all(Array.from({ length: o.concurrentMounts }, async (_, j) => {
      const side = others[j % others.length] as NodeSide;
      return { pod: await createPod(base + j, side), side };
    }));
    // The broker reads pods from its cache: let its watch see them first, so every mount is one answer.
    await sleep(2000);
    const healthPort = await leader.healthPort();
    const histogram = 'secretbinder_broker_request_duration_seconds';
    const before = histogramBuckets(await fetchMetrics(healthPort), histogram, 'endpoint="publish"');
    const times = await Promise.all(pods.map(({ pod, side }) => publish(pod, side)));
    const after = histogramBuckets(await fetchMetrics(healthPort), histogram, 'endpoint="publish"');
    const atBroker = quantileBetween(before, after, 0.99);
    const p99 = quantile(times, 0.99);
    log(`${String(o.concurrentMounts)} concurrent mounts: broker p99 ${boundText(atBroker.upperBoundSeconds, 60)}, kubelet p99 ${p99.toFixed(0)} ms`);
    rows.push(row(
      scaleFigures[9], 'report, ≤ 50 ms',
      `at the broker p99 ${boundText(atBroker.upperBoundSeconds, 60)} (its histogram's bucket, ${String(atBroker.count)} publish requests); ` +
        `at the kubelet (NodePublishVolume: token request, plugin, broker, tmpfs mount, files) p99 ${p99.toFixed(0)} ms, median ${median(times).toFixed(0)} ms; ` +
        `${String(o.concurrentMounts)} mounts at once on ${String(others.length)} node plugin(s)`,
      atBroker.upperBoundSeconds <= 0.05 ? 'pass' : 'FAIL',
      { brokerP99UpperBoundMs: atBroker.upperBoundSeconds * 1000, brokerRequests: atBroker.count, kubeletP99Ms: p99, kubeletMedianMs: median(times) },
    ));

    // The rest of the volumes over every node, then one rotation of the key.
    const rest = Math.max(0, o.volumes - published.length);
    log(`publishing ${String(rest)} more volumes (${String(published.length + rest)} in all on ${String(sides.length)} node plugins)`);
    const start = base + o.concurrentMounts;
    await inParallel(rest, 8, async (k) => {
      const side = sides[k % sides.length] as NodeSide;
      await publish(await createPod(start + k, side), side);
    });
    await sleep(2000);
    const files = published.map((p) => join(p.mount.targetPath, 'password'));
    const detectedTotal = async (): Promise<number> => {
      const text = await fetchMetrics(healthPort);
      return text.split('\n').filter((l) => l.startsWith('secretbinder_backend_changes_detected_total{')).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    };
    const detectedBefore = await detectedTotal();
    const next = randomBytes(12).toString('hex');
    const written = Date.now();
    await writeKvSecret(bao, key, { user: 'fleet', password: next });
    // Detection: the first scrape of the leader's /metrics that counts the change (scraped every 50 ms).
    let detectedAt: number | undefined;
    const arrived = new Array<number | undefined>(files.length).fill(undefined);
    const deadline = written + (2 * o.refreshSeconds + 60) * 1000;
    while (arrived.some((t) => t === undefined) && Date.now() < deadline) {
      if (detectedAt === undefined && (await detectedTotal()) > detectedBefore) detectedAt = Date.now();
      files.forEach((file, i) => {
        if (arrived[i] === undefined && readNow(file) === next) arrived[i] = Date.now();
      });
      await sleep(50);
    }
    const missing = arrived.filter((t) => t === undefined).length;
    if (detectedAt === undefined || missing > 0) {
      rows.push(row(scaleFigures[7], '≤ 1 s', `${String(missing)} of ${String(files.length)} volumes not updated${detectedAt === undefined ? ', change not detected' : ''} within ${String(2 * o.refreshSeconds + 60)} s`, 'FAIL'));
    } else {
      const fromDetection = arrived.map((t) => Math.max(0, (t as number) - detectedAt));
      const fromWrite = arrived.map((t) => (t as number) - written);
      const rp99 = quantile(fromDetection, 0.99);
      log(`rotation: detected ${String(detectedAt - written)} ms after the write; files p99 ${String(rp99)} ms after detection`);
      rows.push(row(
        scaleFigures[7], '≤ 1 s',
        `p99 ${(rp99 / 1000).toFixed(2)} s, median ${(median(fromDetection) / 1000).toFixed(2)} s after detection (the first 50 ms scrape of the leader's /metrics counting it), ` +
          `${String(files.length)} volumes on ${String(sides.length)} node plugins; from the write: p99 ${(quantile(fromWrite, 0.99) / 1000).toFixed(2)} s (polled, refreshInterval ${String(o.refreshSeconds)} s)`,
        atMost(rp99, 1000),
        { p99Ms: rp99, medianMs: median(fromDetection), fromWriteP99Ms: quantile(fromWrite, 0.99), volumes: files.length, nodes: sides.length },
      ));
    }
    return rows;
  } catch (error) {
    const tails = sides.map((s) => `--- ${s.node}\n${processLog(s.plugin).slice(-1500)}`).join('\n');
    throw new Error(`${error instanceof Error ? error.message : String(error)}\nnode plugin logs:\n${tails}`);
  } finally {
    await inParallel(published.length, 16, async (i) => {
      const p = published[i];
      if (p !== undefined) await p.side.kubelet.unpublishPod(p.pod).catch(() => undefined);
    });
    for (const side of sides) {
      side.kubelet.close();
      await stopProcess(side.plugin);
    }
    for (const node of nodeNames) await core.deleteNode({ name: node }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
