import { timingSafeEqual } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { ChangeNoticeSink, ChangeNoticeSource } from '../change-notice.port.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Clock } from '../../runtime/clock.ts';
import { InputBudget } from '../notices/input-budget.ts';
import { parseAuditLine } from './vault.audit-entry.ts';

/**
 * The OpenBao / Vault change-notice source (ADR 0221): a listener the controller owns, where a
 * `socket` audit device writes its JSON lines —
 *
 *     bao audit enable -path=secret-binder socket address=/run/secret-binder/audit/audit.sock socket_type=unix
 *     bao audit enable -path=secret-binder socket address=<controller>:8200 socket_type=tcp prefix=<shared secret>
 *
 * Senders are authenticated: on a Unix socket by the kernel (the socket is mode 0600 in a
 * directory only its owner may enter, so only the controller's user and root connect); on TCP,
 * which OpenBao's socket device speaks without TLS, by a shared secret every line must start
 * with (the device's `prefix` option), compared in constant time. Input is bounded: lines longer
 * than `maxLineBytes` are discarded unread up to their end, lines over `maxLinesPerSecond` are
 * discarded unparsed, at most `maxConnections` senders at once. Nothing received is ever logged:
 * a rejection is a metric.
 */
export type AuditListen = { readonly kind: 'unix'; readonly path: string } | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

export interface VaultAuditSourceOptions {
  readonly listen: AuditListen;
  /**
   * A file holding the audit device's `prefix`, read at start: when set, every line must start
   * with it (a trailing newline of the file is not part of it); others are rejected.
   */
  readonly prefixFile?: string | undefined;
  readonly maxLineBytes: number;
  readonly maxLinesPerSecond: number;
  readonly maxConnections: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

export class VaultAuditSource implements ChangeNoticeSource {
  readonly kind = 'vaultAudit';
  readonly #options: VaultAuditSourceOptions;
  #prefix: Buffer | undefined;
  readonly #budget: InputBudget;

  constructor(options: VaultAuditSourceOptions) {
    this.#options = options;
    this.#budget = new InputBudget(options.maxLinesPerSecond, options.clock);
  }

  #address: string | undefined;

  /** Where the listener accepts (the TCP port chosen for port 0), once started. */
  get address(): string | undefined {
    return this.#address;
  }

  async start(sink: ChangeNoticeSink, signal: AbortSignal): Promise<void> {
    const { listen: where, logger, prefixFile } = this.#options;
    if (prefixFile !== undefined) {
      this.#prefix = trimNewline(await readFile(prefixFile));
      if (this.#prefix.length === 0) throw new Error(`vault audit prefix file ${prefixFile}: is empty`);
    }
    if (where.kind === 'unix') await prepareSocketPath(where.path);
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      this.#serve(socket, sink);
    });
    server.maxConnections = this.#options.maxConnections;
    if (where.kind === 'unix') {
      await listen(server, where.path);
      await chmod(where.path, 0o600);
      this.#address = where.path;
    } else {
      await listen(server, where.port, where.host);
      this.#address = `${where.host}:${String((server.address() as AddressInfo).port)}`;
    }
    sink.up(this.kind, true);
    logger.info('vault audit listener started', { address: this.#address });
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => { resolve(); }, { once: true });
    });
    await new Promise<void>((resolve) => {
      server.close(() => { resolve(); });
      for (const socket of sockets) socket.destroy();
    });
    if (where.kind === 'unix') await unlink(where.path).catch(() => undefined);
    sink.up(this.kind, false);
    logger.info('vault audit listener stopped', { address: this.#address });
  }

  /** Splits a connection's bytes into lines, each bounded in size and rate. */
  #serve(socket: Socket, sink: ChangeNoticeSink): void {
    const max = this.#options.maxLineBytes;
    let parts: Buffer[] = [];
    let length = 0;
    /** Inside a line already rejected as oversized: skip to its end. */
    let skipping = false;
    socket.on('error', () => {
      // A sender that resets the connection: nothing to do but forget it.
    });
    socket.on('data', (chunk: Buffer) => {
      let from = 0;
      while (from < chunk.length) {
        const newline = chunk.indexOf(0x0a, from);
        const end = newline < 0 ? chunk.length : newline;
        if (!skipping) {
          length += end - from;
          if (length > max) {
            sink.rejected(this.kind, 'oversized');
            skipping = true;
            parts = [];
          } else {
            parts.push(chunk.subarray(from, end));
          }
        }
        if (newline < 0) break;
        if (!skipping) this.#line(Buffer.concat(parts), sink);
        parts = [];
        length = 0;
        skipping = false;
        from = newline + 1;
      }
    });
  }

  #line(line: Buffer, sink: ChangeNoticeSink): void {
    if (line.length === 0 || (line.length === 1 && line[0] === 0x0d)) return;
    if (!this.#budget.take()) {
      sink.rejected(this.kind, 'rateLimited');
      return;
    }
    let body = line;
    if (this.#prefix !== undefined) {
      const head = line.subarray(0, this.#prefix.length);
      if (head.length !== this.#prefix.length || !timingSafeEqual(head, this.#prefix)) {
        sink.rejected(this.kind, 'unauthenticated');
        return;
      }
      body = line.subarray(this.#prefix.length);
    }
    const meaning = parseAuditLine(body.toString('utf8'));
    if (meaning.kind === 'malformed') sink.rejected(this.kind, 'malformed');
    else if (meaning.kind === 'ignored') sink.ignored(this.kind);
    else sink.notice(this.kind, { provider: 'vault', scope: meaning.mount, key: meaning.key });
  }
}

function listen(server: Server, pathOrPort: string | number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (typeof pathOrPort === 'string') server.listen(pathOrPort, done);
    else server.listen(pathOrPort, host, done);
  });
}

/**
 * The socket's directory is created owner-only, or must already be: a directory others may
 * enter would let them race the socket's chmod. A socket file left by an earlier process is
 * removed; anything else at the path is an error.
 */
async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const dirStat = await lstat(dir);
  if (!dirStat.isDirectory() || (dirStat.mode & 0o077) !== 0) {
    throw new Error(`vault audit socket directory ${dir}: must be a directory only its owner may access (mode 0700)`);
  }
  const stat = await lstat(path).catch(() => undefined);
  if (stat === undefined) return;
  if (!stat.isSocket()) throw new Error(`vault audit socket ${path}: exists and is not a socket`);
  await unlink(path);
}

function trimNewline(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  return bytes.subarray(0, end);
}
