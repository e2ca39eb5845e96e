import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** How to start one server of the test world. */
export interface ProcessSpec {
  /** Short name; also the log file name (`<logDir>/<name>.log`). */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly logDir: string;
  /**
   * Hard limit on the server's life, enforced by coreutils `timeout` around it, so a server
   * outlives neither a crashed test run nor a forgotten `up`. Default: 3 hours.
   */
  readonly maxLifetimeSeconds?: number;
}

/** What is recorded of a started server, so another process (`harness down`) can stop it. */
export interface ProcessRecord {
  readonly name: string;
  /** PID of the process group leader (the `timeout` wrapper); the server is in its group. */
  readonly pid: number;
  readonly logPath: string;
}

/**
 * Starts a server in its own process group, detached, stdout+stderr to its log file. The caller
 * records the returned record and waits for readiness itself.
 */
export function startProcess(spec: ProcessSpec): ProcessRecord {
  const logPath = join(spec.logDir, `${spec.name}.log`);
  const out = createWriteStream(logPath, { flags: 'a' });
  const lifetime = String(spec.maxLifetimeSeconds ?? 3 * 3600);
  const child = spawn('timeout', ['--kill-after=10', lifetime, spec.command, ...spec.args], {
    cwd: spec.cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...spec.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  child.unref();
  // The pipes would keep the parent's event loop alive; a CLI `up` must be able to exit.
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
  return { name: spec.name, pid: child.pid, logPath };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the process group: SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. */
export async function stopProcess(record: ProcessRecord, graceMs = 10_000): Promise<void> {
  const signalGroup = (signal: NodeJS.Signals): void => {
    try {
      process.kill(-record.pid, signal);
    } catch {
      // Already gone.
    }
  };
  signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(record.pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(record.pid)) signalGroup('SIGKILL');
  while (isAlive(record.pid)) await sleep(20);
}

/** The last `lines` lines of a server's log, for failure reports. */
export function tailLog(record: ProcessRecord, lines = 40): string {
  try {
    const text = readFileSync(record.logPath, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `probe` until it returns true, or throws with the server's log tail after `timeoutMs`. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; record?: ProcessRecord },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (options.record !== undefined && !isAlive(options.record.pid)) {
      throw new Error(`${what}: process exited\n${tailLog(options.record)}`);
    }
    try {
      if (await probe()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(options.intervalMs ?? 100);
  }
  const tail = options.record === undefined ? '' : `\n${tailLog(options.record)}`;
  throw new Error(`${what}: not ready after ${options.timeoutMs} ms (${String(lastError)})${tail}`);
}
