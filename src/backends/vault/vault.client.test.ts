import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { ThrottledError } from '../backend.port.ts';
import { encodeSecretPath, VaultClient } from './vault.client.ts';
import { parseRetryAfter } from './vault.transport.ts';

/**
 * node-vault on our transport, against a loopback HTTP server that records what it receives:
 * tokens per request, nothing from the environment, aborts that close the socket, 429 mapping.
 */

interface Seen {
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

describe('VaultClient', () => {
  let server: Server;
  let address: string;
  const seen: Seen[] = [];
  let closedSockets = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', headers: req.headers, body });
        if (req.url?.startsWith('/v1/slow') === true) {
          req.socket.on('close', () => closedSockets++);
          return; // never answers
        }
        if (req.url?.startsWith('/v1/busy') === true) {
          res.writeHead(429, { 'retry-after': '3', 'content-type': 'application/json' }).end('{"errors":["rate limited"]}');
          return;
        }
        if (req.url?.startsWith('/v1/missing') === true) {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"ok":true}}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    address = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => {
      resolve();
    }));
  });

  it('sends the token it is given per request and reads nothing from the environment', async () => {
    // The operator never sets these; a stray one must still not reach Vault.
    // eslint-disable-next-line no-restricted-properties
    Object.assign(process.env, { VAULT_TOKEN: 'hvs.from-env', VAULT_NAMESPACE: 'env-ns', VAULT_PREFIX: '/env-prefix' });
    try {
      const client = new VaultClient({ address, namespace: undefined, caPem: undefined });
      const answer = await client.read('secret/data/app', { token: 'hvs.per-request', signal: AbortSignal.timeout(2000) });
      await client.write('auth/approle/login', { role_id: 'r' }, { signal: AbortSignal.timeout(2000) });
      client.close();
      expect(answer).toEqual({ data: { ok: true } });
      const [read, login] = seen.slice(-2);
      expect(read?.url).toBe('/v1/secret/data/app');
      expect(read?.headers['x-vault-token']).toBe('hvs.per-request');
      expect(read?.headers['x-vault-namespace']).toBeUndefined();
      expect(login?.headers['x-vault-token']).toBeUndefined();
      expect(JSON.parse(login?.body ?? '')).toEqual({ role_id: 'r' });
    } finally {
      // eslint-disable-next-line no-restricted-properties
      for (const name of ['VAULT_TOKEN', 'VAULT_NAMESPACE', 'VAULT_PREFIX']) Reflect.deleteProperty(process.env, name);
    }
  });

  it('sends the configured namespace', async () => {
    const client = new VaultClient({ address, namespace: 'team-a', caPem: undefined });
    await client.read('secret/data/app', { token: 't', signal: AbortSignal.timeout(2000) });
    client.close();
    expect(seen.at(-1)?.headers['x-vault-namespace']).toBe('team-a');
  });

  it('aborts the request, closing the socket, when the signal fires', async () => {
    const client = new VaultClient({ address, namespace: undefined, caPem: undefined });
    const before = closedSockets;
    await expect(client.read('slow/path', { token: 't', signal: AbortSignal.timeout(100) })).rejects.toThrow();
    client.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closedSockets).toBe(before + 1);
  });

  it('turns HTTP 429 into ThrottledError with the Retry-After hint', async () => {
    const client = new VaultClient({ address, namespace: undefined, caPem: undefined });
    const error = await client.read('busy', { token: 't', signal: AbortSignal.timeout(2000) }).catch((e: unknown) => e);
    client.close();
    expect(error).toBeInstanceOf(ThrottledError);
    expect((error as ThrottledError).retryAfterMs).toBe(3000);
  });

  it('lets node-vault report other statuses with their code', async () => {
    const client = new VaultClient({ address, namespace: undefined, caPem: undefined });
    const error = await client.read('missing', { token: 't', signal: AbortSignal.timeout(2000) }).catch((e: unknown) => e);
    client.close();
    expect((error as { response?: { statusCode?: number } }).response?.statusCode).toBe(404);
  });
});

describe('encodeSecretPath', () => {
  it('encodes each segment and refuses unsafe paths', () => {
    expect(encodeSecretPath('team a/db?x#y')).toBe('team%20a/db%3Fx%23y');
    for (const bad of ['', '/abs', 'trailing/', 'a//b', 'a/../b', './a']) expect(encodeSecretPath(bad)).toBeUndefined();
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:10 GMT', 4000)).toBe(6000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
