/**
 * `npm run bench -- cli`: the kubectl plugin's figures of issue #19 against a world of its own
 * (the real API server): `explain` latency with 5,000 SecretBindings in the pod's namespace
 * (target ≤ 1 s), and `audit sprawl` over 10,000 pods in the cluster and in a manifest file
 * (target ≤ 10 s). Each figure is the wall time of the spawned process, as a user sees it (Node
 * start-up and the client library's load included). `npm run bench -- cli explain` (or `sprawl`)
 * runs one part. Not a test: nothing here asserts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { installCrds } from '../harness/crds.ts';
import { adminKubeConfig, down, up } from '../harness/world.ts';

const bindings = 5000;
const pods = 10_000;
const runs = 5;

async function inBatches(count: number, parallel: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) await task(next++);
  }));
}

function timeCli(args: readonly string[], kubeconfig: string): { ms: number[]; code: number | null } {
  const ms: number[] = [];
  let code: number | null = 0;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const result = spawnSync(process.execPath, [join(process.cwd(), 'src', 'cli', 'main.ts'), ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', KUBECONFIG: kubeconfig }, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
    ms.push(performance.now() - t);
    code = result.status;
    if (result.status !== 0 && result.status !== 5) throw new Error(`kubectl-secretbinder ${args.join(' ')}: exit ${String(result.status)}: ${result.stderr}`);
  }
  return { ms: ms.sort((a, b) => a - b), code };
}

const median = (sorted: readonly number[]): number => sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;

function podBody(i: number): object {
  return {
    metadata: { name: `p${String(i)}`, labels: { app: `a${String(i % 50)}` } },
    spec: {
      containers: [{ name: 'app', image: 'busybox', env: [{ name: 'LOG_LEVEL', value: 'info' }, ...(i % 10 === 0 ? [{ name: 'DB_PASSWORD', value: `bench-literal-${String(i)}` }] : [])] }],
    },
  };
}

/** `parts`: `explain`, `sprawl` or both (default). */
export async function runCliBench(parts: readonly string[] = []): Promise<void> {
  const want = (part: string): boolean => parts.length === 0 || parts.includes(part);
  const state = await up({ backends: [], maxLifetimeSeconds: 3600, log: (line) => process.stderr.write(`${line}\n`) });
  try {
    const kc = adminKubeConfig(state.kube);
    await installCrds(kc);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    for (const name of ['explain-bench', 'sprawl-bench']) await core.createNamespace({ body: { metadata: { name } } });

    process.stderr.write(`creating ${String(want('explain') ? bindings : 1)} SecretBindings…\n`);
    await inBatches(want('explain') ? bindings : 1, 16, (i) =>
      custom.createNamespacedCustomObject({
        group: 'secretbinder.dev', version: 'v1alpha1', plural: 'secretbindings', namespace: 'explain-bench',
        body: { apiVersion: 'secretbinder.dev/v1alpha1', kind: 'SecretBinding', metadata: { name: `b${String(i)}` }, spec: { backendRef: { name: 'vault' }, podSelector: { matchLabels: { app: `a${String(i)}` } }, containers: ['app'], files: [{ path: 'password', key: `apps/a${String(i)}/db`, property: 'password' }] } },
      }),
    );
    await core.createNamespacedPod({
      namespace: 'explain-bench',
      body: { metadata: { name: 'web', labels: { app: 'a0' } }, spec: { containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 's', mountPath: '/s' }] }], volumes: [{ name: 's', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'b0' } } }] } },
    });
    process.stderr.write(`creating ${String(want('sprawl') ? pods : 0)} pods…\n`);
    await inBatches(want('sprawl') ? pods : 0, 16, (i) => core.createNamespacedPod({ namespace: 'sprawl-bench', body: podBody(i) }));
    const dir = mkdtempSync(join(tmpdir(), 'sb-cli-bench-'));
    const manifest = join(dir, 'pods.yaml');
    writeFileSync(manifest, Array.from({ length: want('sprawl') ? pods : 0 }, (_, i) => stringify({ apiVersion: 'v1', kind: 'Pod', ...podBody(i) })).join('---\n'));

    const skipped = { ms: [Number.NaN] };
    const explain = want('explain') ? timeCli(['explain', 'pod/web', '-n', 'explain-bench', '-o', 'json'], state.kube.kubeconfigPath) : skipped;
    const sprawlCluster = want('sprawl') ? timeCli(['audit', 'sprawl', '-n', 'sprawl-bench', '-o', 'json'], state.kube.kubeconfigPath) : skipped;
    const sprawlFile = want('sprawl') ? timeCli(['audit', 'sprawl', '-f', manifest, '-o', 'sarif'], state.kube.kubeconfigPath) : skipped;
    const help = timeCli(['--help'], state.kube.kubeconfigPath);
    const row = (name: string, r: { ms: number[] }, target: string): string =>
      `| ${name} | ${(median(r.ms) / 1000).toFixed(2)} s | ${((r.ms.at(-1) ?? Number.NaN) / 1000).toFixed(2)} s | ${target} |\n`;
    process.stdout.write(`\nkubectl-secretbinder bench (${String(runs)} runs each, wall time of the process; real API server)\n\n`);
    process.stdout.write('| command | median | max | target |\n|---|---|---|---|\n');
    process.stdout.write(row(`explain pod/web, ${String(bindings)} bindings in the namespace`, explain, '≤ 1 s'));
    process.stdout.write(row(`audit sprawl, ${String(pods)} pods in the cluster`, sprawlCluster, '≤ 10 s'));
    process.stdout.write(row(`audit sprawl -f, ${String(pods)} pods in one file, SARIF`, sprawlFile, '≤ 10 s'));
    process.stdout.write(row('--help (start-up alone)', help, '-'));
  } finally {
    await down(state);
  }
}
