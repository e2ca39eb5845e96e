import { afterEach, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createLogger } from '../observability/logger.ts';
import { CapturedOutput } from '../observability/captured-output.ts';
import type { BrokerReply } from './broker.ts';
import { BrokerServer } from './broker.server.ts';
import { selfManagedTls } from './broker-tls.ts';

/** The HTTP layer with a stand-in for the broker's decisions (our own port): routing, bodies, TLS. */

const dirs: string[] = [];
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Seen {
  endpoint: string;
  authorization: string | undefined;
  body: unknown;
}

async function start(tls: 'self' | { certFile: string; keyFile: string }, seen: Seen[] = []): Promise<{ port: number; server: BrokerServer; caPem: string | undefined }> {
  const reply = (endpoint: string) => (authorization: string | undefined, body: unknown): Promise<BrokerReply> => {
    seen.push({ endpoint, authorization, body });
    return Promise.resolve({ status: 200, body: { changed: [] } });
  };
  let caPem: string | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'sb-broker-server-'));
  dirs.push(dir);
  const caOut = join(dir, 'ca.pem');
  const server = new BrokerServer({
    host: '127.0.0.1',
    port: 0,
    tls: tls === 'self' ? { kind: 'self-managed', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], caOut } : { kind: 'files', ...tls },
    broker: { publish: reply('publish'), publishBatch: reply('publish-batch'), changes: reply('changes'), agentPublish: reply('agent-publish'), agentChanges: reply('agent-changes') },
    logger: createLogger({ level: 'error', component: 'test', stream: new CapturedOutput() }),
    certReloadMs: 50,
  });
  const stop = new AbortController();
  const running = server.start(stop.signal);
  stops.push(async () => {
    stop.abort();
    await running;
  });
  const { port } = await server.address();
  if (tls === 'self') caPem = (await import('node:fs')).readFileSync(caOut, 'utf8');
  return { port, server, caPem };
}

function post(port: number, path: string, body: string, options: { ca?: string; method?: string; authorization?: string } = {}): Promise<{ status: number; body: string; cert: X509Certificate }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent: false, method: options.method ?? 'POST', ...(options.ca === undefined ? { rejectUnauthorized: false } : { ca: options.ca }), headers: options.authorization === undefined ? {} : { authorization: options.authorization } },
      (res) => {
        const cert = new X509Certificate((res.socket as TLSSocket).getPeerCertificate().raw);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text, cert }); });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('BrokerServer', () => {
  it('serves TLS verifiable with the CA it published, and routes only POST /v1/publish, /v1/publish-batch and /v1/changes', async () => {
    const seen: Seen[] = [];
    const { port, caPem } = await start('self', seen);
    expect(caPem).toContain('BEGIN CERTIFICATE');
    const ok = await post(port, '/v1/changes', '{"volumes":[],"waitSeconds":0}', { ca: caPem ?? '', authorization: 'Bearer t' });
    expect(ok).toMatchObject({ status: 200, body: '{"changed":[]}' });
    expect(seen).toEqual([{ endpoint: 'changes', authorization: 'Bearer t', body: { volumes: [], waitSeconds: 0 } }]);
    expect((await post(port, '/v1/publish', '{}', { ca: caPem ?? '' })).status).toBe(200);
    expect(seen.map((s) => s.endpoint)).toEqual(['changes', 'publish']);
    expect((await post(port, '/v1/publish-batch', '{"volumes":[]}', { ca: caPem ?? '' })).status).toBe(200);
    expect(seen.map((s) => s.endpoint)).toEqual(['changes', 'publish', 'publish-batch']);
    expect((await post(port, '/v1/other', '{}', { ca: caPem ?? '' })).status).toBe(404);
    expect((await post(port, '/v1/publish', '', { ca: caPem ?? '', method: 'GET' })).status).toBe(404);
    expect(JSON.parse((await post(port, '/v1/publish', 'not json', { ca: caPem ?? '' })).body)).toMatchObject({ reason: 'InvalidSpec' });
    expect(seen).toHaveLength(3);
  });

  it('reloads rotated certificate files without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-broker-files-'));
    dirs.push(dir);
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    const first = await selfManagedTls(['localhost'], ['127.0.0.1']);
    writeFileSync(certFile, first.cert);
    writeFileSync(keyFile, first.key);
    const { port } = await start({ certFile, keyFile });
    const before = await post(port, '/v1/changes', '{}');
    expect(before.cert.fingerprint256).toBe(new X509Certificate(first.cert).fingerprint256);

    const second = await selfManagedTls(['localhost'], ['127.0.0.1']);
    writeFileSync(keyFile, second.key);
    writeFileSync(certFile, second.cert);
    const want = new X509Certificate(second.cert).fingerprint256;
    const deadline = Date.now() + 3_000;
    let seen = before.cert.fingerprint256;
    while (seen !== want && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      seen = (await post(port, '/v1/changes', '{}')).cert.fingerprint256;
    }
    expect(seen).toBe(want);
  });

  it('on stop answers held long polls with Connection: close, so a kept-alive plugin connection cannot hold the stop open (ADR 0193)', async () => {
    const served: string[] = [];
    const held = (endpoint: string) => (_authorization: string | undefined, _body: unknown, signal: AbortSignal): Promise<BrokerReply> => {
      served.push(endpoint);
      if (endpoint === 'publish') return Promise.resolve({ status: 200, body: { changed: [] } });
      // A long poll: held until the broker stops.
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => { resolve({ status: 200, body: { changed: [] } }); }, { once: true });
      });
    };
    const server = new BrokerServer({
      host: '127.0.0.1',
      port: 0,
      tls: { kind: 'self-managed', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], caOut: undefined },
      broker: { publish: held('publish'), publishBatch: held('publish'), changes: held('changes'), agentPublish: held('agent-publish'), agentChanges: held('agent-changes') },
      logger: createLogger({ level: 'error', component: 'test', stream: new CapturedOutput() }),
    });
    // The node plugin's client: one kept-alive connection for its publishes and its long polls.
    const agent = new Agent({ keepAlive: true, rejectUnauthorized: false });
    const stop = new AbortController();
    const running = server.start(stop.signal);
    stops.push(async () => {
      agent.destroy();
      stop.abort();
      await running;
    });
    const { port } = await server.address();
    const ask = (path: string): Promise<{ status: number; connection: string | undefined } | string> =>
      new Promise((resolve) => {
        const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent }, (res) => {
          res.resume();
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }); });
        });
        req.on('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? error.message); });
        req.end('{}');
      });
    expect(await ask('/v1/publish')).toEqual({ status: 200, connection: 'keep-alive' });
    const poll = ask('/v1/changes');
    await new Promise<void>((resolve) => { const wait = (): void => { if (served.length === 2) resolve(); else setImmediate(wait); }; wait(); });
    stop.abort();
    expect(await poll).toEqual({ status: 200, connection: 'close' });
    // The stop completes: the connection went with the answer, nothing is served after it.
    await running;
    expect(await ask('/v1/publish')).toBe('ECONNREFUSED');
    expect(served).toEqual(['publish', 'changes']);
  });
});
