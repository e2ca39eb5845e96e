import https from 'node:https';
import { rootCertificates } from 'node:tls';
import {
  AuthFailedError,
  InvalidConfigError,
  NotFoundError,
  ThrottledError,
  UnavailableError,
  type BackendError,
} from '../backend.port.ts';
import { parseRetryAfter } from '../vault/vault.transport.ts';
import { abortError, networkErrorCodes, tlsErrorCodes } from '../provider.support.ts';

/**
 * The HTTPS client of the Conjur provider: node's https with the system roots plus the backend's
 * caBundle (always verified), the caller's AbortSignal, a response size cap, and the mapping of
 * Conjur's status codes to port errors. Bodies are returned raw: a secret is bytes
 * (application/octet-stream), never parsed here. Hand-written because Conjur publishes no
 * maintained Node SDK (ADR 0243).
 */

/** Secrets are small; refuse anything huge (a batch of 50 large values stays far below). */
const maxResponseBytes = 16 * 1024 * 1024;

export interface ConjurResponse {
  readonly status: number;
  readonly body: Buffer;
}

export interface ConjurRequest {
  readonly method: 'GET' | 'POST';
  /** Path and query, already URL-encoded. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly signal: AbortSignal;
  /** What the call was, for messages (`Conjur batch read`). */
  readonly what: string;
}

export class ConjurClient {
  readonly #base: URL;
  readonly #agent: https.Agent;

  constructor(applianceUrl: string, caPem: string | undefined) {
    this.#base = new URL(`${applianceUrl}/`);
    this.#agent = new https.Agent({ keepAlive: true, rejectUnauthorized: true, ...(caPem === undefined ? {} : { ca: [...rootCertificates, caPem] }) });
  }

  /** Sends the request; network, TLS and abort failures become port errors. Any status is returned. */
  send(request: ConjurRequest): Promise<ConjurResponse> {
    if (request.signal.aborted) return Promise.reject(abortError(request.signal, request.what));
    const url = new URL(request.path.replace(/^\//, ''), this.#base);
    const headers: Record<string, string> = { ...request.headers };
    if (request.body !== undefined) headers['content-length'] = String(Buffer.byteLength(request.body));
    return new Promise<ConjurResponse>((resolve, reject) => {
      const fail = (err: unknown): void => {
        reject(request.signal.aborted ? abortError(request.signal, request.what) : transportError(err, request.what));
      };
      const req = https.request(url, { method: request.method, headers, agent: this.#agent, signal: request.signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size > maxResponseBytes) {
            res.destroy(new UnavailableError(`${request.what}: response larger than ${String(maxResponseBytes)} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status === 429) {
            reject(new ThrottledError(`${request.what}: Conjur rate limit reached (HTTP 429)`, parseRetryAfter(res.headers['retry-after'])));
            return;
          }
          resolve({ status, body: Buffer.concat(chunks) });
        });
      });
      req.on('error', fail);
      req.end(request.body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/**
 * A non-2xx answer as a port error. Conjur's bodies are never quoted (an error page could echo a
 * request); the status code says enough: 401 (token refused or expired), 403 (no privilege),
 * 404 (no such variable, or no value yet), 422 (bad parameter).
 */
export function statusError(status: number, what: string): BackendError {
  if (status === 401) return new AuthFailedError(`${what}: Conjur refused the credentials (HTTP 401)`);
  if (status === 403) return new AuthFailedError(`${what}: the Conjur role lacks the privilege (HTTP 403)`);
  if (status === 404) return new NotFoundError(`${what}: no such variable, or it has no value (HTTP 404)`);
  if (status === 400 || status === 422) return new InvalidConfigError(`${what}: Conjur refused the request (HTTP ${String(status)})`);
  return new UnavailableError(`${what}: HTTP ${String(status)}`);
}

function transportError(err: unknown, what: string): BackendError {
  if (err instanceof UnavailableError || err instanceof ThrottledError) return err;
  const code = typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : '';
  if (tlsErrorCodes.includes(code)) return new InvalidConfigError(`${what}: TLS verification failed (${code}); check applianceUrl and caBundle`);
  if (networkErrorCodes.includes(code)) return new UnavailableError(`${what}: ${code}`);
  return new UnavailableError(`${what}: ${code === '' ? 'connection failed' : code}`);
}

/** A Conjur id segment for a URL path: every reserved character encoded, `/` included (Conjur's rule). */
export function encodeId(id: string): string {
  return encodeURIComponent(id);
}
