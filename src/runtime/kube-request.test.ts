import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Agent, createServer, type Server } from 'node:https';
import type { RequestOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { generateSelfManagedTls } from '../tls/self-managed-tls.ts';
import { requestJson, type KubeTransport } from './kube-request.ts';

// A local HTTPS endpoint answering large JSON lists, to check what a pooled connection keeps alive
// after a request has been answered (ADR 0206).
let server: Server;
let agent: Agent;
let transport: KubeTransport;
let caPem: string;

beforeAll(async () => {
  const tls = await generateSelfManagedTls({ caName: 'kube-request-test', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  caPem = tls.caPem;
  const items = Array.from({ length: 2000 }, (_, i) => ({ metadata: { name: `pod-${String(i)}`, labels: { app: 'x'.repeat(200) } } }));
  server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    if (req.url?.startsWith('/missing') === true) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', reason: 'NotFound', message: 'pods "x" not found' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', items }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const server_ = `https://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  agent = new Agent({ keepAlive: true, ca: tls.caPem });
  transport = {
    getCurrentCluster: () => ({ server: server_ }),
    applyToHTTPSOptions: (options: RequestOptions) => {
      options.agent = agent;
      return Promise.resolve();
    },
  };
});

afterAll(async () => {
  agent.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('requestJson', () => {
  it('answers the parsed body and maps an error status to a KubeApiError', async () => {
    const list = (await requestJson(transport, { method: 'GET', path: '/api/v1/pods', signal: AbortSignal.timeout(5000) })) as { items: unknown[] };
    expect(list.items).toHaveLength(2000);
    await expect(requestJson(transport, { method: 'GET', path: '/missing', signal: AbortSignal.timeout(5000) })).rejects.toMatchObject({ code: 404, reason: 'NotFound', message: 'GET /missing: 404 pods "x" not found' });
  });

  it('keeps nothing of an answered request alive while its connection stays pooled', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // The first request on a new connection is the one node:https ties to that connection.
    agent.destroy();
    agent = new Agent({ keepAlive: true, ca: caPem });
    const ref = await weakAnswer();
    // The connection is still in the pool, idle.
    expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(ref.deref()).toBeUndefined();
  });
});

/** The answer of one request, held only weakly here. */
async function weakAnswer(): Promise<WeakRef<object>> {
  return new WeakRef((await requestJson(transport, { method: 'GET', path: '/api/v1/pods', signal: AbortSignal.timeout(5000) })) as object);
}
