import { readFile, stat } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { once } from 'node:events';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { ChangesAnswer, ChangesRequest, PublishAnswer, PublishBatchAnswer, PublishBatchRequest, PublishRequest } from '../../broker/broker.protocol.ts';
import { BrokerRefusal, BrokerUnreachable, type NodeBrokerPort } from './broker.port.ts';

export interface BrokerHttpClientOptions {
  /** The broker's base URL (`https://…`; `http://` only for local development and tests). */
  readonly url: string;
  /** PEM bundle that signs the broker's certificate. */
  readonly caPem?: string;
  /**
   * A file holding that bundle (the broker Secret's `ca.crt`, projected by the kubelet), read again
   * whenever it changes, so a renewed CA is trusted without a restart (ADR 0155). Wins over `caPem`.
   */
  readonly caFile?: string;
  /** The plugin's own projected service-account token; read on every request (the kubelet rotates it). */
  readonly tokenFile: string;
  /** Per-request timeout for `publish`; `changes` adds its own wait. */
  readonly timeoutMs: number;
}

const maxAnswerBytes = 16 * 1024 * 1024;

/** {@link NodeBrokerPort} over the broker's HTTPS JSON protocol. */
export class BrokerHttpClient implements NodeBrokerPort {
  readonly #options: BrokerHttpClientOptions;
  #ca: { readonly ino: number; readonly mtimeMs: number; readonly size: number; readonly pem: string } | undefined;

  constructor(options: BrokerHttpClientOptions) {
    this.#options = options;
  }

  async publish(request: PublishRequest): Promise<PublishAnswer> {
    const answer = await this.post('/v1/publish', request, this.#options.timeoutMs, undefined);
    if (!isPublishAnswer(answer)) throw new BrokerUnreachable('broker answered /v1/publish with an unexpected body');
    return answer;
  }

  async publishBatch(request: PublishBatchRequest): Promise<PublishBatchAnswer> {
    const answer = await this.post('/v1/publish-batch', request, this.#options.timeoutMs, undefined);
    if (!isPublishBatchAnswer(answer)) throw new BrokerUnreachable('broker answered /v1/publish-batch with an unexpected body');
    return answer;
  }

  async changes(request: ChangesRequest, signal: AbortSignal): Promise<ChangesAnswer> {
    const answer = await this.post('/v1/changes', request, this.#options.timeoutMs + request.waitSeconds * 1000, signal);
    if (!isChangesAnswer(answer)) throw new BrokerUnreachable('broker answered /v1/changes with an unexpected body');
    return answer;
  }

  /**
   * The CA bundle to verify the broker with: the file's content, read again when its inode, mtime or size
   * changes (the kubelet swaps projected files atomically); an unreadable file keeps the last bundle.
   */
  async caBundle(): Promise<string | undefined> {
    const { caFile, caPem } = this.#options;
    if (caFile === undefined) return caPem;
    try {
      const info = await stat(caFile);
      if (this.#ca?.ino !== info.ino || this.#ca.mtimeMs !== info.mtimeMs || this.#ca.size !== info.size) {
        this.#ca = { ino: info.ino, mtimeMs: info.mtimeMs, size: info.size, pem: await readFile(caFile, 'utf8') };
      }
    } catch (error) {
      if (this.#ca === undefined) throw new BrokerUnreachable(`broker CA file unreadable: ${error instanceof Error ? error.message : String(error)}`);
    }
    return this.#ca.pem;
  }

  /**
   * POSTs `body` as JSON with the token of `tokenFile` (read now: the kubelet rotates it) and
   * resolves the parsed answer; rejects with {@link BrokerRefusal} or {@link BrokerUnreachable}.
   */
  async post(path: string, body: unknown, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
    const token = (await readFile(this.#options.tokenFile, 'utf8')).trim();
    const ca = await this.caBundle();
    const url = new URL(path, this.#options.url);
    const payload = Buffer.from(JSON.stringify(body));
    // node:http only for a plain-http broker (development): loading it costs the agent ~8 MiB RSS (ADR 0250).
    const send = url.protocol === 'https:' ? httpsRequest : (await import('node:http')).request;
    const req = send(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': payload.byteLength },
      ...(ca === undefined ? {} : { ca }),
      timeout: timeoutMs,
      ...(signal === undefined ? {} : { signal }),
    });
    // No closure of this call stays on the request once answered: a pooled connection keeps the
    // request that opened it, and with it the answer — files' content — for as long as it lives
    // (ADR 0206). once() removes its listeners; these two are module-level.
    req.on('timeout', destroyOnTimeout);
    req.on('error', ignoreError);
    req.end(payload);
    let status: number;
    let text: string;
    try {
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      status = res.statusCode ?? 0;
      text = await readAnswer(res, req);
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason instanceof Error ? signal.reason : new Error('aborted');
      if (err instanceof BrokerUnreachable) throw err;
      if (err instanceof TimeoutError) throw new BrokerUnreachable(`${brokerAt(url)} did not answer within ${String(timeoutMs)} ms`);
      throw new BrokerUnreachable(`${brokerAt(url)} unreachable: ${messageOf(err)}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status >= 200 && status < 300) return parsed;
    const error = parsed as { reason?: unknown; message?: unknown } | undefined;
    const reason = typeof error?.reason === 'string' ? error.reason : 'Unknown';
    const message = typeof error?.message === 'string' ? error.message : `HTTP ${String(status)}`;
    throw new BrokerRefusal(status, reason, message);
  }
}

class TimeoutError extends Error {}

/** An error's message (errors of node's own modules are of another realm under a test runner). */
function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}

function destroyOnTimeout(this: ClientRequest): void {
  this.destroy(new TimeoutError('timeout'));
}

function ignoreError(): void {
  // Read through once() and the answer's iterator; this keeps a late error from being uncaught.
}

/** The answer's body, at most {@link maxAnswerBytes}. */
async function readAnswer(res: IncomingMessage, req: ClientRequest): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).byteLength;
    if (size > maxAnswerBytes) {
      req.destroy();
      throw new BrokerUnreachable('broker answer too large');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Who the plugin failed to reach, as the kubelet's FailedMount Event shows it to whoever looks at a
 * waiting pod: the broker by its URL and what serves it (ADR 0193).
 */
function brokerAt(url: URL): string {
  return `secret-binder broker ${url.origin} (served by the secret-binder controller pods: is one Ready?)`;
}

export function isPublishAnswer(value: unknown): value is PublishAnswer {
  const answer = value as { volumeId?: unknown; contentHash?: unknown; files?: unknown } | null | undefined;
  return (
    typeof answer?.volumeId === 'string' &&
    typeof answer.contentHash === 'string' &&
    Array.isArray(answer.files) &&
    (answer.files as unknown[]).every(isPublishedFile)
  );
}

function isPublishedFile(item: unknown): boolean {
  const file = item as { path?: unknown; mode?: unknown; contentBase64?: unknown } | null;
  return typeof file?.path === 'string' && typeof file.mode === 'number' && typeof file.contentBase64 === 'string';
}

function isPublishBatchAnswer(value: unknown): value is PublishBatchAnswer {
  const answer = value as { results?: unknown; fileSets?: unknown } | null | undefined;
  if (!Array.isArray(answer?.results) || !Array.isArray(answer.fileSets)) return false;
  const fileSets = answer.fileSets as unknown[];
  const setsValid = fileSets.every((item) => {
    const set = item as { contentHash?: unknown; files?: unknown } | null;
    return typeof set?.contentHash === 'string' && Array.isArray(set.files) && (set.files as unknown[]).every(isPublishedFile);
  });
  return (
    setsValid &&
    (answer.results as unknown[]).every((item) => {
      const result = item as { volumeId?: unknown; contentHash?: unknown; fileSet?: unknown; certificateRequest?: unknown; error?: { status?: unknown; reason?: unknown; message?: unknown } | null } | null;
      if (typeof result?.volumeId !== 'string') return false;
      // A pki volume asked to publish alone for its key exchange (ADR 0263).
      if (result.certificateRequest !== undefined) return result.certificateRequest === true && typeof result.contentHash === 'string';
      if (result.error !== undefined) {
        const error = result.error;
        return typeof error?.status === 'number' && typeof error.reason === 'string' && typeof error.message === 'string';
      }
      return typeof result.contentHash === 'string' && typeof result.fileSet === 'number' && result.fileSet >= 0 && result.fileSet < fileSets.length;
    })
  );
}

export function isChangesAnswer(value: unknown): value is ChangesAnswer {
  const answer = value as { changed?: unknown } | null | undefined;
  return (
    Array.isArray(answer?.changed) &&
    (answer.changed as unknown[]).every((item) => {
      const change = item as { volumeId?: unknown; revoked?: unknown; contentHash?: unknown } | null;
      return typeof change?.volumeId === 'string' && typeof change.revoked === 'boolean' && (typeof change.contentHash === 'string' || change.contentHash === null);
    })
  );
}
