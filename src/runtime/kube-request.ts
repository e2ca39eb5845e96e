import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { KubeApiError, type ApiStatus } from './kube-api-error.ts';

/**
 * Where the API server is and how to reach it: the part of a kubeconfig the runtime needs. The
 * controller's own loader (kube/kube-connection.ts) implements it, and so does client-node's
 * `KubeConfig`, which tests use.
 */
export interface KubeTransport {
  getCurrentCluster(): { readonly server: string } | null;
  /** Sets TLS material, the credentials' headers and a shared keep-alive agent. */
  applyToHTTPSOptions(options: RequestOptions): Promise<void>;
}

export interface KubeRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute API path, e.g. `/apis/coordination.k8s.io/v1/namespaces/x/leases/y`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Default `application/json`; a PATCH names its kind (`application/merge-patch+json`). */
  readonly contentType?: string;
  /** Default `application/json`; e.g. a PartialObjectMetadataList for metadata-only reads. */
  readonly accept?: string;
  readonly signal: AbortSignal;
}

/**
 * One JSON request to the API server with the kubeconfig's TLS settings and credentials (the
 * runtime's own small transport: raw JSON in and out, and an abort signal on every call). A non-2xx
 * answer becomes a {@link KubeApiError} with the Status code, reason and message; a transport
 * failure one with code 0. Request headers never appear in errors.
 */
export async function requestJson(transport: KubeTransport, req: KubeRequest): Promise<unknown> {
  const { url, options, payload } = await prepare(transport, req);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  const request = send(url, { ...options, signal: req.signal });
  // No closure of this call stays on the request once it is answered: a pooled socket keeps the
  // request that opened it (node:https's session listener) for as long as the socket lives, and
  // with it whatever its listeners reach — here that was every first LIST page's body and parsed
  // JSON, ~15 MiB at 20,000 pods (ADR 0206). once() removes its listeners; this one is module-level.
  request.on('error', ignoreError);
  request.end(payload);
  let body: string;
  let res: IncomingMessage;
  try {
    [res] = (await once(request, 'response')) as [IncomingMessage];
    body = await readBody(res);
  } catch (error) {
    throw toKubeApiError(error);
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status >= 300) throw errorAnswer(req, url, res, body);
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new KubeApiError(status, undefined, 'invalid JSON from the API server', { cause: error });
  }
}

function ignoreError(): void {
  // Errors of a request are read through once() and the body's iterator; this listener only keeps
  // a late one (after the answer) from being an uncaught 'error' event.
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A streamed GET (a watch): what {@link requestLines} reports. */
export interface LineStreamHandlers {
  /** The server answered 200: the stream is open. */
  onOpen(): void;
  /** One line of the body (a watch event's JSON), without its newline. */
  onLine(line: string): void;
}

/**
 * A GET whose body is a stream of JSON lines (a watch). Resolves when the server ends the stream
 * (its `timeoutSeconds`), when `req.signal` aborts, or when nothing arrived for `idleTimeoutMs` (a
 * connection that died without a FIN); rejects with a {@link KubeApiError} on an error answer or a
 * transport failure.
 */
export async function requestLines(transport: KubeTransport, req: KubeRequest & { readonly idleTimeoutMs: number }, handlers: LineStreamHandlers): Promise<void> {
  const { url, options } = await prepare(transport, req);
  if (req.signal.aborted) return;
  // A watch holds its connection for minutes: its own, never one of the shared pool's (an idle
  // timeout or abort destroys it, which must not hang up a pooled request).
  options.agent = false;
  return new Promise<void>((resolve, reject) => {
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    let settled = false;
    const finish = (error?: unknown, ended = false): void => {
      if (settled) return;
      settled = true;
      req.signal.removeEventListener('abort', onAbort);
      if (!ended) request.destroy();
      if (error === undefined || req.signal.aborted) resolve();
      else reject(toKubeApiError(error));
    };
    const onAbort = (): void => {
      finish();
    };
    const request = send(url, options, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error) => {
          finish(error);
        });
        res.on('end', () => {
          finish(errorAnswer(req, url, res, Buffer.concat(chunks).toString('utf8')));
        });
        return;
      }
      handlers.onOpen();
      res.setEncoding('utf8');
      let pending = '';
      res.on('data', (chunk: string) => {
        pending += chunk;
        let newline = pending.indexOf('\n');
        while (newline >= 0 && !settled) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          try {
            if (line.trim() !== '') handlers.onLine(line);
          } catch (error) {
            // A line that is not JSON, or a handler that failed: end this watch as failed.
            finish(error);
          }
          newline = pending.indexOf('\n');
        }
      });
      res.on('error', (error) => {
        finish(error);
      });
      res.on('end', () => {
        finish(undefined, true);
      });
    });
    // A quiet watch ends like one the server closed: the informer watches again from its version.
    request.setTimeout(req.idleTimeoutMs, () => {
      finish();
    });
    request.on('error', (error) => {
      finish(error);
    });
    req.signal.addEventListener('abort', onAbort, { once: true });
    request.end();
  });
}

async function prepare(transport: KubeTransport, req: KubeRequest): Promise<{ url: URL; options: RequestOptions; payload: Buffer | undefined }> {
  const server = transport.getCurrentCluster()?.server;
  if (server === undefined) throw new Error('kubeconfig has no current cluster');
  const url = new URL(server.replace(/\/$/, '') + req.path);
  for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
  const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = { Accept: req.accept ?? 'application/json' };
  if (payload !== undefined) {
    headers['Content-Type'] = req.contentType ?? 'application/json';
    headers['Content-Length'] = String(payload.byteLength);
  }
  const options: RequestOptions = { method: req.method, headers };
  // The agent this sets is the transport's own, cached per cluster and user and shared by every
  // request and watch made with it: never destroyed here (doing so hung up every request in flight).
  await transport.applyToHTTPSOptions(options);
  return { url, options, payload };
}

function errorAnswer(req: KubeRequest, url: URL, res: IncomingMessage, body: string): KubeApiError {
  const status = res.statusCode ?? 0;
  let apiStatus: ApiStatus = {};
  try {
    apiStatus = JSON.parse(body) as ApiStatus;
  } catch {
    // Not a Status body; the HTTP code says enough.
  }
  const detail = apiStatus.message ?? res.statusMessage ?? '';
  return new KubeApiError(status, apiStatus.reason, `${req.method} ${url.pathname}: ${status} ${detail}`.trim(), { statusMessage: detail });
}

/** Maps a transport or client-library error to a {@link KubeApiError} (HTTP status if it has one). */
export function toKubeApiError(error: unknown): KubeApiError {
  if (error instanceof KubeApiError) return error;
  const statusCode = (error as { statusCode?: unknown } | null)?.statusCode;
  const code = typeof statusCode === 'number' ? statusCode : 0;
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return new KubeApiError(code, undefined, `${message}${cause}`, { cause: error });
}
