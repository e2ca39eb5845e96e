import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaryPaths } from './control-plane.ts';
import { busyboxImage, realNodeTaint, startRealNode } from './node/real-node.ts';
import { lockWorldDir, worldLockName, WorldDirBusyError, type WorldDirLock } from './world-lock.ts';
import { readWorldState, worldEnvVar, worldStatePath } from './world-state.ts';
import type { WorldState } from './world-state.ts';
import { allBackends, down, up, worldStatus } from './world.ts';
import type { BackendName } from './world.ts';

/**
 * `npm run harness -- up | down | status | env`: one long-lived test world in a fixed place, for
 * working by hand (kubectl, the operator run from a shell) and for test runs that reuse it through
 * SECRET_BINDER_WORLD.
 */

const usage = `usage: npm run harness -- <command>
  up [--backends=openbao,moto,azureKeyVault] start the world (all backends by default)
     [--node]                                 and a real node: containerd + kubelet + scheduler (root; ADR 0140)
  down                                        stop every recorded process (logs stay)
  status                                      what runs
  env                                         shell exports: eval "$(npm run -s harness -- env)"`;

const home = join(process.env.XDG_RUNTIME_DIR ?? tmpdir(), 'secret-binder-harness');
const statePath = worldStatePath(home);

function readState(): WorldState | undefined {
  return existsSync(statePath) ? readWorldState(statePath) : undefined;
}

function parseBackends(args: readonly string[]): readonly BackendName[] {
  const flag = args.find((a) => a.startsWith('--backends='));
  if (flag === undefined) return allBackends;
  const names = flag.slice('--backends='.length).split(',').filter((n) => n !== '');
  for (const name of names) {
    if (!(allBackends as readonly string[]).includes(name)) throw new Error(`unknown backend ${name} (known: ${allBackends.join(', ')})`);
  }
  return names as BackendName[];
}

function envLines(state: WorldState): string[] {
  const lines = [
    `export ${worldEnvVar}=${worldStatePath(state.dir)}`,
    `export KUBECONFIG=${state.kube.kubeconfigPath}`,
    `export PATH=${binaryPaths().kubernetes}:$PATH  # the kubectl built for this world`,
  ];
  if (state.openbao !== undefined) {
    // The dev server's root token is a fixed test value, not a secret.
    lines.push(`export BAO_ADDR=${state.openbao.address} VAULT_ADDR=${state.openbao.address}`);
    lines.push(`export BAO_TOKEN=${state.openbao.rootToken} VAULT_TOKEN=${state.openbao.rootToken}`);
  }
  if (state.moto !== undefined) {
    lines.push(`export AWS_ENDPOINT_URL=${state.moto.endpoint} AWS_REGION=${state.moto.region}  # moto; credentials in world.json`);
  }
  if (state.azureKeyVault !== undefined) {
    const server = state.azureKeyVault.kind === 'lowkey' ? 'Lowkey Vault' : 'Key Vault double';
    lines.push(`# Azure Key Vault (${server}): ${state.azureKeyVault.vaultUrl} (CA and test identities in ${worldStatePath(state.dir)})`);
  }
  return lines;
}

/** Moves (or, with `to` undefined, removes) everything in `dir` but its lock file. */
function clearWorldDir(dir: string, to: string | undefined): void {
  if (to !== undefined) {
    rmSync(to, { recursive: true, force: true });
    mkdirSync(to, { recursive: true });
  }
  for (const entry of readdirSync(dir)) {
    if (entry === worldLockName) continue;
    if (to === undefined) rmSync(join(dir, entry), { recursive: true, force: true });
    else renameSync(join(dir, entry), join(to, entry));
  }
}

async function commandUp(args: readonly string[]): Promise<number> {
  let lock: WorldDirLock;
  try {
    lock = lockWorldDir(home);
  } catch (error) {
    if (!(error instanceof WorldDirBusyError)) throw error;
    console.error(`not starting a world: ${error.message}`);
    return 1;
  }
  try {
    return await upLocked(args, lock);
  } finally {
    lock.release();
  }
}

async function upLocked(args: readonly string[], lock: WorldDirLock): Promise<number> {
  const existing = readState();
  if (existing !== undefined) {
    const status = await worldStatus(existing);
    if (status.length > 0 && status.every((s) => s.alive && s.ready !== false)) {
      console.log(`a world is already up (${statePath}); \`down\` it first to start a new one\n`);
      console.log(envLines(existing).join('\n'));
      return 0;
    }
    const running = status.filter((s) => s.alive);
    if (running.length > 0) {
      // Never stop or replace a world that still runs in part: it may be in use; its owner decides.
      const stopped = status.filter((s) => !s.alive || s.ready === false).map((s) => s.name);
      console.error(
        `not starting a world: the world in ${home} is partly running (${running.map((s) => `${s.name} pid ${s.pid}`).join(', ')}; ` +
          `not running or not ready: ${stopped.join(', ')}); \`npm run harness -- down\` it first`,
      );
      return 1;
    }
    // Leftovers of a world that died: clean up what it left on the host, keep its logs one generation.
    await down(existing);
    const previous = `${home}.previous`;
    clearWorldDir(home, previous);
    console.error(`a previous world was not running any more; its files are in ${previous}`);
  } else {
    // Files of an `up` that died before writing world.json (its lock was stale, or we would not be here).
    clearWorldDir(home, undefined);
  }
  const t0 = Date.now();
  const state = await up({
    dir: home,
    lock,
    backends: parseBackends(args),
    log: (line) => {
      console.error(line);
    },
  });
  if (args.includes('--node')) {
    const node = await startRealNode(state, { log: (line) => { console.error(line); } });
    console.error(`[node] ${node.name}: kubelet root ${node.kubeletRootDir}; pods must tolerate ${realNodeTaint.key} and use imagePullPolicy Never (image ${busyboxImage})`);
  }
  console.log(`\nworld up in ${((Date.now() - t0) / 1000).toFixed(1)} s; state: ${statePath}; logs: ${state.logDir}`);
  console.log(`kubeconfig: ${state.kube.kubeconfigPath}\n`);
  console.log('use it:');
  console.log(`  eval "$(npm run -s harness -- env)"   # KUBECONFIG, PATH with kubectl, backend addresses`);
  console.log(`  ${join(binaryPaths().kubernetes, 'kubectl')} --kubeconfig ${state.kube.kubeconfigPath} get namespaces`);
  console.log(`  ${worldEnvVar}=${statePath} npm run jest -- --selectProjects integration   # tests reuse this world`);
  console.log('  npm run harness -- down');
  return 0;
}

async function commandDown(): Promise<number> {
  const state = readState();
  if (state === undefined) {
    console.log(`no world recorded at ${statePath}`);
    return 0;
  }
  await down(state);
  console.log(`stopped ${state.processes.map((r) => `${r.name} (${r.pid})`).join(', ')}; logs stay in ${state.logDir}`);
  return 0;
}

async function commandStatus(): Promise<number> {
  const state = readState();
  if (state === undefined) {
    console.log(`no world recorded at ${statePath}`);
    return 1;
  }
  console.log(`world ${state.dir} (apiserver ${state.kube.server})`);
  let allUp = true;
  for (const s of await worldStatus(state)) {
    const what = !s.alive ? 'not running' : s.ready === false ? 'running, NOT ready' : 'running, ready';
    if (!s.alive || s.ready === false) allUp = false;
    console.log(`  ${s.name.padEnd(24)} pid ${String(s.pid).padEnd(8)} ${what}`);
  }
  return allUp ? 0 : 1;
}

function commandEnv(): number {
  const state = readState();
  if (state === undefined) {
    console.error(`no world recorded at ${statePath}: run \`npm run harness -- up\``);
    return 1;
  }
  console.log(envLines(state).join('\n'));
  return 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'up':
      return commandUp(args);
    case 'down':
      return commandDown();
    case 'status':
      return commandStatus();
    case 'env':
      return commandEnv();
    default:
      console.error(usage);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
