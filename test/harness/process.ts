import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
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
  /** How to tell the server is ready; recorded so a restart can wait for it the same way. */
  readonly readiness?: Readiness;
}

/**
 * A readiness probe as plain data (it is stored in world.json): an HTTP(S) GET answered with one
 * of `okStatuses` (default 200), or a TCP port accepting connections.
 */
export type Readiness =
  | {
      readonly kind: 'http';
      readonly url: string;
      readonly okStatuses?: readonly number[];
      /** For https: CA file verifying the server, and an optional client certificate. */
      readonly tls?: { readonly caPath: string; readonly certPath?: string; readonly keyPath?: string };
    }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** What is recorded of a started server, so another process (`harness down`) can stop it. */
export interface ProcessRecord {
  readonly name: string;
  /** PID of the process group leader (the `timeout` wrapper); the server is in its group. */
  readonly pid: number;
  /**
   * Who `pid` was when it was recorded: its start time (field 22 of /proc/<pid>/stat, clock ticks
   * since boot) and its command line. A pid is only signalled while both still match, so a pid
   * the kernel has since given to another process is never signalled (ADR 0167). A record
   * without them (written before they existed) is never signalled.
   */
  readonly identity?: ProcessIdentity;
  readonly logPath: string;
  /** How it was started, so it can be started again identically (same args, ports, data). */
  readonly spec?: ProcessSpec;
}

/** A process as the kernel knows it: start time since boot and command line. */
export interface ProcessIdentity {
  /** Field 22 of /proc/<pid>/stat (`starttime`), in clock ticks since boot, as text. */
  readonly startTime: string;
  /** /proc/<pid>/cmdline, split at its NUL bytes. */
  readonly commandLine: readonly string[];
}

/** The identity of `pid` now, or undefined if there is no such process (or it is a zombie). */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  let stat: string;
  let cmdline: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) S ppid ...": comm may contain spaces and parentheses, so fields are counted from
  // the last ')'. After it come field 3 (state) onwards.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[22 - 3];
  if (state === undefined || state === 'Z' || startTime === undefined) return undefined;
  return { startTime, commandLine: cmdline.split('\0').filter((arg, i, all) => i < all.length - 1 || arg !== '') };
}

function sameIdentity(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.startTime === b.startTime && a.commandLine.length === b.commandLine.length && a.commandLine.every((arg, i) => arg === b.commandLine[i]);
}

/**
 * True while the recorded process is still the one that was started: same pid, same start time,
 * same command line. False for a pid that is gone, a zombie, or a pid reused by another process.
 */
export function isOurProcess(record: Pick<ProcessRecord, 'pid' | 'identity'>): boolean {
  if (record.identity === undefined) return false;
  const now = processIdentity(record.pid);
  return now !== undefined && sameIdentity(now, record.identity);
}

/**
 * Sends `signal` to the recorded process group, only after checking that its leader is still the
 * recorded process. Returns false (and signals nothing) when it is not.
 */
export function signalProcess(record: Pick<ProcessRecord, 'pid' | 'identity'>, signal: NodeJS.Signals): boolean {
  if (!isOurProcess(record)) return false;
  try {
    process.kill(-record.pid, signal);
    return true;
  } catch {
    // Gone between the check and the signal.
    return false;
  }
}

/**
 * Starts a server in its own process group, detached, stdout+stderr to its log file. The caller
 * records the returned record and waits for readiness itself.
 */
export function startProcess(spec: ProcessSpec): ProcessRecord {
  const logPath = join(spec.logDir, `${spec.name}.log`);
  // The server writes to its log file itself: a pipe through this process would break (SIGPIPE)
  // as soon as this process exits, which a CLI `up` does.
  const log = openSync(logPath, 'a');
  const lifetime = String(spec.maxLifetimeSeconds ?? 3 * 3600);
  let child;
  try {
    child = spawn('timeout', ['--kill-after=10', lifetime, spec.command, ...spec.args], {
      cwd: spec.cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...spec.env },
      detached: true,
      stdio: ['ignore', log, log],
    });
  } finally {
    closeSync(log);
  }
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
  // spawn() returns after the child's exec (libuv waits for it), so this is `timeout`'s own
  // command line; its start time is the fork's.
  const identity = processIdentity(child.pid);
  if (identity === undefined) throw new Error(`${spec.name} (${spec.command}) exited at once; see ${logPath}`);
  return { name: spec.name, pid: child.pid, identity, logPath, spec };
}

/**
 * True while the process exists and has not exited. A zombie (exited, not yet reaped: the parent
 * of a server started by an earlier CLI run is init, which may reap only now and then) counts as
 * gone. Given a record, also false once the pid belongs to another process ({@link isOurProcess}).
 */
export function isAlive(target: number | Pick<ProcessRecord, 'pid' | 'identity'>): boolean {
  if (typeof target !== 'number') return isOurProcess(target);
  return processIdentity(target) !== undefined;
}

/**
 * Stops the process group: SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. A
 * record whose pid is no longer the recorded process is not signalled at all.
 */
export async function stopProcess(record: ProcessRecord, graceMs = 10_000): Promise<void> {
  if (!signalProcess(record, 'SIGTERM')) return;
  const deadline = Date.now() + graceMs;
  while (isAlive(record) && Date.now() < deadline) await sleep(50);
  signalProcess(record, 'SIGKILL');
  while (isAlive(record)) await sleep(20);
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
    if (options.record !== undefined && !isAlive(options.record)) {
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

/** One readiness check: true when the server answers as `readiness` expects. */
export async function probeReadiness(readiness: Readiness, timeoutMs = 2_000): Promise<boolean> {
  if (readiness.kind === 'tcp') {
    return new Promise((resolve) => {
      const socket = connect({ host: readiness.host, port: readiness.port, timeout: timeoutMs });
      const done = (ok: boolean): void => {
        socket.destroy();
        resolve(ok);
      };
      socket.once('connect', () => {
        done(true);
      });
      socket.once('error', () => {
        done(false);
      });
      socket.once('timeout', () => {
        done(false);
      });
    });
  }
  const url = new URL(readiness.url);
  const tls = readiness.tls;
  const options = {
    method: 'GET',
    timeout: timeoutMs,
    ...(tls === undefined
      ? {}
      : {
          ca: readFileSync(tls.caPath),
          ...(tls.certPath === undefined ? {} : { cert: readFileSync(tls.certPath) }),
          ...(tls.keyPath === undefined ? {} : { key: readFileSync(tls.keyPath) }),
        }),
  };
  const ok = readiness.okStatuses ?? [200];
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, options, (res) => {
      res.resume();
      resolve(ok.includes(res.statusCode ?? 0));
    });
    req.once('timeout', () => {
      req.destroy(new Error(`timeout after ${timeoutMs} ms`));
    });
    req.once('error', reject);
    req.end();
  });
}

/**
 * Waits until a started server passes its recorded readiness probe. If it exits or is not ready in
 * time, it is stopped (a server that never became ready is of no use, and nobody else may know its
 * pid yet) and the error, with its log tail, propagates.
 */
export async function waitReady(record: ProcessRecord, timeoutMs: number): Promise<void> {
  const readiness = record.spec?.readiness;
  if (readiness === undefined) throw new Error(`${record.name}: no readiness probe recorded`);
  try {
    await waitFor(`${record.name} ready`, () => probeReadiness(readiness), { timeoutMs, record });
  } catch (error) {
    await stopProcess(record);
    throw error;
  }
}
