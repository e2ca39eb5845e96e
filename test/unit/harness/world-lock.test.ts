import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { processIdentity, startProcess, stopProcess, type ProcessRecord } from '../../harness/process.ts';
import { lockWorldDir, WorldDirBusyError, worldLockName } from '../../harness/world-lock.ts';
import { worldStatePath } from '../../harness/world-state.ts';
import { up } from '../../harness/world.ts';

/**
 * Two runs on one machine never share or replace each other's world directory (ADR 0168): the
 * directory's lock names a live owner, or its world.json names a live process, and `up` refuses.
 */

const root = mkdtempSync(join(tmpdir(), 'sb-world-lock-'));
const started: ProcessRecord[] = [];
let n = 0;
const freshDir = (): string => join(root, `world-${String(++n)}`);

afterAll(async () => {
  for (const record of started) await stopProcess(record, 1000);
  rmSync(root, { recursive: true, force: true });
});

describe('world directory lock', () => {
  it('is exclusive while its owner lives, and free again once released', () => {
    const dir = freshDir();
    const lock = lockWorldDir(dir);
    const owner = JSON.parse(readFileSync(join(dir, worldLockName), 'utf8')) as { pid: number; startTime: string };
    expect(owner.pid).toBe(process.pid);
    expect(owner.startTime).toBe(processIdentity(process.pid)?.startTime);

    expect(() => lockWorldDir(dir)).toThrow(WorldDirBusyError);
    expect(() => lockWorldDir(dir)).toThrow(new RegExp(`another harness run is starting a world in ${dir} \\(pid ${String(process.pid)}: `));
    lock.release();
    expect(existsSync(join(dir, worldLockName))).toBe(false);
    lockWorldDir(dir).release();
  });

  it('takes over a stale lock: its owner is gone, or its pid is another process now', () => {
    const self = processIdentity(process.pid);
    if (self === undefined) throw new Error('cannot read /proc');
    for (const stale of [
      // Above any pid_max: no such process.
      { pid: 2 ** 23, startTime: '1', commandLine: ['node', 'test/harness/cli.ts', 'up'] },
      // This very process, but not started then: the pid was reused.
      { pid: process.pid, startTime: String(Number(self.startTime) + 7), commandLine: self.commandLine },
    ]) {
      const dir = freshDir();
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, worldLockName), JSON.stringify(stale));
      const lock = lockWorldDir(dir);
      expect(JSON.parse(readFileSync(join(dir, worldLockName), 'utf8'))).toEqual({ pid: process.pid, ...self });
      lock.release();
    }
  });

  it('up() refuses a directory whose world still runs, starting nothing and leaving its files alone', async () => {
    const dir = freshDir();
    mkdirSync(dir, { recursive: true });
    const server = startProcess({ name: 'etcd', command: 'sleep', args: ['300'], logDir: dir, maxLifetimeSeconds: 600 });
    started.push(server);
    const world = JSON.stringify({ dir, logDir: join(dir, 'logs'), processes: [server] });
    writeFileSync(worldStatePath(dir), world);

    await expect(up({ dir, backends: [] })).rejects.toThrow(WorldDirBusyError);
    await expect(up({ dir, backends: [] })).rejects.toThrow(`a world is running in ${dir} (etcd pid ${String(server.pid)})`);
    expect(readFileSync(worldStatePath(dir), 'utf8')).toBe(world);
    expect(existsSync(join(dir, 'logs'))).toBe(false);
    expect(existsSync(join(dir, worldLockName))).toBe(false);
  });

  it('`harness up` refuses, with a clear message and exit code 1, while another run holds its directory', async () => {
    const runtime = freshDir();
    const lock = lockWorldDir(join(runtime, 'secret-binder-harness'));
    try {
      const cli = promisify(execFile)(process.execPath, ['test/harness/cli.ts', 'up', '--backends=openbao'], {
        env: { ...process.env, XDG_RUNTIME_DIR: runtime },
      });
      await expect(cli).rejects.toMatchObject({
        code: 1,
        stderr: expect.stringContaining(`not starting a world: another harness run is starting a world in ${join(runtime, 'secret-binder-harness')} (pid ${String(process.pid)}: `),
      });
    } finally {
      lock.release();
    }
  }, 60_000);
});
