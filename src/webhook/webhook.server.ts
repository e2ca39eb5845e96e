import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.ts';
import { readJsonBody, serverTimeouts, type RequestLimits } from '../runtime/request-limits.ts';
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
  /** Request limits; the defaults suit production (tests shorten the timeouts). */
  readonly limits?: Partial<RequestLimits>;
}

/**
 * What one client may cost the server. The API server sends a whole AdmissionReview at once and
 * gives up after the webhook's timeoutSeconds (at most 30 s); anything slower is not the API
 * server (slow-loris) and is cut off.
 */
export const webhookRequestLimits: RequestLimits = {
  maxBodyBytes: 3 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
};
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
  readonly #maxBodyBytes: number;

  constructor(options: WebhookServerOptions) {
    this.#options = options;
    const limits = { ...webhookRequestLimits, ...options.limits };
    this.#maxBodyBytes = limits.maxBodyBytes;
    this.#server = createServer({ cert: options.tls.certPem, key: options.tls.keyPem, minVersion: 'TLSv1.2', ...serverTimeouts(limits) }, (req, res) => {
      void this.#handle(req, res);
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

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
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
    const body = await readJsonBody(req, this.#maxBodyBytes);
    if (body.kind === 'aborted' || res.destroyed) return;
    if (body.kind === 'tooLarge') {
      // Not read further: the connection closes after this answer.
      res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('request too large');
      return;
    }
    let outcome: Decision['outcome'] | 'error' = 'error';
    try {
      const review = body.kind === 'json' ? parseReview(body.value) : undefined;
      if (review === undefined) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('expected an admission.k8s.io/v1 AdmissionReview with a request');
        return;
      }
      const decision = this.#decide(webhook, review);
      outcome = decision.outcome;
      if (decision.outcome === 'denied') {
        this.#options.logger.info('admission refused', { webhook, namespace: review.namespace, name: review.name, operation: review.operation, subResource: review.subResource, message: decision.message });
      }
      const answer: AdmissionReview = { apiVersion: admissionApiVersion, kind: 'AdmissionReview', response: toResponse(review.uid, decision) };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    } finally {
      this.#options.metrics.observe({ webhook, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
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

function parseReview(value: unknown): AdmissionRequest | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const review = value as Partial<AdmissionReview>;
  const request = review.request;
  if (review.apiVersion !== admissionApiVersion || review.kind !== 'AdmissionReview' || typeof request?.uid !== 'string') return undefined;
  return request;
}
