import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeKubeError } from '../kube/kube-errors.ts';
import type { Logger } from '../observability/logger.ts';
import { readJsonBody, serverTimeouts, type RequestLimits } from '../runtime/request-limits.ts';
import type { Runnable } from '../runtime/runnable.ts';
import type { Broker, BrokerReply } from './broker.ts';
import { loadBrokerTls, type BrokerTlsMaterial, type BrokerTlsSource } from './broker-tls.ts';

export interface BrokerServerOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: BrokerTlsSource;
  /** Loads the serving pair; default: {@link loadBrokerTls} of `tls`. Required for a `secret` source. */
  readonly loadTls?: () => Promise<BrokerTlsMaterial>;
  readonly broker: Pick<Broker, 'publish' | 'publishBatch' | 'changes' | 'agentPublish' | 'agentChanges'>;
  readonly logger: Logger;
  /** How often the certificate is checked for rotation (files and secret modes); default 60 s. */
  readonly certReloadMs?: number;
  /** Request limits; the defaults suit production (tests shorten the timeouts). */
  readonly limits?: Partial<RequestLimits>;
}

/**
 * The body limit leaves room for a changes request of a busy node; the timeouts end when the
 * request has arrived, so a long poll is not affected.
 */
export const brokerRequestLimits: RequestLimits = {
  maxBodyBytes: 4 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
};

/**
 * The broker's HTTPS endpoint on every replica (not leader-only: any replica answers from its own
 * caches). Routes `POST /v1/publish`, `POST /v1/publish-batch`, `POST /v1/changes` and the agent's
 * `/v1/agent/publish` and `/v1/agent/changes`; everything else is 404. Never logs a
 * body or a header.
 */
export class BrokerServer implements Runnable {
  readonly name = 'broker';
  readonly needLeaderElection = false;
  readonly #options: BrokerServerOptions;
  readonly #listening: Promise<AddressInfo>;
  #resolveListening!: (address: AddressInfo) => void;
  #rejectListening!: (error: unknown) => void;

  constructor(options: BrokerServerOptions) {
    this.#options = options;
    this.#listening = new Promise((resolve, reject) => {
      this.#resolveListening = resolve;
      this.#rejectListening = reject;
    });
    // Never an unhandled rejection when nobody asks for the address.
    this.#listening.catch(() => undefined);
  }

  /** The node plugin's endpoints and the agent's (ADR 0250). */
  get #routes(): Readonly<Record<string, (authorization: string | undefined, input: unknown, signal: AbortSignal) => Promise<BrokerReply>>> {
    const { broker } = this.#options;
    return {
      '/v1/publish': (a, i, s) => broker.publish(a, i, s),
      '/v1/publish-batch': (a, i, s) => broker.publishBatch(a, i, s),
      '/v1/changes': (a, i, s) => broker.changes(a, i, s),
      '/v1/agent/publish': (a, i, s) => broker.agentPublish(a, i, s),
      '/v1/agent/changes': (a, i, s) => broker.agentChanges(a, i, s),
    };
  }

  get #limits(): RequestLimits {
    return { ...brokerRequestLimits, ...this.#options.limits };
  }

  /** The bound address, once listening. */
  address(): Promise<AddressInfo> {
    return this.#listening;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { logger } = this.#options;
    let server: Server;
    try {
      const tls = await this.#loadFirst(signal);
      if (tls === undefined) {
        this.#rejectListening(new Error('the broker stopped before it listened'));
        return;
      }
      const requests = new AbortController();
      const limits = this.#limits;
      server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', ...serverTimeouts(limits) }, (req, res) => {
        void this.#handle(req, res, requests.signal);
      });
      // Idle keep-alive connections of the node plugins between long polls.
      server.keepAliveTimeout = 65_000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.#options.port, this.#options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const address = server.address() as AddressInfo;
      logger.info('broker listening', { address: `${address.address}:${address.port}`, tls: this.#options.tls.kind });
      this.#resolveListening(address);
      const reload = this.#watchCertificates(server, tls);
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener('abort', () => { resolve(); }, { once: true });
      });
      if (reload !== undefined) clearInterval(reload);
      // Held long polls answer "nothing changed" at once; then the server closes.
      requests.abort();
      await new Promise<void>((resolve) => {
        server.close(() => { resolve(); });
        server.closeIdleConnections();
      });
    } catch (error) {
      this.#rejectListening(error);
      throw error;
    }
  }

  /**
   * The first pair, retried every few seconds: a managed Secret the API server cannot serve yet (an
   * outage at start, RBAC being applied) is waited for, not a crash loop. Undefined when stopped.
   */
  async #loadFirst(signal: AbortSignal): Promise<BrokerTlsMaterial | undefined> {
    for (;;) {
      try {
        return await this.#load();
      } catch (error) {
        if (this.#options.tls.kind !== 'secret') throw error;
        this.#options.logger.warn('broker certificate not available yet; retrying', { error: describeKubeError(error).message });
      }
      const stopped = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => { resolve(false); }, 3000);
        signal.addEventListener('abort', () => { clearTimeout(timer); resolve(true); }, { once: true });
      });
      if (stopped || signal.aborted) return undefined;
    }
  }

  #load(): Promise<BrokerTlsMaterial> {
    const { tls, loadTls } = this.#options;
    if (loadTls !== undefined) return loadTls();
    if (tls.kind === 'secret') return Promise.reject(new Error('a secret-managed broker certificate needs loadTls'));
    return loadBrokerTls(tls);
  }

  /**
   * Files and secret modes: loads the pair again and swaps the server's context when it changed
   * (cert-manager or controller renewal); open connections keep the old one.
   */
  #watchCertificates(server: Server, initial: BrokerTlsMaterial): NodeJS.Timeout | undefined {
    if (this.#options.tls.kind === 'self-managed') return undefined;
    let current = initial;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.#load()
        .then((next) => {
          if (next.cert === current.cert && next.key === current.key) return;
          // A half-written pair fails here and is retried at the next tick; the old context stays.
          server.setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
          current = next;
          this.#options.logger.info('broker certificate reloaded');
        })
        .catch((error: unknown) => {
          this.#options.logger.warn('broker certificate reload failed; keeping the current one', { error: describeKubeError(error).message });
        })
        .finally(() => {
          busy = false;
        });
    }, this.#options.certReloadMs ?? 60_000);
    return timer;
  }

  async #handle(req: IncomingMessage, res: ServerResponse, stopping: AbortSignal): Promise<void> {
    const closed = new AbortController();
    res.once('close', () => { closed.abort(); });
    const signal = AbortSignal.any([stopping, closed.signal]);
    let reply: BrokerReply;
    try {
      const route = req.method === 'POST' ? req.url : undefined;
      const routes = this.#routes;
      const handler = route !== undefined && Object.hasOwn(routes, route) ? routes[route] : undefined;
      if (handler === undefined) {
        reply = { status: 404, body: { reason: 'InvalidSpec', message: `no such endpoint (POST ${Object.keys(routes).join(', POST ')})` } };
      } else {
        const body = await readJsonBody(req, this.#limits.maxBodyBytes);
        if (body.kind === 'tooLarge') {
          // Not read further: the connection closes after this answer.
          res.setHeader('connection', 'close');
          reply = { status: 413, body: { reason: 'InvalidSpec', message: `the body must be at most ${String(this.#limits.maxBodyBytes)} bytes` } };
        } else if (body.kind === 'aborted') {
          return;
        } else if (body.kind === 'malformed') {
          reply = { status: 400, body: { reason: 'InvalidSpec', message: 'the body must be JSON' } };
        } else {
          reply = await handler(req.headers.authorization, body.value, signal);
        }
      }
    } catch (error) {
      this.#options.logger.error('broker request failed', { error: error instanceof Error ? error.message : String(error) });
      reply = { status: 500, body: { reason: 'InternalError', message: 'internal error' } };
    }
    if (res.destroyed) return;
    // Stopping: the connection goes with this answer. A node plugin keeps its connection alive and
    // reuses it; Node serves a kept-alive connection even after close(), so the stop would wait for
    // it (up to the manager's deadline) while this replica, no longer Ready, kept answering (ADR 0193).
    if (stopping.aborted) res.setHeader('connection', 'close');
    const text = JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}
