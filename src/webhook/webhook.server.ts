import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.ts';
import type { Runnable } from '../runtime/runnable.ts';
import { admissionApiVersion, deny, toResponse, type AdmissionRequest, type AdmissionReview, type Decision } from './admission.ts';
import type { ServingTls } from './webhook-tls.ts';
import type { WebhookMetrics } from './webhook.metrics.ts';

/** What the server asks of the admission logic: pure functions of one request. */
export interface AdmissionHandlers {
  readonly mutate: (request: AdmissionRequest) => Decision;
  readonly validate: (request: AdmissionRequest) => Decision;
}

export interface WebhookServerOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly tls: ServingTls;
  readonly handlers: AdmissionHandlers;
  /** Whether the binding cache has synced; until then every review is refused with 503 (retryable). */
  readonly ready: () => boolean;
  readonly metrics: WebhookMetrics;
  readonly logger: Logger;
}

const maxBodyBytes = 3 * 1024 * 1024;
const paths = { '/mutate': 'mutate', '/validate': 'validate' } as const;

/**
 * HTTPS server for AdmissionReview v1 on `/mutate` and `/validate` (plus `/healthz`). Runs on every
 * replica (not leader-elected): the API server may call any of them. `setTls` swaps the serving
 * certificate without a restart.
 */
export class WebhookServer implements Runnable {
  readonly name = 'webhook';
  readonly needLeaderElection = false;
  readonly #options: WebhookServerOptions;
  readonly #server: Server;

  constructor(options: WebhookServerOptions) {
    this.#options = options;
    this.#server = createServer({ cert: options.tls.certPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
      this.#handle(req, res);
    });
  }

  /** Listens and resolves with the bound port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => {
      this.#server.close(() => { resolve(); });
      this.#server.closeAllConnections();
    });
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.listen();
    this.#options.logger.info('webhook listening', { host: this.#options.host, port: (this.#server.address() as AddressInfo).port });
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => { resolve(); }, { once: true });
    });
    await this.close();
  }

  setTls(tls: ServingTls): void {
    this.#server.setSecureContext({ cert: tls.certPem, key: tls.keyPem });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (path === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    const webhook = path === '/mutate' || path === '/validate' ? paths[path] : undefined;
    if (webhook === undefined || req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        res.writeHead(413, { 'content-type': 'text/plain' }).end('request too large');
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let outcome: Decision['outcome'] | 'error' = 'error';
      try {
        const review = parseReview(Buffer.concat(chunks).toString('utf8'));
        if (review === undefined) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end('expected an admission.k8s.io/v1 AdmissionReview with a request');
          return;
        }
        const decision = this.#decide(webhook, review);
        outcome = decision.outcome;
        if (decision.outcome === 'denied') {
          this.#options.logger.info('admission refused', { webhook, namespace: review.namespace, name: review.name, operation: review.operation, subResource: review.subResource, message: decision.message });
        }
        const body: AdmissionReview = { apiVersion: admissionApiVersion, kind: 'AdmissionReview', response: toResponse(review.uid, decision) };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      } finally {
        this.#options.metrics.observe({ webhook, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    });
  }

  #decide(webhook: 'mutate' | 'validate', request: AdmissionRequest): Decision {
    // failurePolicy Fail makes the API server refuse while we cannot judge; 503 tells the client to retry.
    if (!this.#options.ready()) return deny('secret-binder webhook is starting: SecretBinding cache not synced yet, retry', 503);
    try {
      return this.#options.handlers[webhook](request);
    } catch (error) {
      this.#options.logger.error('admission failed', { webhook, error: error instanceof Error ? error.name : 'unknown' });
      return deny('secret-binder webhook: internal error', 500);
    }
  }
}

function parseReview(text: string): AdmissionRequest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const review = value as Partial<AdmissionReview>;
  const request = review.request;
  if (review.apiVersion !== admissionApiVersion || review.kind !== 'AdmissionReview' || typeof request?.uid !== 'string') return undefined;
  return request;
}
