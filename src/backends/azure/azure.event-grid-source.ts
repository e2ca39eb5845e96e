import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChangeNoticeSink, ChangeNoticeSource } from '../change-notice.port.ts';
import { InputBudget } from '../notices/input-budget.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Clock } from '../../runtime/clock.ts';
import { readJsonBody, serverTimeouts } from '../../runtime/request-limits.ts';
import type { EntraTokenCheck } from './azure.entra-token.ts';
import type { EntraTokenCheckOptions } from './azure.entra-token.options.ts';
import { parseGridBody } from './azure.event-grid-event.ts';

/**
 * The Azure Key Vault change-notice source (ADR 0223): an Event Grid webhook endpoint,
 * `POST /eventgrid?code=<shared secret>`, for `Microsoft.KeyVault.SecretNewVersionCreated` in the
 * Event Grid schema or CloudEvents 1.0. It answers both validation handshakes — the Event Grid
 * schema's `SubscriptionValidationEvent` (echoing `validationCode`) and the CloudEvents abuse
 * protection `OPTIONS` (allowing the `WebHook-Request-Origin`) — and only for a request that
 * proves its sender: the shared secret, compared in constant time, and/or an Entra bearer token
 * (Microsoft Entra protected webhook delivery, {@link EntraTokenCheck}); when both are configured
 * both are required. Plain HTTP: Event Grid needs HTTPS, which
 * the Ingress in front of it terminates. Bodies over 1 MiB are refused unread (413), events over
 * `maxEventsPerSecond` are answered 429 (Event Grid retries later), and nothing received is logged.
 */
export interface AzureEventGridSourceOptions {
  readonly host: string;
  readonly port: number;
  /** A file holding the shared secret (a trailing newline is not part of it). */
  readonly secretFile?: string;
  /** The Entra token check; at least one of `secretFile` and `entra` is required. */
  readonly entra?: EntraTokenCheckOptions;
  readonly maxEventsPerSecond: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

const path = '/eventgrid';
const maxBodyBytes = 1024 * 1024;

export class AzureEventGridSource implements ChangeNoticeSource {
  readonly kind = 'azureEventGrid';
  readonly #options: AzureEventGridSourceOptions;
  readonly #budget: InputBudget;
  #entra: EntraTokenCheck | undefined;
  #address: string | undefined;
  /** Whether the last Entra check could not fetch the keys (logged once per outage, not per request). */
  #keysDown = false;

  constructor(options: AzureEventGridSourceOptions) {
    if (options.secretFile === undefined && options.entra === undefined) throw new Error('the Event Grid receiver needs a shared secret file or an Entra token check');
    this.#options = options;
    this.#budget = new InputBudget(options.maxEventsPerSecond, options.clock);
  }

  /** `host:port` where it listens (the port chosen for port 0), once started. */
  get address(): string | undefined {
    return this.#address;
  }

  async start(sink: ChangeNoticeSink, signal: AbortSignal): Promise<void> {
    const { host, port, logger } = this.#options;
    const { secretFile, entra } = this.#options;
    // The JWT library loads only when the check is configured (ADR 0200).
    if (entra !== undefined) this.#entra = new (await import('./azure.entra-token.ts')).EntraTokenCheck(entra);
    let secret: Buffer | undefined;
    if (secretFile !== undefined) {
      const raw = trimNewline(await readFile(secretFile));
      if (raw.length < 16) throw new Error(`event grid secret file ${secretFile}: needs at least 16 bytes`);
      secret = digest(raw);
    }
    const server = createServer(
      serverTimeouts({ maxBodyBytes, handshakeTimeoutMs: 10_000, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 }),
      (req, res) => {
        this.#handle(req, res, secret, sink).catch(() => {
          if (!res.headersSent) res.writeHead(500).end();
        });
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#address = `${host}:${String((server.address() as AddressInfo).port)}`;
    sink.up(this.kind, true);
    logger.info('event grid receiver started', { address: this.#address });
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => { resolve(); }, { once: true });
    });
    await new Promise<void>((resolve) => {
      server.close(() => { resolve(); });
      server.closeAllConnections();
    });
    sink.up(this.kind, false);
  }

  async #handle(req: IncomingMessage, res: ServerResponse, secret: Buffer | undefined, sink: ChangeNoticeSink): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://receiver');
    if (url.pathname !== path) {
      res.writeHead(404).end();
      return;
    }
    const code = url.searchParams.get('code') ?? '';
    if (secret !== undefined && !timingSafeEqual(digest(Buffer.from(code)), secret)) {
      sink.rejected(this.kind, 'unauthenticated');
      req.resume();
      res.writeHead(401).end();
      return;
    }
    if (this.#entra !== undefined) {
      const verdict = await this.#entra.check(req.headers.authorization);
      if (verdict.kind !== 'unavailable' && this.#keysDown) {
        this.#keysDown = false;
        this.#options.logger.info('event grid receiver: Entra signing keys fetched again', {});
      }
      if (verdict.kind === 'unavailable') {
        if (!this.#keysDown) this.#options.logger.warn('event grid receiver: cannot fetch the Entra signing keys; answering 503 until it can', { error: verdict.why });
        this.#keysDown = true;
        req.resume();
        // Not the sender's fault: Event Grid retries a 503 with backoff.
        res.writeHead(503, { 'retry-after': '10' }).end();
        return;
      }
      if (verdict.kind === 'refused') {
        sink.rejected(this.kind, 'unauthenticated');
        req.resume();
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
        return;
      }
    }
    if (req.method === 'OPTIONS') {
      // CloudEvents abuse protection (the schema's validation handshake).
      const origin = req.headers['webhook-request-origin'];
      if (typeof origin !== 'string' || origin === '') {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'WebHook-Allowed-Origin': origin, 'WebHook-Allowed-Rate': String(this.#options.maxEventsPerSecond) }).end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST, OPTIONS' }).end();
      return;
    }
    const body = await readJsonBody(req, maxBodyBytes);
    if (body.kind === 'aborted') return;
    if (body.kind === 'tooLarge') {
      sink.rejected(this.kind, 'oversized');
      res.writeHead(413, { connection: 'close' }).end();
      return;
    }
    if (body.kind === 'malformed') {
      sink.rejected(this.kind, 'malformed');
      res.writeHead(400).end();
      return;
    }
    const contentType = req.headers['content-type'] ?? '';
    const schema = contentType.startsWith('application/cloudevents') ? 'cloudEvents' : 'eventGrid';
    const meanings = parseGridBody(body.value, schema);
    let validation: string | undefined;
    let malformed = false;
    for (const meaning of meanings) {
      if (!this.#budget.take()) {
        sink.rejected(this.kind, 'rateLimited');
        // Event Grid retries the whole batch later; what was taken so far is done.
        res.writeHead(429, { 'retry-after': '1' }).end();
        return;
      }
      if (meaning.kind === 'validation') validation = meaning.validationCode;
      else if (meaning.kind === 'malformed') {
        sink.rejected(this.kind, 'malformed');
        malformed = true;
      } else if (meaning.kind === 'ignored') sink.ignored(this.kind);
      else sink.notice(this.kind, { provider: 'azureKeyVault', scope: meaning.vaultHost, key: meaning.secretName });
    }
    if (validation !== undefined) {
      sink.ignored(this.kind);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ validationResponse: validation }));
      return;
    }
    // A malformed event is not retried by Event Grid on 400 (it dead-letters it): right for garbage.
    res.writeHead(malformed ? 400 : 200).end();
  }
}

/** Equal-length digests, so the comparison takes the same time whatever was sent. */
function digest(bytes: Buffer): Buffer {
  return createHash('sha256').update(bytes).digest();
}

function trimNewline(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  return bytes.subarray(0, end);
}
