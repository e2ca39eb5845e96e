/**
 * Peers side by side (ADR 0270), in the scale tier's world after our own rows: External Secrets
 * Operator built from its Go module (test/harness/install/peers.sh), run with its default flags
 * against the same API server and OpenBao, reading the same keys. Time to sync N ExternalSecrets,
 * its RSS, its backend reads per refresh interval and its API requests; printed beside ours with
 * the ratio ours ÷ theirs. Bench only: never part of .ci/run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { rawRequest } from '../harness/crds.ts';
import { startProcess, stopProcess } from '../harness/process.ts';
import { fileSize, jsonLinesFrom, nodeChild, rssMiB, rssSampler, type BenchWorld } from './scale-world.ts';
import { median, scaleFigures, type Row } from './scale-report.ts';
import { apiserverRequests, requestsBetween } from './scale-metrics.ts';

export const esoVersion = process.env.SECRET_BINDER_ESO_VERSION ?? 'v0.16.2';
const esoGroup = 'external-secrets.io';

/** What the peer table compares: one figure, ours and theirs (undefined: not measured). */
export interface PeerFigure {
  readonly figure: string;
  readonly unit: 'MiB' | 's' | 'reads' | 'requests';
  readonly ours: number | undefined;
  readonly theirs: number | undefined;
  /** Why theirs is missing, or how it was taken. */
  readonly note?: string;
}

export interface PeerResult {
  readonly peer: string;
  readonly figures: readonly PeerFigure[];
  /** Set when the peer could not be built or run: the rows say so. */
  readonly error?: string;
}

/** Ours, from the tier's own rows, for the same sizes. */
export interface OursForPeers {
  readonly idleRssMiB: number | undefined;
  readonly allReadyMs: number | undefined;
  readonly peakRssMiB: number | undefined;
  readonly settledRssMiB: number | undefined;
  readonly readsPerInterval: number | undefined;
  readonly syncApiRequests: number | undefined;
}

/** Ours for the peer table, from the tier's rows (their raw numbers). */
export function oursForPeers(rows: readonly Row[], syncApiRequests: number | undefined): OursForPeers {
  const n = (figure: (typeof scaleFigures)[number], key: string): number | undefined => rows.find((r) => r.figure === figure)?.numbers?.[key];
  return {
    idleRssMiB: n(scaleFigures[0], 'rssMiB'),
    allReadyMs: n(scaleFigures[3], 'ms'),
    peakRssMiB: n(scaleFigures[1], 'peakMiB'),
    settledRssMiB: n(scaleFigures[1], 'settledMiB'),
    readsPerInterval: n(scaleFigures[6], 'readsPerInterval'),
    syncApiRequests,
  };
}

export interface EsoOptions {
  readonly count: number;
  readonly keys: number;
  readonly refreshSeconds: number;
  readonly idleIntervals: number;
  readonly settleSeconds: number;
  readonly samples: number;
}

/** Builds ESO (cached by version) and returns the module copy it was built from: `<dir>/bin/external-secrets`, `<dir>/src`. */
export function buildEso(log: (line: string) => void): string {
  log(`building External Secrets Operator ${esoVersion} from its Go module (cached after the first time)`);
  const out = execFileSync('bash', [join(process.cwd(), 'test/harness/install/peers.sh'), 'eso'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SECRET_BINDER_ESO_VERSION: esoVersion } });
  return out.trim().split('\n').at(-1) ?? '';
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

/** ESO's CRDs from its module, by server-side apply of the raw YAML (the typed client drops `x-kubernetes-*` keys), then Established. */
async function installEsoCrds(bench: BenchWorld, srcDir: string): Promise<void> {
  const api = bench.kc.makeApiClient(ApiextensionsV1Api);
  const names: string[] = [];
  for (const doc of parseAllDocuments(readFileSync(join(srcDir, 'deploy/crds/bundle.yaml'), 'utf8'))) {
    const crd = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
    const name = crd?.metadata?.name;
    if (crd?.kind !== 'CustomResourceDefinition' || name === undefined) continue;
    names.push(name);
    const answer = await rawRequest(
      bench.kc, 'PATCH', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}?fieldManager=secret-binder-bench&force=true`,
      { 'Content-Type': 'application/apply-patch+yaml', Accept: 'application/json' }, doc.toString(),
    );
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`applying ESO CRD ${name}: ${String(answer.status)} ${answer.body.slice(0, 500)}`);
  }
  for (const name of names) {
    for (let i = 0; ; i++) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true) break;
      if (i > 100) throw new Error(`ESO CRD ${name} not established`);
      await sleep(100);
    }
  }
}

async function inParallel(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, count) }, async () => {
    while (next < count) await task(next++);
  }));
}

/**
 * ESO in the bench world: CRDs from its module, a namespace with a SecretStore on the world's
 * OpenBao (token auth, KV v2, the same mount) and `count` ExternalSecrets over the tier's keys
 * (two properties each, refreshInterval = the tier's), created at once.
 */
export async function runEsoPeer(bench: BenchWorld, o: EsoOptions, ours: OursForPeers, log: (line: string) => void): Promise<PeerResult> {
  const peer = `External Secrets Operator ${esoVersion}`;
  let home: string;
  try {
    home = buildEso(log);
  } catch (error) {
    return { peer, figures: [], error: `build failed: ${error instanceof Error ? error.message.slice(0, 300) : String(error)}` };
  }
  const bao = bench.world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  await installEsoCrds(bench, join(home, 'src'));
  const ns = `eso-${bench.systemNamespace}`;
  await bench.core.createNamespace({ body: { metadata: { name: ns } } });
  await bench.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'bao-token' }, stringData: { token: bao.rootToken } } });
  await bench.custom.createNamespacedCustomObject({
    group: esoGroup, version: 'v1', plural: 'secretstores', namespace: ns,
    body: {
      apiVersion: `${esoGroup}/v1`, kind: 'SecretStore', metadata: { name: 'bao' },
      spec: { provider: { vault: { server: bao.address, path: bao.kvMount, version: 'v2', auth: { tokenSecretRef: { name: 'bao-token', key: 'token' } } } } },
    },
  });
  const metricsPort = await freePort();
  const record = startProcess({
    name: `bench-eso-${bench.systemNamespace}`,
    command: join(home, 'bin/external-secrets'),
    // Its defaults, but for the metrics port (8080 may be taken on a shared machine).
    args: ['--metrics-addr', `127.0.0.1:${String(metricsPort)}`],
    env: { KUBECONFIG: bench.world.kube.kubeconfigPath },
    logDir: bench.world.logDir,
    maxLifetimeSeconds: 4 * 3600,
  });
  const pid = nodeChild(record.pid);
  try {
    await sleep(o.settleSeconds * 1500);
    const idle = median(await readings(pid, o.samples));
    log(`ESO idle RSS ${idle.toFixed(1)} MiB`);
    const sampler = rssSampler(pid);
    const apiBefore = await apiserverRequests(bench.kc);
    log(`creating ${String(o.count)} ExternalSecrets at once`);
    const t0 = Date.now();
    await inParallel(o.count, 32, async (i) => {
      const key = `bench/${bench.systemNamespace}/key-${String(i % o.keys)}`;
      await bench.custom.createNamespacedCustomObject({
        group: esoGroup, version: 'v1', plural: 'externalsecrets', namespace: ns,
        body: {
          apiVersion: `${esoGroup}/v1`, kind: 'ExternalSecret', metadata: { name: `es-${String(i)}` },
          spec: {
            refreshInterval: `${String(o.refreshSeconds)}s`,
            secretStoreRef: { name: 'bao', kind: 'SecretStore' },
            target: { name: `es-${String(i)}` },
            data: [{ secretKey: 'user', remoteRef: { key, property: 'user' } }, { secretKey: 'password', remoteRef: { key, property: 'password' } }],
          },
        },
      });
    });
    const deadline = Date.now() + Math.max(300_000, o.count * 400);
    let readyAt: number | undefined;
    while (Date.now() < deadline) {
      const list = (await bench.custom.listNamespacedCustomObject({ group: esoGroup, version: 'v1', plural: 'externalsecrets', namespace: ns })) as { items: { status?: { conditions?: { type: string; status: string }[] } }[] };
      const ready = list.items.filter((e) => e.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true).length;
      if (ready >= o.count) {
        readyAt = Date.now();
        break;
      }
      await sleep(1000);
    }
    const apiAfter = await apiserverRequests(bench.kc);
    // The bench's own requests in that window (its creates and lists of ExternalSecrets) are not ESO's.
    const api = requestsBetween(apiBefore, apiAfter, { resource: 'externalsecrets', verbs: ['POST', 'LIST'] });
    const took = readyAt === undefined ? undefined : readyAt - t0;
    log(took === undefined ? 'ESO: not all synced within the wait' : `ESO: all ${String(o.count)} synced ${(took / 1000).toFixed(1)} s after the first create`);
    const settled = median(await readings(pid, o.samples));
    sampler.stop();
    // Backend reads while idle: every read of the tier's keys (our controllers are stopped by now).
    const from = fileSize(bao.auditLogPath);
    await sleep(o.idleIntervals * o.refreshSeconds * 1000);
    const reads = jsonLinesFrom<{ type?: string; request?: { operation?: string; path?: string } }>(bao.auditLogPath, from).filter(
      (e) => e.type === 'response' && e.request?.operation === 'read' && (e.request.path ?? '').includes(`/bench/${bench.systemNamespace}/`),
    ).length;
    const perInterval = reads / o.idleIntervals;
    log(`ESO: ${perInterval.toFixed(1)} backend reads per interval, RSS ${settled.toFixed(1)} MiB settled, ${sampler.peak().toFixed(1)} MiB peak`);
    return {
      peer,
      figures: [
        { figure: 'RSS idle, before any object', unit: 'MiB', ours: ours.idleRssMiB, theirs: idle },
        { figure: `${String(o.count)} objects → all Ready (synced)`, unit: 's', ours: ours.allReadyMs === undefined ? undefined : ours.allReadyMs / 1000, theirs: took === undefined ? undefined : took / 1000, ...(took === undefined ? { note: 'not all synced within the wait' } : {}) },
        { figure: `${String(o.count)} objects: peak RSS`, unit: 'MiB', ours: ours.peakRssMiB, theirs: sampler.peak() },
        { figure: `${String(o.count)} objects: settled RSS`, unit: 'MiB', ours: ours.settledRssMiB, theirs: settled },
        { figure: 'Backend reads per refresh interval', unit: 'reads', ours: ours.readsPerInterval, theirs: perInterval },
        { figure: `API requests to sync ${String(o.count)} (apiserver_request_total, the bench's own taken out)`, unit: 'requests', ours: ours.syncApiRequests, theirs: api },
      ],
    };
  } finally {
    await stopProcess(record);
    await bench.core.deleteNamespace({ name: ns }).catch(() => undefined);
  }
}

async function readings(pid: number, samples: number): Promise<number[]> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(rssMiB(pid));
    await sleep(1000);
  }
  return values;
}

const fmt = (value: number | undefined, unit: PeerFigure['unit']): string => {
  if (value === undefined || Number.isNaN(value)) return 'not measured';
  if (unit === 'MiB') return `${value.toFixed(1)} MiB`;
  if (unit === 's') return `${value.toFixed(1)} s`;
  return value.toFixed(unit === 'reads' ? 1 : 0);
};

/** The peers table: Figure | secret-binder | peer | ours ÷ theirs. */
export function peersMarkdown(results: readonly PeerResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`| Figure | secret-binder | ${r.peer} | ratio (ours ÷ theirs) |`, '|---|---|---|---|');
    if (r.error !== undefined) out.push(`| every figure | – | not run: ${r.error.replace(/\|/g, '\\|').replace(/\n/g, ' ')} | – |`);
    for (const f of r.figures) {
      const ratio = f.ours === undefined || f.theirs === undefined || f.theirs === 0 ? '–' : (f.ours / f.theirs).toFixed(2);
      out.push(`| ${f.figure} | ${fmt(f.ours, f.unit)} | ${fmt(f.theirs, f.unit)}${f.note === undefined ? '' : ` (${f.note})`} | ${ratio} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/**
 * The Secrets Store CSI driver + HashiCorp's Vault provider: backend reads per rotation poll at
 * 1,000 pods. The Go module proxy serves the driver but no version of the provider (ADR 0270), so
 * the row quotes the proxy's answer, asked again on every run.
 */
export function csiDriverPeer(ours: OursForPeers): PeerResult {
  const peer = 'Secrets Store CSI driver v1.5.4 + Vault provider';
  let answer: string;
  try {
    answer = execFileSync('bash', [join(process.cwd(), 'test/harness/install/peers.sh'), 'csi-check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    // Both served: running them is not part of the tier yet (ADR 0270).
    return { peer, figures: [{ figure: 'Backend reads per rotation poll, 1,000 pods', unit: 'reads', ours: ours.readsPerInterval, theirs: undefined, note: `modules served (${answer.trim().replace(/\n/g, '; ')}), but the tier does not run them yet (ADR 0270)` }] };
  } catch (error) {
    answer = (error as { stdout?: string }).stdout ?? String(error);
  }
  return { peer, figures: [{ figure: 'Backend reads per rotation poll, 1,000 pods', unit: 'reads', ours: ours.readsPerInterval, theirs: undefined, note: `cannot be built here: ${answer.trim().replace(/\s+/g, ' ')} (ADR 0270)` }] };
}
