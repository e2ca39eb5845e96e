import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, type ApiStatus } from './kube-api-error.ts';

export interface KubeRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  /** Absolute API path, e.g. `/apis/coordination.k8s.io/v1/namespaces/x/leases/y`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** The body's media type; default `application/json` (e.g. `application/merge-patch+json`). */
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
export async function requestJson(kubeConfig: KubeConfig, req: KubeRequest): Promise<unknown> {
  const server = kubeConfig.getCurrentCluster()?.server;
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
  // The agent this sets is the KubeConfig's own, cached per cluster and user and shared by every
  // request and watch made with it: never destroyed here (doing so hung up every request in flight).
  await kubeConfig.applyToHTTPSOptions(options);
  return new Promise<unknown>((resolve, reject) => {
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const request = send(url, { ...options, signal: req.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (error) => {
        reject(toKubeApiError(error));
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          try {
            resolve(JSON.parse(body));
          } catch (error) {
            reject(new KubeApiError(status, undefined, 'invalid JSON from the API server', { cause: error }));
          }
          return;
        }
        let apiStatus: ApiStatus = {};
        try {
          apiStatus = JSON.parse(body) as ApiStatus;
        } catch {
          // Not a Status body; the HTTP code says enough.
        }
        const detail = apiStatus.message ?? res.statusMessage ?? '';
        reject(new KubeApiError(status, apiStatus.reason, `${req.method} ${url.pathname}: ${status} ${detail}`.trim()));
      });
    });
    request.on('error', (error) => {
      reject(toKubeApiError(error));
    });
    request.end(payload);
  });
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
