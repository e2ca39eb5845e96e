import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { describeError, silentLogger, type RuntimeLogger } from './logger.ts';

/** The result of one health or readiness check. `message` is shown on /readyz: names only, no values. */
export type CheckResult = { readonly ok: true } | { readonly ok: false; readonly message: string };

export type Check = () => CheckResult | Promise<CheckResult>;

export interface HealthServerOptions {
  /** `127.0.0.1` (default) or `0.0.0.0` (in a pod, for the kubelet's probes and Prometheus). */
  readonly host?: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** The registry `/metrics` exposes. */
  readonly registry: Registry;
  readonly logger?: RuntimeLogger;
}

interface NamedCheck {
  readonly name: string;
  readonly check: Check;
}

/**
 * `/healthz` (liveness: the process serves; plus any liveness checks), `/readyz` (every readiness
 * check passes: informers synced and fresh, not shutting down, …) and `/metrics`. Both probes
 * answer 200 `ok` or 503 with one `[-]name: message` line per failing check (`?verbose` lists all).
 */
export class HealthServer {
  readonly #host: string;
  readonly #port: number;
  readonly #registry: Registry;
  readonly #logger: RuntimeLogger;
  readonly #liveness: NamedCheck[] = [];
  readonly #readiness: NamedCheck[] = [];
  #server: Server | undefined;

  constructor(options: HealthServerOptions) {
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port;
    this.#registry = options.registry;
    this.#logger = options.logger ?? silentLogger;
  }

  addLivenessCheck(name: string, check: Check): void {
    this.#liveness.push({ name, check });
  }

  addReadinessCheck(name: string, check: Check): void {
    this.#readiness.push({ name, check });
  }

  /** The bound port (after {@link HealthServer.listen}). */
  get port(): number {
    const address = this.#server?.address();
    if (address === null || address === undefined || typeof address === 'string') throw new Error('health server is not listening');
    return address.port;
  }

  async listen(): Promise<number> {
    if (this.#server !== undefined) throw new Error('health server already listening');
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#logger.error('health server: request failed', { error: describeError(error) });
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end('internal error\n');
      });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#logger.info('health server listening', { host: this.#host, port: this.port });
    return this.port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://health.invalid');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    switch (url.pathname) {
      case '/healthz':
      case '/livez':
        await this.#probe(res, this.#liveness, url.searchParams.has('verbose'));
        return;
      case '/readyz':
        await this.#probe(res, this.#readiness, url.searchParams.has('verbose'));
        return;
      case '/metrics': {
        const body = await this.#registry.metrics();
        res.writeHead(200, { 'Content-Type': this.#registry.contentType }).end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
    }
  }

  async #probe(res: ServerResponse, checks: readonly NamedCheck[], verbose: boolean): Promise<void> {
    const results = await Promise.all(
      checks.map(async ({ name, check }): Promise<{ name: string; result: CheckResult }> => {
        try {
          return { name, result: await check() };
        } catch (error) {
          return { name, result: { ok: false, message: `check threw: ${describeError(error)}` } };
        }
      }),
    );
    const failed = results.filter((r) => !r.result.ok);
    const lines = results
      .filter((r) => verbose || !r.result.ok)
      .map(({ name, result }) => (result.ok ? `[+]${name} ok` : `[-]${name}: ${result.message}`));
    const status = failed.length === 0 ? 200 : 503;
    const summary = failed.length === 0 ? 'ok' : `${failed.length} check(s) failed`;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end([...lines, summary].join('\n') + '\n');
  }
}
