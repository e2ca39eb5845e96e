import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { waitForHealthPort } from '../harness/controller-process.ts';
import { installCrds } from '../harness/crds.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { startProcess, stopProcess, type ProcessRecord } from '../harness/process.ts';
import { readWorldState, worldEnvVar, type WorldState } from '../harness/world-state.ts';
import { adminKubeConfig, down, isWorldAlive, up } from '../harness/world.ts';
import { median } from './scale-report.ts';

/**
 * The scale bench's world (ADR 0200): the test world's API server, etcd and OpenBao (started here,
 * or the running one named by SECRET_BINDER_WORLD), bench namespaces with a SecretBackend each on
 * OpenBao, and the controller from compiled JavaScript (`npm run build`, dist/) as its own process,
 * with the chart's default flags and the image's environment.
 */

const root = process.cwd();

export interface BenchWorld {
  readonly world: WorldState;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly namespaces: readonly string[];
  readonly systemNamespace: string;
  /** Stops what was started here (and the world, if started here). */
  close(): Promise<void>;
}

export const benchBackend = 'bench-bao';
const credentials = 'bench-bao-token';

/** Starts (or reuses) the world and creates the bench namespaces with the backends' credentials (no custom object yet). */
export async function startBenchWorld(options: { readonly namespaces: number; readonly log: (line: string) => void }): Promise<BenchWorld> {
  const named = process.env[worldEnvVar];
  let world: WorldState | undefined;
  let ownWorld = false;
  if (named !== undefined && named !== '' && existsSync(named)) {
    const state = readWorldState(named);
    if (await isWorldAlive(state)) world = state;
  }
  if (world === undefined) {
    const dir = join(tmpdir(), 'secret-binder-worlds', `bench-scale-${new Date().toISOString().replace(/[:.]/g, '-')}-${String(process.pid)}`);
    options.log(`starting a world in ${dir}`);
    world = await up({ dir, backends: ['openbao'], maxLifetimeSeconds: 4 * 3600 });
    ownWorld = true;
  }
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const kc = adminKubeConfig(world.kube);
  await installCrds(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const suffix = randomBytes(3).toString('hex');
  const systemNamespace = `bench-sys-${suffix}`;
  const namespaces = Array.from({ length: options.namespaces }, (_, i) => `bench-${suffix}-${String(i)}`);
  for (const name of [systemNamespace, ...namespaces]) await core.createNamespace({ body: { metadata: { name } } });
  await core.createNamespacedServiceAccount({ namespace: systemNamespace, body: { metadata: { name: 'node-plugin' } } });
  for (const ns of namespaces) {
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: credentials }, stringData: { token: bao.rootToken } } });
  }
  const started = world;
  return {
    world, kc, core, custom, namespaces, systemNamespace,
    close: async () => {
      for (const name of [systemNamespace, ...namespaces]) await core.deleteNamespace({ name }).catch(() => undefined);
      if (ownWorld) await down(started);
    },
  };
}

/** One SecretBackend on the world's OpenBao in each bench namespace (token auth from the namespace's Secret). */
export async function createBenchBackends(bench: BenchWorld, refreshSeconds: number): Promise<void> {
  const bao = bench.world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  for (const ns of bench.namespaces) {
    await bench.custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: ns,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: benchBackend },
        spec: { refreshInterval: `${String(refreshSeconds)}s`, vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: credentials, key: 'token' } } } } },
      },
    });
  }
}

/**
 * Writes `count` KV keys `bench/<run>/key-<i>` (two properties each); returns their paths. Each run
 * has its own keys: another run in the same world must not rotate this one's secrets.
 */
export async function writeBenchKeys(world: WorldState, run: string, count: number): Promise<string[]> {
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const key = `bench/${run}/key-${String(i)}`;
    await writeKvSecret(bao, key, { user: `user-${String(i)}`, password: randomBytes(12).toString('hex') });
    keys.push(key);
  }
  return keys;
}

/** `npm run build`: the compiled JavaScript the image runs. */
export function buildDist(): void {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  // The Dockerfile's proto copy: the node plugin loads them next to its module.
  for (const proto of readdirSync(join(root, 'src/delivery/csi')).filter((f) => f.endsWith('.proto'))) {
    copyFileSync(join(root, 'src/delivery/csi', proto), join(root, 'dist/delivery/csi', proto));
  }
}

/**
 * The environment the Dockerfile's final stage sets (`ENV A=x \\ B="y z"`), so the bench runs the
 * controller the way the image does (NODE_ENV, NODE_OPTIONS, the allocator's settings).
 */
export function imageEnv(): Record<string, string> {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const finalStage = text.slice(text.lastIndexOf('\nFROM '));
  const env: Record<string, string> = {};
  for (const match of finalStage.matchAll(/^ENV\s+((?:[^\n]*\\\n)*[^\n]*)/gm)) {
    const body = (match[1] ?? '').replace(/\\\n/g, ' ');
    for (const pair of body.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("([^"]*)"|(\S+))/g)) env[pair[1] as string] = pair[3] ?? pair[4] ?? '';
  }
  return env;
}

export interface ControllerUnderBench {
  readonly identity: string;
  readonly record: ProcessRecord;
  /** The controller's pid (not the `timeout` wrapper's): whose RSS is measured. */
  readonly pid: number;
  healthPort(): Promise<number>;
  /** A metric from /metrics, summed over every series whose labels contain `labels`. */
  metric(name: string, labels?: string): Promise<number>;
  stop(): Promise<void>;
}

/** The controller from dist/main.js with the chart's default flags (broker, webhook, managed TLS, leader election). */
export function startBenchController(bench: BenchWorld, identity: string, leaseName: string): ControllerUnderBench {
  const world = bench.world;
  const ns = bench.systemNamespace;
  const record = startProcess({
    name: `bench-controller-${identity}`,
    command: process.execPath,
    args: [
      join(root, 'dist/main.js'),
      '--kubeconfig', world.kube.kubeconfigPath,
      '--namespace', ns,
      '--identity', identity,
      '--watch-namespaces', bench.namespaces.join(','),
      '--leader-elect', 'true',
      '--lease-name', leaseName,
      '--http-address', '127.0.0.1:0',
      '--hmac-key-secret', 'secret-binder-content-hmac',
      '--log-level', 'info',
      '--broker-address', '127.0.0.1:0',
      '--broker-tls-secret', 'secret-binder-broker-tls',
      '--broker-dns-names', 'localhost',
      '--node-plugin-service-account', `${ns}:node-plugin`,
      '--webhook-address', '127.0.0.1:0',
      '--webhook-tls-secret', 'secret-binder-webhook-tls',
      '--webhook-dns-names', 'localhost',
      '--webhook-configuration-name', `bench-${ns}`,
      // Extra controller flags to compare settings (e.g. `--binding-workers 16`); none by default.
      ...(process.env.SCALE_BENCH_CONTROLLER_ARGS ?? '').split(' ').filter((a) => a !== ''),
    ],
    // The image's ENV; SCALE_BENCH_NODE_OPTIONS replaces its NODE_OPTIONS, to compare runtime flags.
    env: { ...imageEnv(), ...(process.env.SCALE_BENCH_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: process.env.SCALE_BENCH_NODE_OPTIONS }), AWS_EC2_METADATA_DISABLED: 'true' },
    logDir: world.logDir,
    maxLifetimeSeconds: 4 * 3600,
  });
  const healthPort = (): Promise<number> => waitForHealthPort(record, identity, 60_000);
  return {
    identity,
    record,
    pid: nodeChild(record.pid),
    healthPort,
    metric: async (name, labels = '') => {
      const text = await (await fetch(`http://127.0.0.1:${String(await healthPort())}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      return text
        .split('\n')
        .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        .filter((line) => line.includes(labels))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    },
    stop: () => stopProcess(record),
  };
}

/** The node process under the `timeout` wrapper that startProcess puts around every server. */
export function nodeChild(wrapperPid: number): number {
  for (let i = 0; i < 50; i++) {
    try {
      const children = readFileSync(`/proc/${String(wrapperPid)}/task/${String(wrapperPid)}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '');
      if (children[0] !== undefined) return Number(children[0]);
    } catch {
      // Not started yet.
    }
    execFileSync('sleep', ['0.1']);
  }
  return wrapperPid;
}

/** A process's resident set (VmRSS) in MiB; NaN once it has exited. */
export function rssMiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'));
    return match?.[1] === undefined ? Number.NaN : Number(match[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** A process's RSS settled: the median of `samples` readings one second apart, after `settleSeconds`. */
export async function settledRss(pid: number, settleSeconds: number, samples: number): Promise<number> {
  await sleep(settleSeconds * 1000);
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(rssMiB(pid));
    await sleep(1000);
  }
  return median(values);
}

/** Samples a process's RSS every `everyMs` until stopped: the peak and the series. */
export function rssSampler(pid: number, everyMs = 250): { peak(): number; stop(): void; samples(): readonly { t: number; rss: number }[] } {
  const samples: { t: number; rss: number }[] = [];
  const timer = setInterval(() => {
    const rss = rssMiB(pid);
    if (!Number.isNaN(rss)) samples.push({ t: Date.now(), rss });
  }, everyMs);
  return {
    peak: () => samples.reduce((m, s) => Math.max(m, s.rss), 0),
    stop: () => { clearInterval(timer); },
    samples: () => samples,
  };
}

/** Byte size of a file now (0 when absent): where a log window starts. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** JSON lines of a file after byte `from`. */
export function jsonLinesFrom<T>(path: string, from: number): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path)
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

/** Writes the report's JSON next to where the bench keeps its outputs. */
export function writeReportJson(path: string, value: unknown): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * A full garbage collection in the controller, through its inspector (SIGUSR1 opens it on
 * 127.0.0.1:9229, as `node --inspect` would): so that "what the objects cost" compares live
 * memory, not how much garbage waited for the next major GC. The inspector stays open for the
 * rest of the run; call it before both readings of a comparison.
 */
export async function collectGarbage(pid: number): Promise<void> {
  process.kill(pid, 'SIGUSR1');
  let target: string | undefined;
  for (let i = 0; i < 50 && target === undefined; i++) {
    try {
      const list = (await (await fetch('http://127.0.0.1:9229/json/list', { signal: AbortSignal.timeout(2000) })).json()) as { webSocketDebuggerUrl?: string }[];
      target = list[0]?.webSocketDebuggerUrl;
    } catch {
      await sleep(100);
    }
  }
  if (target === undefined) throw new Error('the controller inspector did not open on 127.0.0.1:9229');
  const socket = new WebSocket(target);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => { socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })); });
    socket.addEventListener('message', (event) => {
      if ((JSON.parse(String(event.data)) as { id?: number }).id === 1) resolve();
    });
    socket.addEventListener('error', () => { reject(new Error('inspector connection failed')); });
  });
  socket.close();
}
