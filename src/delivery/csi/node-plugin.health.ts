import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { CheckResult } from '../../runtime/health-server.ts';

/**
 * The node plugin's probes (ADR 0161). Liveness: the CSI socket accepts a connection (the kubelet
 * can reach us; a wedged process or a removed socket fails it, and a restart binds it again).
 * Readiness: the kubelet confirmed the registration, and the broker answers over TLS that its CA
 * verifies — without it no volume can be published. Neither check reads a token or a file set.
 */

/** Connects to the unix socket and closes at once. */
export function socketAccepts(path: string, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (result: CheckResult): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => {
      done({ ok: false, message: `CSI socket ${path} did not accept within ${String(timeoutMs)} ms` });
    });
    socket.once('connect', () => {
      done({ ok: true });
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      done({ ok: false, message: `CSI socket ${path}: ${error.code ?? error.message}` });
    });
  });
}

export interface BrokerReachabilityOptions {
  readonly url: string;
  /**
   * The CA bundle that verifies the broker, asked for on every probe: the broker client's, which
   * follows the file the kubelet updates when the broker's CA is renewed. Absent for plain http.
   */
  readonly ca?: () => Promise<string | undefined>;
  readonly timeoutMs: number;
  /** A result is reused this long, so probes of every node do not each cost the broker a handshake. */
  readonly cacheMs: number;
  readonly now?: () => number;
}

/**
 * Whether the broker answers: any HTTP answer over a verified TLS connection counts (the probe
 * sends no token, so the broker refuses it; reaching it is what is checked).
 */
export class BrokerReachability {
  readonly #options: BrokerReachabilityOptions;
  #last: { at: number; result: CheckResult } | undefined;
  #inFlight: Promise<CheckResult> | undefined;

  constructor(options: BrokerReachabilityOptions) {
    this.#options = options;
  }

  check(): Promise<CheckResult> {
    const now = (this.#options.now ?? Date.now)();
    if (this.#last !== undefined && now - this.#last.at < this.#options.cacheMs) return Promise.resolve(this.#last.result);
    this.#inFlight ??= this.#probe().then((result) => {
      this.#last = { at: (this.#options.now ?? Date.now)(), result };
      this.#inFlight = undefined;
      return result;
    });
    return this.#inFlight;
  }

  async #probe(): Promise<CheckResult> {
    const url = new URL('/healthz', this.#options.url);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let ca: string | undefined;
    try {
      ca = await this.#options.ca?.();
    } catch (error) {
      return { ok: false, message: error instanceof Error ? error.message : String(error) };
    }
    return new Promise((resolve) => {
      const req = send(url, { method: 'GET', timeout: this.#options.timeoutMs, ...(ca === undefined ? {} : { ca }) }, (res) => {
        res.resume();
        resolve({ ok: true });
      });
      req.on('timeout', () => {
        req.destroy(new Error(`no answer within ${String(this.#options.timeoutMs)} ms`));
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        resolve({ ok: false, message: `broker ${url.host} unreachable: ${error.code ?? error.message}` });
      });
      req.end();
    });
  }
}
