/**
 * `npm run bench -- --tier scale [--bindings N] [--pods-per-binding P] [--unrelated U] ...`: the
 * controller as users run it (compiled JavaScript, its own process, the chart's default flags)
 * against the real API server and OpenBao, at the sizes of issue 16 by default. Prints one Markdown
 * table of every figure with its target and verdict, and writes the same rows as JSON (--out).
 * Not a test: nothing here asserts; the CI run (test/integration/bench/) runs it tiny and checks
 * only that every row is there.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { apiserverAuditLogPath } from '../harness/control-plane.ts';
import { leaseHolder } from '../harness/controller-process.ts';
import {
  benchBackend,
  buildDist,
  collectGarbage,
  createBenchBackends,
  fileSize,
  jsonLinesFrom,
  rssSampler,
  settledRss,
  startBenchController,
  startBenchWorld,
  writeBenchKeys,
  writeReportJson,
  type BenchWorld,
  type ControllerUnderBench,
} from './scale-world.ts';
import { runChurn } from './scale-churn.ts';
import { apiserverRequests, requestsBetween } from './scale-metrics.ts';
import { nodeRows } from './scale-nodes.ts';
import { csiDriverPeer, oursForPeers, peersMarkdown, runEsoPeer, type PeerResult } from './scale-peers.ts';
import { webhookRow } from './scale-webhook.ts';
import { atMost, markdownTable, median, mib, quantile, row, scaleFigures, secs, type Row } from './scale-report.ts';

export interface ScaleOptions {
  readonly bindings: number;
  readonly podsPerBinding: number;
  readonly unrelated: number;
  readonly namespaces: number;
  readonly keys: number;
  readonly refreshSeconds: number;
  readonly idleIntervals: number;
  readonly newBindings: number;
  readonly replicas: number;
  readonly out: string;
  readonly build: boolean;
  /** Seconds to let the controller settle before an RSS reading, and readings per figure. */
  readonly settleSeconds: number;
  readonly samples: number;
  /** Seconds of binding and pod churn for the churn row, and bindings per churn round. */
  readonly churnSeconds: number;
  readonly churnBindings: number;
  /** Node-side and webhook rows (scale-nodes.ts, scale-webhook.ts). */
  readonly nodes: number;
  readonly volumes: number;
  readonly pluginVolumes: number;
  readonly concurrentMounts: number;
  readonly admissions: number;
  /** Peers to run in the same world after ours (scale-peers.ts): `eso`, `csi`. Bench only. */
  readonly peers: readonly string[];
}

export function parseScaleOptions(argv: readonly string[]): ScaleOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      tier: { type: 'string' },
      bindings: { type: 'string', default: '5000' },
      'pods-per-binding': { type: 'string', default: '4' },
      unrelated: { type: 'string', default: '50000' },
      namespaces: { type: 'string', default: '10' },
      keys: { type: 'string', default: '100' },
      'refresh-seconds': { type: 'string', default: '10' },
      'idle-intervals': { type: 'string', default: '5' },
      'new-bindings': { type: 'string', default: '50' },
      replicas: { type: 'string', default: '2' },
      out: { type: 'string', default: 'bench-results/scale.json' },
      'settle-seconds': { type: 'string', default: '10' },
      samples: { type: 'string', default: '5' },
      'skip-build': { type: 'boolean', default: false },
      'churn-seconds': { type: 'string', default: '600' },
      'churn-bindings': { type: 'string', default: '100' },
      nodes: { type: 'string', default: '4' },
      volumes: { type: 'string', default: '1000' },
      'plugin-volumes': { type: 'string', default: '110' },
      'concurrent-mounts': { type: 'string', default: '100' },
      admissions: { type: 'string', default: '500' },
      peers: { type: 'string', default: '' },
      series: { type: 'string' },
    },
  });
  const int = (name: keyof typeof values, min: number): number => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${String(min)}`);
    return n;
  };
  return {
    bindings: int('bindings', 1),
    podsPerBinding: int('pods-per-binding', 0),
    unrelated: int('unrelated', 0),
    namespaces: int('namespaces', 1),
    keys: int('keys', 1),
    refreshSeconds: int('refresh-seconds', 10),
    idleIntervals: int('idle-intervals', 1),
    newBindings: int('new-bindings', 1),
    replicas: int('replicas', 1),
    out: values.out,
    settleSeconds: int('settle-seconds', 0),
    samples: int('samples', 1),
    build: !values['skip-build'],
    churnSeconds: int('churn-seconds', 1),
    churnBindings: int('churn-bindings', 1),
    nodes: int('nodes', 1),
    volumes: int('volumes', 1),
    pluginVolumes: int('plugin-volumes', 1),
    concurrentMounts: int('concurrent-mounts', 1),
    admissions: int('admissions', 1),
    peers: values.peers.split(',').filter((p) => p !== ''),
  };
}

const log = (line: string): void => {
  process.stderr.write(`[scale +${(process.uptime()).toFixed(0)}s] ${line}\n`);
};

/** Runs `task` over `count` indexes with at most `limit` at a time. */
async function inParallel(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

interface BindingState {
  readonly namespace: string;
  readonly name: string;
  readonly ready: boolean;
}

async function bindingStates(custom: CustomObjectsApi, namespaces: readonly string[]): Promise<BindingState[]> {
  const list = (await custom.listClusterCustomObject({ group, version, plural: resources.SecretBinding.plural })) as {
    items: { metadata: { namespace: string; name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
  };
  const ours = new Set(namespaces);
  return list.items
    .filter((b) => ours.has(b.metadata.namespace))
    .map((b) => ({ namespace: b.metadata.namespace, name: b.metadata.name, ready: b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true }));
}

async function waitAllReady(custom: CustomObjectsApi, namespaces: readonly string[], count: number, timeoutMs: number): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const states = await bindingStates(custom, namespaces);
    const ready = states.filter((s) => s.ready).length;
    if (ready >= count) return Date.now();
    await sleep(500);
  }
  return undefined;
}

function bindingBody(run: string, i: number, keys: number): object {
  const key = `bench/${run}/key-${String(i % keys)}`;
  return {
    apiVersion: `${group}/${version}`,
    kind: 'SecretBinding',
    metadata: { name: `b-${String(i)}` },
    spec: {
      backendRef: { kind: 'SecretBackend', name: benchBackend },
      podSelector: { matchLabels: { binding: `b-${String(i)}` } },
      containers: ['app'],
      files: [
        { path: 'user', key, property: 'user' },
        { path: 'password', key, property: 'password' },
      ],
    },
  };
}

async function createBinding(custom: CustomObjectsApi, run: string, namespace: string, i: number, keys: number): Promise<void> {
  await custom.createNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace, body: bindingBody(run, i, keys) });
}

async function createPod(core: CoreV1Api, namespace: string, binding: number, replica: number): Promise<void> {
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: `p-${String(binding)}-${String(replica)}`, labels: { binding: `b-${String(binding)}` } },
      spec: {
        automountServiceAccountToken: false,
        containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] }],
        volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: `b-${String(binding)}` } } }],
      },
    },
  });
}

export async function runScaleBench(argv: readonly string[]): Promise<{ rows: Row[]; markdown: string; peers: PeerResult[]; syncApiRequests: number | undefined }> {
  const o = parseScaleOptions(argv);
  if (o.build) {
    log('npm run build (the compiled JavaScript the image runs)');
    buildDist();
  }
  const bench: BenchWorld = await startBenchWorld({ namespaces: o.namespaces, log });
  const { core, custom, namespaces } = bench;
  const rows: Row[] = [];
  const controllers: ControllerUnderBench[] = [];
  /** The leader's RSS over the run (ms since the first binding create; one reading a second). */
  const rssSeries: { t: number; rssMiB: number }[] = [];
  const peers: PeerResult[] = [];
  let syncApiRequests: number | undefined;
  const nsOf = (i: number): string => namespaces[i % namespaces.length] as string;
  try {
    log(`writing ${String(o.keys)} OpenBao keys`);
    await writeBenchKeys(bench.world, bench.systemNamespace, o.keys);
    const leaseName = `bench-${bench.systemNamespace}`;
    for (let r = 0; r < o.replicas; r++) controllers.push(startBenchController(bench, `${bench.systemNamespace}-${String(r)}`, leaseName));
    for (const c of controllers) await c.healthPort();
    // The leader reconciles: its RSS is the one that grows with the bindings.
    let holder: string | undefined;
    for (let i = 0; i < 60 && holder === undefined; i++) {
      holder = await leaseHolder(bench.kc, leaseName, bench.systemNamespace);
      if (holder === undefined) await sleep(500);
    }
    const leader = controllers.find((c) => c.identity === holder) ?? controllers[0];
    if (leader === undefined) throw new Error('no controller started');
    log(`leader: ${leader.identity}`);
    const sampler = rssSampler(leader.pid);

    // Idle: CRDs installed, no object of ours yet. Settle, then the median of 5 readings.
    const idle = await settledRss(leader.pid, o.settleSeconds * 1.5, o.samples);
    const heap = { usedMiB: (await leader.metric('nodejs_heap_size_used_bytes')) / 2 ** 20, externalMiB: (await leader.metric('nodejs_external_memory_bytes')) / 2 ** 20 };
    log(`idle RSS ${mib(idle)} (V8 heap used ${mib(heap.usedMiB)}, external ${mib(heap.externalMiB)})`);
    rows.push(row(scaleFigures[0], '≤ 96 MiB', mib(idle), atMost(idle, 96), { rssMiB: idle, heapUsedMiB: heap.usedMiB, externalMiB: heap.externalMiB }));

    // Then the backends (their SDK loads with the first, ADR 0200) and unrelated Secrets and
    // ConfigMaps in the watched namespaces.
    await createBenchBackends(bench, o.refreshSeconds);
    // Live memory before and after the unrelated objects: a full GC before each reading.
    await collectGarbage(leader.pid);
    const withBackends = await settledRss(leader.pid, o.settleSeconds, o.samples);
    const heapWithBackends = (await leader.metric('nodejs_heap_size_used_bytes')) / 2 ** 20;
    log(`RSS with ${String(namespaces.length)} backends ${mib(withBackends)} (after a full GC; heap used ${mib(heapWithBackends)})`);
    log(`creating ${String(o.unrelated)} unrelated Secrets and ConfigMaps`);
    await inParallel(o.unrelated, 32, async (i) => {
      const namespace = nsOf(i);
      const name = `unrelated-${String(i)}`;
      if (i % 2 === 0) await core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: { value: `v${String(i)}` } } });
      else await core.createNamespacedConfigMap({ namespace, body: { metadata: { name }, data: { value: `v${String(i)}` } } });
    });
    await collectGarbage(leader.pid);
    const withUnrelated = await settledRss(leader.pid, o.settleSeconds, o.samples);
    const heapWithUnrelated = (await leader.metric('nodejs_heap_size_used_bytes')) / 2 ** 20;
    const unrelatedDelta = withUnrelated - withBackends;
    log(`RSS with unrelated objects ${mib(withUnrelated)} (after a full GC; heap used ${mib(heapWithUnrelated)})`);

    // Pods first (not timed), then every binding at once.
    const pods = o.bindings * o.podsPerBinding;
    log(`creating ${String(pods)} pods`);
    await inParallel(pods, 32, async (k) => {
      const binding = Math.floor(k / Math.max(1, o.podsPerBinding));
      await createPod(core, nsOf(binding), binding, k % Math.max(1, o.podsPerBinding));
    });
    log(`creating ${String(o.bindings)} bindings at once`);
    const apiBefore = await apiserverRequests(bench.kc);
    const t0 = Date.now();
    await inParallel(o.bindings, 32, async (i) => {
      await createBinding(custom, bench.systemNamespace, nsOf(i), i, o.keys);
    });
    const lastCreate = Date.now();
    const allReadyAt = await waitAllReady(custom, namespaces, o.bindings, Math.max(120_000, o.bindings * 100));
    // API requests of the sync, the bench's own creates and cluster-wide lists of bindings taken out.
    syncApiRequests = requestsBetween(apiBefore, await apiserverRequests(bench.kc), { resource: 'secretbindings', verbs: ['POST', 'LIST'] });
    if (allReadyAt === undefined) {
      rows.push(row(scaleFigures[3], '≤ 15 s', 'not all Ready within the wait', 'FAIL'));
    } else {
      const total = allReadyAt - t0;
      log(`all ${String(o.bindings)} Ready ${secs(total)} after the first create`);
      rows.push(row(scaleFigures[3], '≤ 15 s', `${secs(total)} (${secs(allReadyAt - lastCreate)} after the last create; creates took ${secs(lastCreate - t0)})`, atMost(total, 15_000), { ms: total, afterLastCreateMs: allReadyAt - lastCreate }));
    }
    const atN = await settledRss(leader.pid, o.settleSeconds, o.samples);
    rows.push(row(scaleFigures[1], '≤ 256 MiB', `${mib(atN)} settled, ${mib(sampler.peak())} peak (${String(o.bindings)} bindings, ${String(pods)} pods, ${String(o.unrelated)} unrelated)`, atMost(Math.max(atN, sampler.peak()), 256), { settledMiB: atN, peakMiB: sampler.peak(), bindings: o.bindings, pods, unrelated: o.unrelated }));
    rows.push(row(scaleFigures[2], '≤ 5 MiB', `${unrelatedDelta.toFixed(1)} MiB RSS (${mib(withBackends)} with the backends → ${mib(withUnrelated)}, each after a full GC); V8 heap used ${mib(heapWithBackends)} → ${mib(heapWithUnrelated)}`, atMost(unrelatedDelta, 5), { deltaMiB: unrelatedDelta, heapBeforeMiB: heapWithBackends, heapAfterMiB: heapWithUnrelated }));

    // One new binding at a time, with N existing: create → Ready.
    const times: number[] = [];
    for (let j = 0; j < o.newBindings; j++) {
      const i = o.bindings + j;
      const namespace = nsOf(i);
      const start = Date.now();
      await createBinding(custom, bench.systemNamespace, namespace, i, o.keys);
      for (;;) {
        const b = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace, name: `b-${String(i)}` })) as { status?: { conditions?: { type: string; status: string }[] } };
        if (b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true) break;
        if (Date.now() - start > 60_000) break;
        await sleep(20);
      }
      times.push(Date.now() - start);
    }
    const p99 = quantile(times, 0.99);
    rows.push(row(scaleFigures[4], '≤ 2 s', `p99 ${secs(p99)}, median ${(median(times) / 1000).toFixed(2)} s (${String(times.length)} bindings, polled every 20 ms)`, atMost(p99, 2000), { p99Ms: p99, medianMs: median(times) }));

    // Idle refresh intervals: writes at the API server (its audit log: Events and every write to
    // our resources) and reads at OpenBao (its audit log), over the same window.
    await sleep(o.settleSeconds * 1000);
    const auditPath = apiserverAuditLogPath(bench.world.logDir);
    const bao = bench.world.openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const auditFrom = fileSize(auditPath);
    const baoFrom = fileSize(bao.auditLogPath);
    log(`idle for ${String(o.idleIntervals)} refresh intervals`);
    await sleep(o.idleIntervals * o.refreshSeconds * 1000);
    const ours = new Set(namespaces);
    const writes = jsonLinesFrom<{ stage?: string; verb?: string; objectRef?: { namespace?: string } }>(auditPath, auditFrom).filter(
      (e) => e.stage === 'ResponseComplete' && ours.has(e.objectRef?.namespace ?? ''),
    ).length;
    rows.push(row(scaleFigures[5], '0', `${String(writes)} over ${String(o.idleIntervals)} intervals of ${String(o.refreshSeconds)} s`, writes === 0 ? 'pass' : 'FAIL', { writes }));
    const reads = jsonLinesFrom<{ type?: string; request?: { operation?: string; path?: string } }>(bao.auditLogPath, baoFrom).filter(
      (e) => e.type === 'response' && e.request?.operation === 'read' && (e.request.path ?? '').includes(`/bench/${bench.systemNamespace}/`),
    ).length;
    // Each namespace has its own backend: the unique reads are the (backend, key) pairs in use.
    const pairs = new Set(Array.from({ length: o.bindings + o.newBindings }, (_, i) => `${String(i % namespaces.length)}/${String(i % o.keys)}`));
    const backendsTimesKeys = pairs.size;
    const perInterval = reads / o.idleIntervals;
    // A window of k intervals holds k or k + 1 polls of a key polled once per interval (where its
    // polls fall against the window's edges): more than that is a second reader.
    const onceEach = reads <= backendsTimesKeys * (o.idleIntervals + 1);
    rows.push(row(scaleFigures[6], `= unique keys (${String(backendsTimesKeys)} backend·key pairs)`, `${perInterval.toFixed(1)} per interval (${String(reads)} in ${String(o.idleIntervals)} interval(s); at most k + 1 per key in k intervals is once per interval) with ${String(o.replicas)} replica(s), ${String(o.bindings + o.newBindings)} bindings, ${String(pods)} pods`, onceEach ? 'pass' : 'FAIL', { readsPerInterval: perInterval, reads, uniquePairs: backendsTimesKeys, replicas: o.replicas }));
    sampler.stop();
    rssSeries.push(...sampler.samples().map((x) => ({ t: x.t - t0, rssMiB: Number(x.rss.toFixed(1)) })).filter((_, i) => i % 4 === 0));

    rows.push(...(await nodeRows(bench, leader, { nodes: o.nodes, volumes: o.volumes, pluginVolumes: o.pluginVolumes, concurrentMounts: o.concurrentMounts, refreshSeconds: o.refreshSeconds, settleSeconds: o.settleSeconds, samples: o.samples }, log)));
    rows.push(await webhookRow(bench, leader, o.admissions, log));
    const churn = await runChurn(
      { seconds: o.churnSeconds, bindingsPerRound: o.churnBindings, podsPerBinding: o.podsPerBinding, firstIndex: o.bindings + o.newBindings },
      {
        createBinding: (i) => createBinding(custom, bench.systemNamespace, nsOf(i), i, o.keys),
        deleteBinding: async (i) => { await custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: nsOf(i), name: `b-${String(i)}` }); },
        createPod: (b, r) => createPod(core, nsOf(b), b, r),
        deletePod: async (b, r) => { await core.deleteNamespacedPod({ namespace: nsOf(b), name: `p-${String(b)}-${String(r)}`, gracePeriodSeconds: 0 }); },
        inParallel: (count, task) => inParallel(count, 32, task),
        liveRss: async () => {
          await collectGarbage(leader.pid);
          return settledRss(leader.pid, o.settleSeconds, o.samples);
        },
        log,
      },
    );
    rows.push(row(scaleFigures[11], '≤ 1.1×', `${churn.ratio.toFixed(2)}× (${mib(churn.beforeMiB)} → ${mib(churn.afterMiB)}, each after a full GC; ${String(churn.rounds)} rounds of ${String(o.churnBindings)} bindings and their pods created and deleted over ${secs(churn.ms)})`, atMost(churn.ratio, 1.1), { ratio: churn.ratio, beforeMiB: churn.beforeMiB, afterMiB: churn.afterMiB, rounds: churn.rounds, bindings: churn.bindings, pods: churn.pods, ms: churn.ms }));
    if (o.peers.includes('eso')) {
      // The peer runs alone: our controllers stop first (the by-hand comparison of issue 16 did the same).
      for (const c of controllers) await c.stop();
      peers.push(await runEsoPeer(bench, { count: o.bindings, keys: o.keys, refreshSeconds: o.refreshSeconds, idleIntervals: o.idleIntervals, settleSeconds: o.settleSeconds, samples: o.samples }, oursForPeers(rows, syncApiRequests), log));
    }
    if (o.peers.includes('csi')) peers.push(csiDriverPeer(oursForPeers(rows, syncApiRequests)));
  } finally {
    for (const c of controllers) await c.stop();
    await bench.close();
  }
  const order = (r: Row): number => (scaleFigures as readonly string[]).indexOf(r.figure);
  rows.sort((a, b) => order(a) - order(b));
  const markdown = peers.length === 0 ? markdownTable(rows) : `${markdownTable(rows)}\n\n${peersMarkdown(peers)}`;
  writeReportJson(o.out, { date: new Date().toISOString(), options: o, rows, leaderRss: rssSeries, syncApiRequests, peers });
  return { rows, markdown, peers, syncApiRequests };
}
