import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerRefusal, BrokerUnreachable } from './broker.port.ts';
import { BrokerHttpClient } from './broker-http.client.ts';
import { generateSelfManagedTls } from '../../tls/self-managed-tls.ts';

// A local HTTP endpoint speaking the broker protocol's framing (our own contract), to check the
// client's requests and its handling of answers, refusals and aborts.
let server: Server;
let url: string;
let dir: string;
let tokenFile: string;
const seen: { path: string; authorization: string | undefined; body: unknown }[] = [];
let respond: (path: string) => { status: number; body: string } | 'hang' = () => ({ status: 200, body: '{}' });

async function bodyOf(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'broker-client-'));
  tokenFile = join(dir, 'token');
  server = createServer((req, res) => {
    void bodyOf(req).then((body) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
      const answer = respond(req.url ?? '');
      if (answer === 'hang') return;
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const publishRequest = {
  volumeId: 'csi-1',
  pod: { namespace: 'shop', name: 'web', uid: 'u1', serviceAccountName: 'web' },
  binding: 'db',
  podToken: 'pod-token',
};

describe('BrokerHttpClient', () => {
  it('posts the request with the plugin token read from its file on every call', async () => {
    const client = new BrokerHttpClient({ url, tokenFile, timeoutMs: 2000 });
    respond = () => ({ status: 200, body: JSON.stringify({ volumeId: 'csi-1', contentHash: 'h1', files: [{ path: 'a', mode: 0o440, contentBase64: 'eA==' }] }) });
    await writeFile(tokenFile, 'plugin-token-1\n');
    expect(await client.publish(publishRequest)).toEqual({ volumeId: 'csi-1', contentHash: 'h1', files: [{ path: 'a', mode: 0o440, contentBase64: 'eA==' }] });
    await writeFile(tokenFile, 'plugin-token-2');
    await client.publish(publishRequest);
    expect(seen.slice(-2).map((s) => [s.path, s.authorization])).toEqual([
      ['/v1/publish', 'Bearer plugin-token-1'],
      ['/v1/publish', 'Bearer plugin-token-2'],
    ]);
    expect(seen.at(-1)?.body).toEqual(publishRequest);
  });

  it('turns refusals into BrokerRefusal and bad answers into BrokerUnreachable', async () => {
    const client = new BrokerHttpClient({ url, tokenFile, timeoutMs: 2000 });
    respond = () => ({ status: 403, body: JSON.stringify({ reason: 'NotEntitled', message: 'pod web is not selected by db' }) });
    const refusal = await client.publish(publishRequest).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(BrokerRefusal);
    expect(refusal).toMatchObject({ status: 403, reason: 'NotEntitled', revokes: true });

    respond = () => ({ status: 503, body: JSON.stringify({ reason: 'BackendUnavailable', message: 'vault down' }) });
    expect(await client.publish(publishRequest).catch((err: unknown) => err)).toMatchObject({ status: 503, revokes: false });

    respond = () => ({ status: 200, body: '{"volumeId":1}' });
    await expect(client.publish(publishRequest)).rejects.toBeInstanceOf(BrokerUnreachable);

    const nowhere = new BrokerHttpClient({ url: 'http://127.0.0.1:1', tokenFile, timeoutMs: 2000 });
    const unreachable = await nowhere.publish(publishRequest).catch((err: unknown) => err);
    expect(unreachable).toBeInstanceOf(BrokerUnreachable);
    // What a waiting pod's FailedMount Event says: the broker's URL, what serves it, the error.
    expect((unreachable as Error).message).toBe('secret-binder broker http://127.0.0.1:1 (served by the secret-binder controller pods: is one Ready?) unreachable: connect ECONNREFUSED 127.0.0.1:1');
  });

  it('accepts a publish-batch answer whose pki volume is asked to publish alone, and refuses a malformed one', async () => {
    const client = new BrokerHttpClient({ url, tokenFile, timeoutMs: 2000 });
    const answer = {
      results: [
        { volumeId: 'csi-1', contentHash: 'h1', fileSet: 0 },
        { volumeId: 'csi-2', contentHash: '', certificateRequest: true },
        { volumeId: 'csi-3', error: { status: 403, reason: 'NotEntitled', message: 'no' } },
      ],
      fileSets: [{ contentHash: 'h1', files: [{ path: 'a', mode: 0o440, contentBase64: 'eA==' }] }],
    };
    respond = () => ({ status: 200, body: JSON.stringify(answer) });
    expect(await client.publishBatch({ volumes: [publishRequest] })).toEqual(answer);
    expect(seen.at(-1)?.path).toBe('/v1/publish-batch');

    respond = () => ({ status: 200, body: JSON.stringify({ results: [{ volumeId: 'csi-2', contentHash: '', certificateRequest: 'yes' }], fileSets: [] }) });
    await expect(client.publishBatch({ volumes: [publishRequest] })).rejects.toBeInstanceOf(BrokerUnreachable);
  });

  it('long-polls /v1/changes and stops when aborted', async () => {
    const client = new BrokerHttpClient({ url, tokenFile, timeoutMs: 2000 });
    respond = () => ({ status: 200, body: JSON.stringify({ changed: [{ volumeId: 'csi-1', contentHash: 'h2', revoked: false }] }) });
    const volumes = [{ volumeId: 'csi-1', namespace: 'shop', binding: 'db', contentHash: 'h1', pod: { name: 'web', uid: 'u1' } }];
    expect(await client.changes({ volumes, waitSeconds: 1 }, new AbortController().signal)).toEqual({
      changed: [{ volumeId: 'csi-1', contentHash: 'h2', revoked: false }],
    });
    expect(seen.at(-1)).toMatchObject({ path: '/v1/changes', body: { volumes, waitSeconds: 1 } });

    respond = () => 'hang';
    const abort = new AbortController();
    const pending = client.changes({ volumes, waitSeconds: 30 }, abort.signal);
    setTimeout(() => {
      abort.abort();
    }, 100);
    await expect(pending).rejects.toThrow();
  });
});

describe('BrokerHttpClient over TLS with a CA file', () => {
  it('trusts a renewed CA as soon as the file holds it, without a new client (ADR 0155)', async () => {
    const first = await generateSelfManagedTls({ caName: 'ca-1', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const second = await generateSelfManagedTls({ caName: 'ca-2', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const tlsServer = createHttpsServer({ cert: first.certPem, key: first.keyPem }, (req, res) => {
      req.resume();
      // No keep-alive: every call makes a new TLS handshake, as after a broker restart or failover.
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', connection: 'close' }).end('{"changed":[]}'));
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    try {
      const caFile = join(dir, 'ca.crt');
      await writeFile(tokenFile, 'plugin-token');
      await writeFile(caFile, first.caPem);
      const client = new BrokerHttpClient({ url: `https://127.0.0.1:${String((tlsServer.address() as AddressInfo).port)}`, caFile, tokenFile, timeoutMs: 2000 });
      const ask = (): Promise<unknown> => client.changes({ volumes: [], waitSeconds: 0 }, new AbortController().signal);
      expect(await ask()).toEqual({ changed: [] });

      // The server switches to a certificate of a CA the file does not hold yet: refused.
      tlsServer.setSecureContext({ cert: second.certPem, key: second.keyPem });
      await expect(ask()).rejects.toThrow(BrokerUnreachable);
      // The file (as the kubelet projects a renewed ca.crt) holds both CAs: trusted again.
      await writeFile(`${caFile}.tmp`, second.caPem + first.caPem);
      await rename(`${caFile}.tmp`, caFile);
      expect(await ask()).toEqual({ changed: [] });
    } finally {
      tlsServer.closeAllConnections();
      await new Promise((resolve) => tlsServer.close(resolve));
    }
  });
});
