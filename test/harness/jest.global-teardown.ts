import { existsSync, rmSync } from 'node:fs';
import { etcdDataDir } from './control-plane.ts';
import { startedByJestVar } from './jest.global-setup.ts';
import { readWorldState } from './world-state.ts';
import { down } from './world.ts';

/**
 * Stops the world the global setup started (never one it reused), whatever the tests' outcome.
 * Logs and certificates stay in the world directory for a failing test's post-mortem (the newest
 * few runs are kept); only etcd's data, which nobody reads afterwards, is removed.
 */
export default async function globalTeardown(): Promise<void> {
  const path = process.env[startedByJestVar];
  if (path === undefined || path === '' || !existsSync(path)) return;
  const state = readWorldState(path);
  await down(state);
  rmSync(etcdDataDir(state.dir), { recursive: true, force: true });
  Reflect.deleteProperty(process.env, startedByJestVar);
  console.error(`[secret-binder] world stopped; its logs stay in ${state.logDir}`);
}
