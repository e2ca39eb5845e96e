import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { ThrottledError } from '../backend.port.ts';

/**
 * The HTTP transport node-vault runs on, plugged in through its `request-promise` option.
 *
 * node-vault's built-in transport (axios) drops an AbortSignal on the floor and reads
 * VAULT_SKIP_VERIFY from the environment; this one aborts the socket when the caller's signal
 * fires, always verifies TLS (system roots plus the backend's caBundle), reads no environment, and
 * caps the response size. ADR 0061.
 */

/** What node-vault hands its transport (the subset we use). */
export interface VaultHttpRequest {
  readonly method: string;
  readonly uri: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A request body; node-vault sets `json` to the body object for writes. */
  readonly json?: unknown;
  readonly signal?: AbortSignal;
}

/** What node-vault expects back: status and parsed body (it turns non-2xx into ApiResponseError). */
export interface VaultHttpResponse {
  readonly statusCode: number;
  readonly body: unknown;
  readonly request: { readonly path: string };
}

/** Vault answers are small (KV entries are capped at 512 KiB by default); refuse anything huge. */
const maxResponseBytes = 8 * 1024 * 1024;

export class VaultTransport {
  readonly #agent: http.Agent;
  readonly #secure: boolean;

  constructor(address: string, caPem: string | undefined) {
    this.#secure = new URL(address).protocol === 'https:';
    this.#agent = this.#secure
      ? new https.Agent({
          keepAlive: true,
          rejectUnauthorized: true,
          ...(caPem === undefined ? {} : { ca: [...rootCertificates, caPem] }),
        })
      : new http.Agent({ keepAlive: true });
  }

  /** The object node-vault's `request-promise` option wants: `defaults()` returns the sender. */
  asRequestPromise(): { defaults: () => (request: VaultHttpRequest) => Promise<VaultHttpResponse> } {
    return { defaults: () => (request) => this.send(request) };
  }

  send(request: VaultHttpRequest): Promise<VaultHttpResponse> {
    const url = new URL(request.uri);
    const body = request.json !== undefined && typeof request.json === 'object' ? JSON.stringify(request.json) : undefined;
    const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const requestFn = this.#secure ? https.request : http.request;
    return new Promise<VaultHttpResponse>((resolve, reject) => {
      const req = requestFn(
        url,
        { method: request.method, headers, agent: this.#agent, ...(request.signal ? { signal: request.signal } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.byteLength;
            if (size > maxResponseBytes) {
              res.destroy(new Error(`Vault response larger than ${maxResponseBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', reject);
          res.on('end', () => {
            const statusCode = res.statusCode ?? 0;
            if (statusCode === 429) {
              reject(new ThrottledError('Vault rate limit reached (HTTP 429)', parseRetryAfter(res.headers['retry-after'])));
              return;
            }
            resolve({ statusCode, body: parseBody(Buffer.concat(chunks)), request: { path: url.pathname } });
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.#agent.destroy();
  }
}

function parseBody(raw: Buffer): unknown {
  if (raw.byteLength === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    // A proxy's HTML error page or a truncated answer: node-vault reports "Status <code>".
    return undefined;
  }
}

/** Retry-After is seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
