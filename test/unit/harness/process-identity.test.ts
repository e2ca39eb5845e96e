import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive, isOurProcess, processIdentity, signalProcess, startProcess, stopProcess, type ProcessRecord } from '../../harness/process.ts';

/**
 * A recorded pid is signalled only while it is still the recorded process (ADR 0167): a record
 * whose start time or command line differs from the live process's is treated as gone.
 */

const logDir = mkdtempSync(join(tmpdir(), 'sb-process-identity-'));
const started: ProcessRecord[] = [];

afterAll(async () => {
  for (const record of started) await stopProcess(record, 1000);
  rmSync(logDir, { recursive: true, force: true });
});

function sleeper(name: string): ProcessRecord {
  const record = startProcess({ name, command: 'sleep', args: ['300'], logDir, maxLifetimeSeconds: 600 });
  started.push(record);
  return record;
}

describe('process identity', () => {
  it('records the start time (field 22 of /proc/<pid>/stat) and the command line of what it started', () => {
    const record = sleeper('recorded');
    expect(record.identity?.startTime).toMatch(/^\d+$/);
    expect(record.identity?.commandLine).toEqual(['timeout', '--kill-after=10', '600', 'sleep', '300']);
    expect(processIdentity(record.pid)).toEqual(record.identity);
    expect(isOurProcess(record)).toBe(true);
  });

  it('does not signal a recorded pid whose start time differs (the pid was reused)', async () => {
    const record = sleeper('reused-start-time');
    const identity = record.identity;
    if (identity === undefined) throw new Error('no identity recorded');
    const stale: ProcessRecord = { ...record, identity: { ...identity, startTime: String(Number(identity.startTime) - 1) } };

    expect(isAlive(stale)).toBe(false);
    expect(signalProcess(stale, 'SIGTERM')).toBe(false);
    await stopProcess(stale, 100);
    // The process that owns the pid now was left alone.
    expect(isAlive(record)).toBe(true);
    expect(processIdentity(record.pid)).toEqual(identity);

    await stopProcess(record, 2000);
    expect(isAlive(record)).toBe(false);
    expect(processIdentity(record.pid)).toBeUndefined();
  });

  it('does not signal a recorded pid whose command line differs', async () => {
    const record = sleeper('reused-command-line');
    const identity = record.identity;
    if (identity === undefined) throw new Error('no identity recorded');
    const other: ProcessRecord = { ...record, identity: { ...identity, commandLine: ['kube-apiserver', '--secure-port=6443'] } };
    await stopProcess(other, 100);
    expect(isAlive(record)).toBe(true);
  });

  it('never signals a record without an identity (written before identities were recorded)', async () => {
    const record = sleeper('no-identity');
    const legacy: ProcessRecord = { name: record.name, pid: record.pid, logPath: record.logPath };
    expect(isAlive(legacy)).toBe(false);
    await stopProcess(legacy, 100);
    expect(isAlive(record)).toBe(true);
    // A bare pid still answers "does it run".
    expect(isAlive(record.pid)).toBe(true);
  });
});
