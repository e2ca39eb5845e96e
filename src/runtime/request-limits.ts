import type { IncomingMessage, ServerOptions } from 'node:http';
import type { TlsOptions } from 'node:tls';

/**
 * What one client may cost an HTTPS server of ours (the broker, the webhook): the size of a
 * request body and how long the TLS handshake, the headers and the whole request may take to
 * arrive. A slow client (slow-loris) is cut off; an oversized body is refused without being kept.
 */
export interface RequestLimits {
  readonly maxBodyBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly headersTimeoutMs: number;
  /** Until the whole request has arrived; a long poll's wait for its answer is not counted. */
  readonly requestTimeoutMs: number;
}

/** The `https.createServer` options that enforce the timeouts of `limits`. */
export function serverTimeouts(limits: RequestLimits): Pick<TlsOptions, 'handshakeTimeout'> & Pick<ServerOptions, 'headersTimeout' | 'requestTimeout' | 'connectionsCheckingInterval'> {
  return {
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node checks the two timeouts above on this period (30 s by default: longer than they are).
    connectionsCheckingInterval: Math.max(100, Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4),
  };
}

export type JsonBody =
  | { readonly kind: 'json'; readonly value: unknown }
  /** Not JSON. */
  | { readonly kind: 'malformed' }
  /** Over the limit: answer 413 with `connection: close` (the rest of the body is read and dropped). */
  | { readonly kind: 'tooLarge' }
  /** The client went away: nothing to answer. */
  | { readonly kind: 'aborted' };

/**
 * Reads a JSON body of at most `maxBytes`. A declared Content-Length over the limit is refused
 * before reading; a body that grows over it stops being kept, so memory stays bounded by the
 * limit per request whatever the client sends.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<JsonBody> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    req.resume();
    return Promise.resolve({ kind: 'tooLarge' });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      if (size <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      chunks.length = 0;
      req.resume();
      resolve({ kind: 'tooLarge' });
    };
    req.on('data', onData);
    req.once('error', () => {
      resolve({ kind: 'aborted' });
    });
    req.once('aborted', () => {
      resolve({ kind: 'aborted' });
    });
    req.once('end', () => {
      if (size > maxBytes) return;
      try {
        resolve({ kind: 'json', value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
      } catch {
        resolve({ kind: 'malformed' });
      }
    });
  });
}
