import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A counting HTTP proxy for tests, in front of one plain-HTTP server of the world (moto, OpenBao): it
 * records every request (time, method, path, the `X-Amz-Target` operation, the status answered)
 * and either forwards it or, while throttling, answers it itself the way AWS's JSON protocol
 * does: HTTP 400 `{"__type":"ThrottlingException","message":"Rate exceeded"}`, or, while
 * partitioned, cuts the connection.
 *
 * It binds 127.0.0.1 only, and closes itself after `maxLifetimeMs` (default 10 min) if the test
 * that started it never calls {@link FaultProxy.stop}. From request bodies it keeps only the secret
 * ids a call names; answers (which carry values) are forwarded untouched and never read.
 */

export interface ProxiedRequest {
  /** Epoch ms when the request arrived. */
  readonly at: number;
  readonly method: string;
  readonly path: string;
  /** The AWS operation, e.g. `secretsmanager.BatchGetSecretValue` (empty for other protocols). */
  readonly target: string;
  /** The secret ids an AWS JSON request names (`SecretId`, `SecretIdList`); ids, never values. */
  readonly secretIds: readonly string[];
  /** Whether the proxy answered it with a throttle instead of forwarding it. */
  readonly throttled: boolean;
  /** Whether the proxy cut it (partition) instead of forwarding it. */
  readonly cut: boolean;
}

/**
 * `forward` passes requests on; `throttle` answers them as AWS throttling; `partition` cuts every
 * request's connection without an answer (a network partition between the controller and the
 * backend: the client sees a reset, whatever the protocol).
 */
export type FaultMode = { readonly kind: 'forward' } | { readonly kind: 'throttle' } | { readonly kind: 'partition' };

export interface FaultProxy {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Every request so far, oldest first. */
  requests(): readonly ProxiedRequest[];
  setMode(mode: FaultMode): void;
  stop(): Promise<void>;
}

export const throttlingBody = JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' });

export async function startFaultProxy(options: { readonly target: string; readonly maxLifetimeMs?: number }): Promise<FaultProxy> {
  const target = new URL(options.target);
  if (target.protocol !== 'http:') throw new Error(`fault proxy: only http:// targets (${target.protocol})`);
  const log: ProxiedRequest[] = [];
  let mode: FaultMode = { kind: 'forward' };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const header = req.headers['x-amz-target'];
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const entry: ProxiedRequest = {
        at,
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        target: typeof header === 'string' ? header : '',
        secretIds: secretIdsOf(body),
        throttled: mode.kind === 'throttle',
        cut: mode.kind === 'partition',
      };
      log.push(entry);
      if (entry.cut) {
        req.socket.destroy();
        return;
      }
      if (entry.throttled) {
        res.writeHead(400, { 'Content-Type': 'application/x-amz-json-1.1', 'x-amzn-ErrorType': 'ThrottlingException', 'Content-Length': Buffer.byteLength(throttlingBody) });
        res.end(throttlingBody);
        return;
      }
      const upstream = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      upstream.end(body);
    });
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { resolve(); });
  });
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      clearTimeout(lifetime);
      server.close(() => { resolve(); });
      server.closeAllConnections();
    });
    return stopped;
  };
  // Bounded lifetime: a test that dies before its afterAll still leaves no listener behind.
  const lifetime = setTimeout(() => void stop(), options.maxLifetimeMs ?? 600_000);
  lifetime.unref();

  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => [...log],
    setMode: (next) => {
      mode = next;
    },
    stop,
  };
}

/** The ids of a Secrets Manager request body; anything else in it is never kept. */
function secretIdsOf(body: Buffer): string[] {
  if (body.length === 0) return [];
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { SecretId?: unknown; SecretIdList?: unknown };
    const ids: unknown[] = [parsed.SecretId, ...(Array.isArray(parsed.SecretIdList) ? (parsed.SecretIdList as unknown[]) : [])];
    return ids.filter((id): id is string => typeof id === 'string');
  } catch {
    return [];
  }
}
