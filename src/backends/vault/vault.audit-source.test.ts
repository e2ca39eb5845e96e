import { afterEach, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapturedOutput } from '../../observability/captured-output.ts';
import { createLogger } from '../../observability/logger.ts';
import { realClock } from '../../runtime/clock.ts';
import { VaultAuditSource, type AuditListen } from './vault.audit-source.ts';
import { RecordingSink } from '../notices/recording-sink.test-fixtures.ts';


const secretMarker = 'leaked-value-3f9c';
const change = (key: string): string =>
  JSON.stringify({ type: 'response', request: { operation: 'update', path: `secret/data/${key}`, mount_point: 'secret/', mount_type: 'kv', data: { data: secretMarker } } });

const dirs: string[] = [];
const stops: AbortController[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await new Promise((resolve) => setTimeout(resolve, 20));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function started(options: { listen?: AuditListen; prefixFile?: string; maxLineBytes?: number; maxLinesPerSecond?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-audit-'));
  dirs.push(dir);
  const log = new CapturedOutput();
  const source = new VaultAuditSource({
    listen: options.listen ?? { kind: 'unix', path: join(dir, 'sock', 'audit.sock') },
    prefixFile: options.prefixFile,
    maxLineBytes: options.maxLineBytes ?? 4096,
    maxLinesPerSecond: options.maxLinesPerSecond ?? 10_000,
    maxConnections: 4,
    clock: realClock,
    logger: createLogger({ level: 'debug', component: 'test', stream: log }),
  });
  const sink = new RecordingSink();
  const stop = new AbortController();
  stops.push(stop);
  const running = source.start(sink, stop.signal);
  while (source.address === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
  return { dir, source, sink, stop, running, log, address: source.address };
}

/** Sends `data` over a new connection and waits until the sink saw `expect` more inputs. */
async function send(address: string, data: string | Buffer, sink: RecordingSink, expectSeen: number): Promise<void> {
  const at = address.lastIndexOf(':');
  const socket = address.startsWith('/') ? connect(address) : connect(Number(address.slice(at + 1)), address.slice(0, at));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(data);
  socket.end();
  const deadline = Date.now() + 5000;
  while (sink.seen < expectSeen) {
    if (Date.now() > deadline) throw new Error(`sink saw ${String(sink.seen)} inputs, expected ${String(expectSeen)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('VaultAuditSource', () => {
  it('turns audit lines into notices, in chunks split anywhere', async () => {
    const s = await started();
    const lines = `${change('app/db')}\n${change('app/api')}\r\n`;
    await send(s.address, lines, s.sink, 2);
    expect(s.sink.notices).toEqual([
      { provider: 'vault', scope: 'secret', key: 'app/db' },
      { provider: 'vault', scope: 'secret', key: 'app/api' },
    ]);
    expect(s.sink.ups).toEqual([true]);
  });

  it('listens on an owner-only socket in an owner-only directory, and removes it on stop', async () => {
    const s = await started();
    expect(statSync(s.address).mode & 0o777).toBe(0o600);
    expect(statSync(join(s.dir, 'sock')).mode & 0o777).toBe(0o700);
    s.stop.abort();
    await s.running;
    expect(() => statSync(s.address)).toThrow();
    expect(s.sink.ups).toEqual([true, false]);
  });

  it('refuses a sender of another user (the kernel checks the socket mode)', async () => {
    const s = await started();
    // Root may connect anywhere: the forged sender runs as nobody (the suites run as root).
    expect(process.getuid?.()).toBe(0);
    // A system interpreter: the cached Node lives under /root, which nobody may enter.
    const script = [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX)',
      'try:',
      `    s.connect(${JSON.stringify(s.address)})`,
      'except PermissionError:',
      '    print("EACCES"); sys.exit(3)',
    ].join('\n');
    const forged = spawnSync('/usr/bin/python3', ['-c', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(forged.stdout.trim()).toBe('EACCES');
    expect(forged.status).toBe(3);
    expect(s.sink.seen).toBe(0);
  });

  it('refuses to listen in a directory others may enter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-audit-open-'));
    dirs.push(dir);
    const source = new VaultAuditSource({
      listen: { kind: 'unix', path: join(dir, 'audit.sock') },
      maxLineBytes: 4096, maxLinesPerSecond: 10, maxConnections: 1, clock: realClock,
      logger: createLogger({ level: 'error', component: 'test', stream: new CapturedOutput() }),
    });
    // mkdtemp makes 0700: open it up as a shared directory would be.
    spawnSync('chmod', ['0755', dir]);
    await expect(source.start(new RecordingSink(), new AbortController().signal)).rejects.toThrow(/only its owner may access/);
  });

  it('counts malformed lines, keeps serving, and never logs what it received', async () => {
    const s = await started();
    await send(s.address, `{"type":\n\u0000\u00ff garbage ${secretMarker}\n[1,2]\n${change('app/db')}\n`, s.sink, 4);
    expect(s.sink.rejections).toEqual(['malformed', 'malformed', 'malformed']);
    expect(s.sink.notices).toHaveLength(1);
    expect(await s.log.text()).not.toContain(secretMarker);
  });

  it('discards an oversized line unread up to its end, then goes on', async () => {
    const s = await started({ maxLineBytes: 1024 });
    const huge = Buffer.alloc(64 * 1024, 0x61);
    await send(s.address, Buffer.concat([huge, Buffer.from(`\n${change('app/db')}\n`)]), s.sink, 2);
    expect(s.sink.rejections).toEqual(['oversized']);
    expect(s.sink.notices).toEqual([{ provider: 'vault', scope: 'secret', key: 'app/db' }]);
  });

  it('drops a flood over its line rate unparsed', async () => {
    const s = await started({ maxLinesPerSecond: 50 });
    const flood = Array.from({ length: 1000 }, () => change('app/db')).join('\n') + '\n';
    await send(s.address, flood, s.sink, 1000);
    expect(s.sink.notices.length).toBeLessThan(100);
    expect(s.sink.notices.length).toBeGreaterThanOrEqual(50);
    expect(s.sink.rejections.filter((r) => r === 'rateLimited').length).toBe(1000 - s.sink.notices.length);
  });

  it('on TCP, accepts only lines that start with the shared prefix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-audit-prefix-'));
    dirs.push(dir);
    const prefixFile = join(dir, 'prefix');
    writeFileSync(prefixFile, 'sb-7d1e0c:\n', { mode: 0o600 });
    const s = await started({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, prefixFile });
    await send(s.address, `${change('app/forged')}\nsb-7d1e0d:${change('app/forged')}\nsb-7d1e0c:${change('app/db')}\n`, s.sink, 3);
    expect(s.sink.rejections).toEqual(['unauthenticated', 'unauthenticated']);
    expect(s.sink.notices).toEqual([{ provider: 'vault', scope: 'secret', key: 'app/db' }]);
  });
});
