import { isAlive, probeReadiness, startProcess, stopProcess, waitFor, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import { writeWorldState } from './world-state.ts';
import type { WorldState } from './world-state.ts';
import { configureOpenBaoAuth } from './world.ts';

/**
 * Outages on demand, for tests that need them: stop a server of the world and start it again with
 * exactly the recorded command, arguments, ports and data directory.
 *
 * The world is shared by every test file of a run: a test that stops a server must be the only one
 * using that server meanwhile (run it in its own jest project or serially), and must start it again
 * in a `finally`.
 */

const readyTimeoutMs = 60_000;

function recordNamed(state: WorldState, name: string): ProcessRecord {
  const record = state.processes.find((r) => r.name === name);
  if (record === undefined) {
    throw new Error(`no process named ${name} in this world (${state.processes.map((r) => r.name).join(', ')})`);
  }
  return record;
}

/** True while the named process runs. */
export function isProcessRunning(state: WorldState, name: string): boolean {
  return isAlive(recordNamed(state, name));
}

/** Stops the named process (SIGTERM, then SIGKILL after `graceMs`). The state is unchanged. */
export async function stopProcessNamed(state: WorldState, name: string, graceMs?: number): Promise<void> {
  await stopProcess(recordNamed(state, name), graceMs);
}

/**
 * Starts the named process again from its recorded spec (same args, ports and data), waits until
 * it passes its recorded readiness probe, records its new pid in `<dir>/world.json` and returns the
 * updated state. Throws if it is still running.
 *
 * OpenBao gets its kubernetes auth configuration again (a dev-mode server keeps nothing across a
 * restart; a configured one just gets the same configuration). Anything else a dev-mode server
 * held (KV data a test wrote) is the test's to write again.
 */
export async function startProcessNamed(state: WorldState, name: string): Promise<WorldState> {
  const old = recordNamed(state, name);
  if (isAlive(old)) throw new Error(`${name} is still running (pid ${old.pid}); stop it first`);
  if (old.spec === undefined) throw new Error(`${name} has no recorded spec and cannot be restarted`);
  const record = startProcess(old.spec);
  await waitReady(record, readyTimeoutMs);
  const next: WorldState = { ...state, processes: state.processes.map((r) => (r.name === name ? record : r)) };
  if (name === 'openbao') await configureOpenBaoAuth(next, 4 * 3600);
  writeWorldState(next);
  return next;
}

/** Stops then starts the named process; returns the updated state (also written to world.json). */
export async function restartProcessNamed(state: WorldState, name: string): Promise<WorldState> {
  await stopProcessNamed(state, name);
  return startProcessNamed(state, name);
}

/**
 * Restarts kube-apiserver on the same port with the same flags, certificates and etcd, waits for
 * `/readyz`, and returns the updated state (also written to world.json). Clients keep working
 * after reconnecting; watches see the disconnect.
 */
export async function restartKubeApiserver(state: WorldState): Promise<WorldState> {
  return restartProcessNamed(state, 'kube-apiserver');
}

/**
 * Waits until the named process passes its recorded readiness probe, without stopping it if it
 * does not (e.g. the kube-apiserver while etcd comes back under it).
 */
export async function waitProcessReady(state: WorldState, name: string, timeoutMs = readyTimeoutMs): Promise<void> {
  const record = recordNamed(state, name);
  const readiness = record.spec?.readiness;
  if (readiness === undefined) throw new Error(`${name}: no readiness probe recorded`);
  await waitFor(`${name} ready`, () => probeReadiness(readiness), { timeoutMs, record });
}
