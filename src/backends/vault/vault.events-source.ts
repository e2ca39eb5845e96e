import WebSocket from 'ws';
import type { ChangeNoticeSink, ChangeNoticeSource } from '../change-notice.port.ts';
import type { Logger } from '../../observability/logger.ts';
import { sanitizeError } from '../../observability/sanitize.ts';
import { sleep, type Clock } from '../../runtime/clock.ts';
import { InputBudget } from '../notices/input-budget.ts';
import { parseVaultEvent } from './vault.event.ts';

/**
 * The Vault Enterprise events-API change-notice source (ADR 0226): a websocket subscription to
 * `GET /v1/sys/events/subscribe/<eventTypes>?json=true` (Vault ≥ 1.16; OpenBao answers 404), with
 * the token of a configured Vault backend (`X-Vault-Token`, and `X-Vault-Namespace` when it has
 * one). Each KV event becomes a notice of its mount and key. The connection is redialled with
 * backoff whenever it ends; a ping every 30 s that goes unanswered for 10 s ends it, so a silent
 * server is noticed. Messages over 1 MiB end the connection (counted `oversized`), messages over
 * `maxEventsPerSecond` are dropped unparsed, and nothing received is logged.
 */
export interface VaultEventsSourceOptions {
  /** The server, e.g. `https://vault.example.com:8200` (http for development and tests). */
  readonly address: string;
  readonly namespace: string | undefined;
  /** PEM bundle that signs the server's certificate (the backend's `caBundle`). */
  readonly caPem: string | undefined;
  /** A valid token of the backend's identity (logged in or renewed as needed). */
  readonly token: (signal: AbortSignal) => Promise<string>;
  /** Called when the server refused the token (401/403), so the next dial logs in again. */
  readonly tokenRefused: (token: string) => void;
  /** The event-type pattern subscribed to (Vault's glob syntax), e.g. `kv*`. */
  readonly eventTypes: string;
  readonly maxEventsPerSecond: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Redial backoff (defaults 1 s → 30 s) and the keep-alive ping (defaults 30 s, 10 s): tests shorten them. */
  readonly timing?: { readonly minBackoffMs: number; readonly maxBackoffMs: number; readonly pingEveryMs: number; readonly pongWithinMs: number };
}

const maxMessageBytes = 1024 * 1024;
const defaultTiming = { minBackoffMs: 1000, maxBackoffMs: 30_000, pingEveryMs: 30_000, pongWithinMs: 10_000 };

export class VaultEventsSource implements ChangeNoticeSource {
  readonly kind = 'vaultEvents';
  readonly #options: VaultEventsSourceOptions;
  readonly #budget: InputBudget;
  readonly #timing: typeof defaultTiming;

  constructor(options: VaultEventsSourceOptions) {
    this.#options = options;
    this.#budget = new InputBudget(options.maxEventsPerSecond, options.clock);
    this.#timing = options.timing ?? defaultTiming;
  }

  /** The subscription URL (no token in it). */
  get address(): string {
    const url = new URL(`v1/sys/events/subscribe/${encodeURIComponent(this.#options.eventTypes)}`, this.#options.address.replace(/\/*$/, '/'));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('json', 'true');
    return url.toString();
  }

  async start(sink: ChangeNoticeSink, signal: AbortSignal): Promise<void> {
    let failures = 0;
    let running = !signal.aborted;
    while (running) {
      const opened = await this.#connectOnce(sink, signal);
      failures = opened ? 1 : failures + 1;
      const { minBackoffMs, maxBackoffMs } = this.#timing;
      const base = Math.min(maxBackoffMs, minBackoffMs * 2 ** Math.min(failures - 1, 20));
      // Redial after a jittered pause: a restarted server is not met by every controller at once.
      running = await sleep(this.#options.clock, base / 2 + Math.random() * (base / 2), signal);
    }
  }

  /** One subscription, until it ends. Resolves whether it was established. */
  async #connectOnce(sink: ChangeNoticeSink, signal: AbortSignal): Promise<boolean> {
    const { logger, namespace, caPem } = this.#options;
    let token: string;
    try {
      token = await this.#options.token(signal);
    } catch (error) {
      if (!signal.aborted) logger.warn('vault events: no token for the subscription; polling goes on', { error: sanitizeError(error) });
      return false;
    }
    const socket = new WebSocket(this.address, {
      headers: { 'X-Vault-Token': token, ...(namespace === undefined ? {} : { 'X-Vault-Namespace': namespace }) },
      ...(caPem === undefined ? {} : { ca: caPem }),
      maxPayload: maxMessageBytes,
      handshakeTimeout: 10_000,
      followRedirects: false,
    });
    return new Promise<boolean>((resolve) => {
      let opened = false;
      let awaitingPong: ReturnType<typeof setTimeout> | undefined;
      const pinger = setInterval(() => {
        if (!opened || awaitingPong !== undefined) return;
        socket.ping();
        awaitingPong = setTimeout(() => {
          logger.warn('vault events: no answer to a ping; redialling', {});
          socket.terminate();
        }, this.#timing.pongWithinMs);
      }, this.#timing.pingEveryMs);
      const onAbort = (): void => { socket.close(1000); };
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('open', () => {
        opened = true;
        sink.up(this.kind, true);
        logger.info('vault events: subscribed', { url: this.address });
      });
      socket.on('pong', () => {
        clearTimeout(awaitingPong);
        awaitingPong = undefined;
      });
      socket.on('unexpected-response', (request, response) => {
        const status = response.statusCode ?? 0;
        if (status === 401 || status === 403) this.#options.tokenRefused(token);
        // 404: no events API here (OpenBao, Vault before 1.16, or no Enterprise licence).
        logger.warn('vault events: subscription refused; polling goes on', { status, url: this.address });
        response.resume();
        request.destroy();
        socket.terminate();
      });
      socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
        if (!this.#budget.take()) {
          sink.rejected(this.kind, 'rateLimited');
          return;
        }
        const meaning = isBinary ? { kind: 'malformed' as const } : parseVaultEvent(rawText(data));
        if (meaning.kind === 'malformed') sink.rejected(this.kind, 'malformed');
        else if (meaning.kind === 'ignored') sink.ignored(this.kind);
        else sink.notice(this.kind, { provider: 'vault', scope: meaning.mount, key: meaning.key });
      });
      socket.on('error', (error: Error & { code?: string }) => {
        if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') sink.rejected(this.kind, 'oversized');
        else if (!signal.aborted) logger.warn('vault events: connection failed; redialling', { error: sanitizeError(error) });
      });
      socket.on('close', () => {
        clearInterval(pinger);
        clearTimeout(awaitingPong);
        signal.removeEventListener('abort', onAbort);
        if (opened) sink.up(this.kind, false);
        resolve(opened);
      });
    });
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString('utf8');
}
