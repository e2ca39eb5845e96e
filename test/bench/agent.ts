/**
 * `npm run bench -- --tier agent [--pods N]` (run it under `flock /tmp/sb-real-node.lock`): the
 * agent rows of issue 18 on the real node (ADR 0250) — the sidecar agent's memory in a real pod
 * (RSS, its own anonymous memory, the container cgroup's `memory.current`) and the pod start
 * latency the init agent adds (median of N pods with it against N without; default 20). Starts a
 * world with OpenBao (or reuses SECRET_BINDER_WORLD) and the agent world of the e2e suite. Not a
 * test: it prints figures and asserts nothing.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { agentPodTemplate, agentProcesses, startAgentWorld, type AgentWorld } from '../e2e/agent-world.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { down, isWorldAlive, up } from '../harness/world.ts';
import { readWorldState, worldEnvVar, worldStatePath, type WorldState } from '../harness/world-state.ts';

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
};
const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates a pod and waits until it is Ready: ms from the create call. */
async function startLatency(w: AgentWorld, name: string, app: string, binding: string, inject: boolean): Promise<number> {
  const template = agentPodTemplate(app, binding, 'exec sleep 3600', inject);
  const t0 = performance.now();
  await w.core.createNamespacedPod({ namespace: w.appNs, body: { metadata: { name, labels: template.metadata.labels ?? {}, annotations: template.metadata.annotations ?? {} }, spec: template.spec } });
  for (;;) {
    const pod = await w.core.readNamespacedPod({ namespace: w.appNs, name });
    if (pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true) {
      const ms = performance.now() - t0;
      await w.core.deleteNamespacedPod({ namespace: w.appNs, name, gracePeriodSeconds: 0 });
      return ms;
    }
    if (performance.now() - t0 > 120_000) throw new Error(`pod ${name} not Ready in 120 s`);
    await sleep(50);
  }
}

export async function runAgentBench(argv: readonly string[]): Promise<string> {
  const { values } = parseArgs({ args: [...argv], strict: false, options: { pods: { type: 'string', default: '20' } } });
  const pods = Number(values.pods);
  const log = (line: string): void => { process.stderr.write(`[agent] ${line}\n`); };
  let world: WorldState | undefined;
  const named = process.env[worldEnvVar];
  if (named !== undefined && named !== '' && (await isWorldAlive(readWorldState(named)))) world = readWorldState(named);
  const own = world === undefined;
  if (world === undefined) {
    const dir = join(tmpdir(), 'secret-binder-worlds', `bench-agent-${new Date().toISOString().replace(/[:.]/g, '-')}-${String(process.pid)}`);
    log(`starting a world in ${dir}`);
    world = await up({ dir, backends: ['openbao'], maxLifetimeSeconds: 3600 });
    process.env[worldEnvVar] = worldStatePath(world.dir);
  }
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const suffix = randomBytes(3).toString('hex');
  const w = await startAgentWorld(world, { suffix, refreshSeconds: 30, startTimeoutSeconds: 60, log });
  try {
    const key = `bench-agent-${suffix}/db`;
    await writeKvSecret(bao, key, { password: randomBytes(12).toString('hex') });
    await Promise.all([w.createBinding('side', 'side', 'Refresh', key), w.createBinding('init', 'init', 'None', key)]);

    // The sidecar in real pods, after a few long polls.
    await w.apps.createNamespacedDeployment({ namespace: w.appNs, body: { metadata: { name: 'side' }, spec: { replicas: 3, selector: { matchLabels: { app: 'side' } }, template: agentPodTemplate('side', 'side', 'exec sleep 3600') } } });
    await w.runningPods('app=side', 3);
    await sleep(15_000);
    const agents = agentProcesses();
    log(`${String(agents.length)} sidecar agents: ${agents.map((a) => `pid ${String(a.pid)} rss ${mib(a.rssKib)}`).join(', ')}`);
    const cgroups = agents.map((a) => a.cgroupBytes).filter((b): b is number => b !== undefined);

    // Start latency: agent and plain pods alternately, one at a time.
    const withAgent: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < pods; i++) {
      without.push(await startLatency(w, `plain-${String(i)}`, 'plain', 'init', false));
      withAgent.push(await startLatency(w, `init-${String(i)}`, 'init', 'init', true));
    }
    const load = loadavg().map((l) => l.toFixed(2)).join(' ');
    const rows = [
      `| sidecar agent memory (${String(agents.length)} pods, Refresh, after 15 s) | RSS median ${mib(median(agents.map((a) => a.rssKib)))}, own (RssAnon) ${mib(median(agents.map((a) => a.anonKib)))}, container memory.current ${cgroups.length === 0 ? 'n/a' : mib(median(cgroups) / 1024)} | RSS ≤ 48 MiB: ${median(agents.map((a) => a.rssKib)) <= 48 * 1024 ? 'pass' : 'FAIL'}; request 48Mi ≤ 64Mi | load ${load} |`,
      `| pod start → Ready, init agent (median of ${String(pods)}) | ${median(withAgent).toFixed(0)} ms with the agent, ${median(without).toFixed(0)} ms without: **+${(median(withAgent) - median(without)).toFixed(0)} ms** | — | load ${load} |`,
    ];
    return `| scenario | measured | target | machine |\n|---|---|---|---|\n${rows.join('\n')}\n`;
  } finally {
    await w.stop();
    if (own) await down(world);
  }
}
