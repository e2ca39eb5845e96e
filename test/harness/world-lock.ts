import { closeSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, processIdentity, type ProcessIdentity } from './process.ts';
import { readWorldState, worldStatePath } from './world-state.ts';

/**
 * One world per directory (ADR 0168). Whoever starts a world in a directory first takes
 * `<dir>/world.lock`, an exclusively created file naming its owner (pid, start time, command line);
 * once the world runs, its recorded processes hold the directory. A second run finds either and
 * refuses with a {@link WorldDirBusyError}; it never shares, stops or replaces that world.
 */

export const worldLockName = 'world.lock';

interface LockOwner extends ProcessIdentity {
  readonly pid: number;
}

/** The directory holds a world being started or running; nothing in it was touched. */
export class WorldDirBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorldDirBusyError';
  }
}

/** A held lock on a world directory; `release()` removes the lock file if it is still ours. */
export interface WorldDirLock {
  readonly dir: string;
  release(): void;
}

function describe(owner: LockOwner): string {
  return `pid ${owner.pid}: ${owner.commandLine.join(' ')}`;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof owner.pid !== 'number' || typeof owner.startTime !== 'string' || !Array.isArray(owner.commandLine)) return undefined;
    return owner as LockOwner;
  } catch {
    // Unreadable or half written by an owner that died while writing it: nobody's lock.
    return undefined;
  }
}

/**
 * Takes the lock on `dir` (created if missing) for this process, or throws
 * {@link WorldDirBusyError} if a live process holds it. A lock whose owner is gone (or whose pid
 * now belongs to another process) is stale and taken over.
 */
export function lockWorldDir(dir: string): WorldDirLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, worldLockName);
  const self = processIdentity(process.pid);
  if (self === undefined) throw new Error('cannot read this process in /proc');
  const mine: LockOwner = { pid: process.pid, ...self };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = readOwner(path);
      if (owner !== undefined && isAlive({ pid: owner.pid, identity: owner })) {
        throw new WorldDirBusyError(
          `another harness run is starting a world in ${dir} (${describe(owner)}); wait for it, or use another directory`,
        );
      }
      // Stale: move it aside under a name of our own, then try the exclusive create again.
      const moved = `${path}.stale-${process.pid}`;
      try {
        renameSync(path, moved);
      } catch {
        // Someone else moved it first; the next attempt sees their lock.
        continue;
      }
      const movedOwner = readOwner(moved);
      if (movedOwner !== undefined && isAlive({ pid: movedOwner.pid, identity: movedOwner })) {
        // Another run took the stale lock over between our read and our rename: what we moved is
        // its live lock. Put it back (link fails rather than overwrite) and yield.
        try {
          linkSync(moved, path);
        } catch {
          // A third run holds the path now; either way the directory is busy.
        }
        rmSync(moved, { force: true });
        throw new WorldDirBusyError(`another harness run is starting a world in ${dir} (${describe(movedOwner)}); wait for it, or use another directory`);
      }
      rmSync(moved, { force: true });
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(mine));
    } finally {
      closeSync(fd);
    }
    return {
      dir,
      release: () => {
        const owner = readOwner(path);
        if (owner?.pid === mine.pid && owner.startTime === mine.startTime) rmSync(path, { force: true });
      },
    };
  }
  throw new WorldDirBusyError(`could not take ${path}: other runs keep taking it over`);
}

/**
 * Throws {@link WorldDirBusyError} if `dir` holds a world with a recorded process that still runs
 * (and is still that process: pid, start time and command line).
 */
export function assertNoLiveWorld(dir: string): void {
  const statePath = worldStatePath(dir);
  if (!existsSync(statePath)) return;
  let processes;
  try {
    processes = readWorldState(statePath).processes;
  } catch {
    // An unreadable world.json is no running world we could stop anyway.
    return;
  }
  const live = processes.filter((record) => isAlive(record));
  if (live.length > 0) {
    throw new WorldDirBusyError(
      `a world is running in ${dir} (${live.map((r) => `${r.name} pid ${r.pid}`).join(', ')}); stop it first (\`npm run harness -- down\` for the CLI's world) or use another directory`,
    );
  }
}
