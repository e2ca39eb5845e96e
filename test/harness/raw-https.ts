import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/**
 * An HTTPS client that writes bytes exactly as told — trickled, truncated, oversized, malformed —
 * and reports what came back: for fuzzing and slow-loris tests of our servers, which a regular
 * client would not let misbehave. Everything goes to 127.0.0.1.
 */

export interface RawAnswer {
  /** The status of the first response line, if one arrived. */
  readonly status: number | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** Whether the server closed the connection before `waitMs` ran out. */
  readonly closedByServer: boolean;
  /** Bytes the client managed to write before the connection ended. */
  readonly bytesWritten: number;
}

export interface RawExchange {
  readonly port: number;
  /** The CA that verifies the server; the connection is TLS unless `plainTcp`. */
  readonly caPem: string;
  readonly servername?: string;
  /** Connect over TCP and send nothing at all (not even a TLS hello). */
  readonly plainTcp?: boolean;
  /**
   * Writes the request. `write` resolves false once the connection is gone; `pause` waits (for
   * trickling). Resolves when done writing; the answer is awaited afterwards.
   */
  readonly send: (io: { write(data: string | Buffer): Promise<boolean>; pause(ms: number): Promise<void>; closed(): boolean }) => Promise<void>;
  /** How long to wait for the server to answer and close, in all (a safety net, not an assertion). */
  readonly waitMs: number;
}

export async function rawExchange(options: RawExchange): Promise<RawAnswer> {
  const socket: Socket | TLSSocket = options.plainTcp === true
    ? tcpConnect({ host: '127.0.0.1', port: options.port })
    : tlsConnect({ host: '127.0.0.1', port: options.port, ca: options.caPem, servername: options.servername ?? 'localhost' });
  const received: Buffer[] = [];
  let closed = false;
  let bytesWritten = 0;
  const ended = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('close', () => {
      closed = true;
      resolve();
    });
    // A reset while we still write is an answer too (the server gave up on us).
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => {
    socket.once(options.plainTcp === true ? 'connect' : 'secureConnect', () => {
      resolve();
    });
    socket.once('close', () => {
      resolve();
    });
  });
  const deadline = Date.now() + options.waitMs;
  const io = {
    closed: () => closed,
    write: (data: string | Buffer): Promise<boolean> => {
      if (closed || socket.destroyed || Date.now() > deadline) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        socket.write(data, (error) => {
          if (error === undefined || error === null) bytesWritten += Buffer.byteLength(data);
          resolve(error === undefined || error === null);
        });
      });
    },
    pause: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, Math.min(ms, deadline - Date.now())))),
  };
  await options.send(io);
  const timer = new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref());
  await Promise.race([ended, timer]);
  const closedByServer = closed;
  socket.destroy();
  return { ...parseResponse(Buffer.concat(received).toString('latin1')), closedByServer, bytesWritten };
}

function parseResponse(text: string): Pick<RawAnswer, 'status' | 'headers' | 'body'> {
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1];
  const split = text.indexOf('\r\n\r\n');
  const head = split < 0 ? text : text.slice(0, split);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = split < 0 ? '' : text.slice(split + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { status: status === undefined ? undefined : Number(status), headers, body: Buffer.from(body, 'latin1').toString('utf8') };
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

/** A complete request as bytes: method, path, headers (Host, Content-Length and `connection: close` added) and body. */
export function httpRequest(method: string, path: string, headers: Readonly<Record<string, string>>, body: string | Buffer = ''): Buffer {
  const bytes = Buffer.from(body);
  // `connection: close`: the server ends the connection after its answer, which tells the client the answer is complete.
  const lines = [`${method} ${path} HTTP/1.1`, 'host: localhost', ...Object.entries({ 'content-length': String(bytes.byteLength), connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}`)];
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), bytes]);
}
