import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive } from './process.ts';
import { tearDownWorldNetwork } from './world-network.ts';
import { readWorldState, worldEnvVar, worldStatePath } from './world-state.ts';
import type { WorldState } from './world-state.ts';
import { allBackends, isWorldAlive, up, WorldStartError } from './world.ts';
import type { BackendName } from './world.ts';

/**
 * Jest's global setup for the integration project: reuses the world named by SECRET_BINDER_WORLD
 * when it is alive (`npm run harness -- up`), otherwise starts one for this run. The test workers
 * inherit SECRET_BINDER_WORLD; the teardown stops only a world this setup started (the path is in
 * SECRET_BINDER_WORLD_STARTED_BY_JEST).
 *
 * SECRET_BINDER_WORLD_BACKENDS=openbao,moto limits the backends started (default: all).
 */

export const startedByJestVar = 'SECRET_BINDER_WORLD_STARTED_BY_JEST';

/** Worlds of earlier runs kept for their logs (the newest few; older ones are removed). */
const keepWorlds = 3;

const worldsRoot = join(tmpdir(), 'secret-binder-worlds');

function backendsFromEnv(): readonly BackendName[] {
  const value = process.env.SECRET_BINDER_WORLD_BACKENDS;
  if (value === undefined) return allBackends;
  return value
    .split(',')
    .map((n) => n.trim())
    .filter((n): n is BackendName => (allBackends as readonly string[]).includes(n));
}

async function reusable(path: string): Promise<WorldState | undefined> {
  if (!existsSync(path)) return undefined;
  const state = readWorldState(path);
  return (await isWorldAlive(state)) ? state : undefined;
}

/**
 * Removes the directories of dead worlds from earlier runs, keeping the newest `keepWorlds`. A
 * world with a live process (a concurrent run) or still starting (no world.json yet, recent) stays.
 */
function pruneOldWorlds(): void {
  if (!existsSync(worldsRoot)) return;
  const dirs = readdirSync(worldsRoot).sort().reverse();
  for (const name of dirs.slice(keepWorlds)) {
    const dir = join(worldsRoot, name);
    const statePath = worldStatePath(dir);
    if (existsSync(statePath)) {
      if (readWorldState(statePath).processes.some((r) => isAlive(r))) continue;
    } else if (Date.now() - statSync(dir).mtimeMs < 3_600_000) {
      continue;
    }
    // A world killed before its `down` leaves its sink interface and egress guard (ADR 0180).
    tearDownWorldNetwork(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function globalSetup(): Promise<void> {
  const named = process.env[worldEnvVar];
  if (named !== undefined && named !== '') {
    const state = await reusable(named);
    if (state !== undefined) {
      console.error(`\n[secret-binder] reusing the world in ${state.dir} (logs: ${state.logDir})`);
      return;
    }
    console.error(`\n[secret-binder] ${worldEnvVar}=${named} is not a running world; starting a new one`);
  }
  pruneOldWorlds();
  mkdirSync(worldsRoot, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(worldsRoot, `${stamp}-${process.pid}`);
  const t0 = Date.now();
  try {
    // Two hours: longer than any CI run, so a killed jest leaves nothing running for long.
    const state = await up({ dir, backends: backendsFromEnv(), maxLifetimeSeconds: 2 * 3600 });
    process.env[worldEnvVar] = worldStatePath(state.dir);
    process.env[startedByJestVar] = worldStatePath(state.dir);
    console.error(`\n[secret-binder] world up in ${((Date.now() - t0) / 1000).toFixed(1)} s; logs: ${state.logDir}`);
    if (state.azureKeyVault !== undefined) {
      const server = state.azureKeyVault.kind === 'lowkey' ? 'Lowkey Vault' : 'the Key Vault double';
      console.error(`[secret-binder] Azure Key Vault server: ${server} (${state.azureKeyVault.reason})`);
    }
  } catch (error) {
    // The error carries the log tails of every server that had started.
    const logDir = error instanceof WorldStartError ? error.logDir : join(dir, 'logs');
    console.error(`\n[secret-binder] the test world failed to start; logs: ${logDir}\n${error instanceof Error ? error.message : String(error)}`);
    throw error;
  }
}
