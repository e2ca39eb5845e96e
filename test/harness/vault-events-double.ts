import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * A double of Vault Enterprise's events API (ADR 0226): OpenBao — the world's Vault — does not
 * implement `sys/events/subscribe` (it answers 404 "unsupported path"), and Vault Enterprise cannot
 * run here. It serves only what the controller's events source uses, written from Vault's
 * documentation: `GET /v1/sys/events/subscribe/<pattern>?json=true` upgraded to a websocket for a
 * request with the right `X-Vault-Token` (403 otherwise, 400 without `json=true`: the protobuf
 * form is not served), and, per subscriber whose glob pattern matches the event type, messages in
 * Vault's CloudEvents JSON shape. Given an `upstream` (the world's OpenBao), every other request is
 * passed through to it, so a backend pointed at the double logs in and reads as against Vault
 * Enterprise: OpenBao plus the events API. It does not watch the store: a test that writes in the
 * real OpenBao calls {@link VaultEventsDouble.emit} with the event Vault would have sent for that
 * write. Binds 127.0.0.1; closes itself after `maxLifetimeMs`.
 */
export interface VaultEventsDoubleOptions {
  /** The only token it accepts for a subscription. */
  readonly token: string;
  /** Where every request other than a subscription goes (e.g. the world's OpenBao); 404 without. */
  readonly upstream?: string;
  /** Closes itself after this long (default 30 min). */
  readonly maxLifetimeMs?: number;
}

export interface KvEvent {
  /** E.g. `kv-v2/data-write`, `kv-v1/write`. */
  readonly eventType: string;
  /** The mount as Vault writes it, e.g. `secret/`. */
  readonly mountPath: string;
  /** The request path, e.g. `secret/data/app/db`. */
  readonly path: string;
  /** More metadata (`current_version`, `modified`, …); `data_path` is filled for KV v2. */
  readonly metadata?: Readonly<Record<string, string>>;
}

export class VaultEventsDouble {
  readonly #server: Server;
  readonly #sockets = new WebSocketServer({ noServer: true });
  readonly #subscribers = new Map<WebSocket, RegExp>();
  readonly #lifetime: ReturnType<typeof setTimeout>;
  /** Upgrade requests answered with an error status (wrong token, no `json=true`, other paths). */
  refused = 0;

  private constructor(server: Server, options: VaultEventsDoubleOptions) {
    this.#server = server;
    server.on('request', (req, res) => {
      const upstream = options.upstream;
      if (upstream === undefined) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":["unsupported path"]}');
        return;
      }
      const passed = httpRequest(new URL(req.url ?? '/', upstream), { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      passed.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(passed);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://double');
      const prefix = '/v1/sys/events/subscribe/';
      const refuse = (status: number, error: string): void => {
        this.refused++;
        socket.end(`HTTP/1.1 ${String(status)} ${error}\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"errors":["${error}"]}`);
      };
      if (!url.pathname.startsWith(prefix) || url.pathname.length === prefix.length) {
        refuse(404, 'unsupported path');
        return;
      }
      if (req.headers['x-vault-token'] !== options.token) {
        refuse(403, 'permission denied');
        return;
      }
      if (url.searchParams.get('json') !== 'true') {
        refuse(400, 'only json=true is served by this double');
        return;
      }
      const pattern = decodeURIComponent(url.pathname.slice(prefix.length));
      this.#sockets.handleUpgrade(req, socket, head, (ws) => {
        this.#subscribers.set(ws, globToRegExp(pattern));
        ws.on('close', () => this.#subscribers.delete(ws));
      });
    });
    this.#lifetime = setTimeout(() => void this.close(), options.maxLifetimeMs ?? 30 * 60_000);
    this.#lifetime.unref();
  }

  static async start(options: VaultEventsDoubleOptions): Promise<VaultEventsDouble> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new VaultEventsDouble(server, options);
  }

  /** `http://127.0.0.1:<port>`, the Vault address to give the events source. */
  get address(): string {
    return `http://127.0.0.1:${String((this.#server.address() as AddressInfo).port)}`;
  }

  /** Open subscriptions. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Sends Vault's JSON for a KV event to every subscriber whose pattern matches its type. */
  emit(event: KvEvent): void {
    const id = randomUUID();
    const dataPath = event.eventType.startsWith('kv-v2/') ? { data_path: event.path.replace(/^([^/]+\/)(data|metadata|delete|undelete|destroy)\//, '$1data/') } : {};
    const message = {
      id,
      source: 'https://vaultproject.io/',
      specversion: '1.0',
      type: '*',
      data: {
        event: { id, metadata: { modified: 'true', operation: event.eventType.split('/')[1] ?? '', path: event.path, ...dataPath, ...event.metadata } },
        event_type: event.eventType,
        plugin_info: { mount_class: 'secret', mount_accessor: 'kv_5dc4d18e', mount_path: event.mountPath, plugin: 'kv' },
      },
      datacontentype: 'application/cloudevents',
      time: new Date().toISOString(),
    };
    this.sendRaw(JSON.stringify(message), event.eventType);
  }

  /** Sends anything (malformed, oversized, binary) to the subscribers of `eventType` (all when omitted). */
  sendRaw(message: string | Buffer, eventType?: string): void {
    for (const [ws, pattern] of this.#subscribers) if (eventType === undefined || pattern.test(eventType)) ws.send(message);
  }

  /** Ends every subscription, as a restarted server would. */
  dropSubscribers(): void {
    for (const ws of this.#subscribers.keys()) ws.terminate();
  }

  async close(): Promise<void> {
    clearTimeout(this.#lifetime);
    this.dropSubscribers();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => { resolve(); }));
  }
}

/** Vault's event-type patterns: `*` matches any run of characters. */
function globToRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`);
}
