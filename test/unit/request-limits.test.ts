import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { BrokerReply } from '../../src/broker/broker.ts';
import { BrokerServer } from '../../src/broker/broker.server.ts';
import { CapturedOutput } from '../../src/observability/captured-output.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { RequestLimits } from '../../src/runtime/request-limits.ts';
import { mutate } from '../../src/webhook/mutate.ts';
import { validate } from '../../src/webhook/validate.ts';
import { generateServingTls } from '../../src/webhook/webhook-tls.ts';
import { createWebhookMetrics } from '../../src/webhook/webhook.metrics.ts';
import { WebhookServer } from '../../src/webhook/webhook.server.ts';
import { httpRequest, rawExchange } from '../harness/raw-https.ts';

/**
 * The request limits of the broker's and the webhook's HTTPS servers, with short timeouts: a
 * client that sends nothing, trickles its headers or its body (slow-loris) is cut off; a body over
 * the limit gets 413 — declared or streamed — and is not read into memory. The broker's decisions
 * are a stand-in (our own port): these requests never reach them.
 */

const limits: RequestLimits = { maxBodyBytes: 64 * 1024, handshakeTimeoutMs: 400, headersTimeoutMs: 400, requestTimeoutMs: 800 };
/** The safety net of each exchange: far beyond the limits, so a server that never cuts off fails. */
const waitMs = 15_000;

interface Target {
  readonly name: string;
  readonly path: string;
  port: number;
  caPem: string;
}

const broker: Target = { name: 'broker', path: '/v1/publish', port: 0, caPem: '' };
const webhook: Target = { name: 'webhook', path: '/validate', port: 0, caPem: '' };
const stops: (() => Promise<void>)[] = [];
const dir = mkdtempSync(join(tmpdir(), 'sb-limits-'));

beforeAll(async () => {
  const logger = createLogger({ level: 'error', component: 'test', stream: new CapturedOutput() });
  const reply = (): Promise<BrokerReply> => Promise.resolve({ status: 200, body: { changed: [] } });
  const brokerServer = new BrokerServer({
    host: '127.0.0.1',
    port: 0,
    tls: { kind: 'self-managed', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], caOut: join(dir, 'ca.pem') },
    broker: { publish: reply, publishBatch: reply, changes: reply, agentPublish: reply, agentChanges: reply },
    logger,
    limits,
  });
  const stop = new AbortController();
  const running = brokerServer.start(stop.signal);
  stops.push(async () => {
    stop.abort();
    await running;
  });
  broker.port = (await brokerServer.address()).port;
  broker.caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');

  const tls = await generateServingTls({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const lookupBinding = (): undefined => undefined;
  const webhookServer = new WebhookServer({
    host: '127.0.0.1',
    port: 0,
    tls,
    ready: () => true,
    metrics: createWebhookMetrics(new Registry()),
    logger,
    handlers: { mutate: (r) => mutate(r, { lookupBinding, operatorNamespace: 'system' }), validate: (r) => validate(r, lookupBinding) },
    limits,
  });
  webhook.port = await webhookServer.listen();
  webhook.caPem = tls.caPem ?? '';
  stops.push(() => webhookServer.close());
});

afterAll(async () => {
  for (const stop of stops) await stop();
  rmSync(dir, { recursive: true, force: true });
});

describe.each([broker, webhook])('$name server limits', (target) => {
  it('closes a connection that never starts its TLS handshake', async () => {
    const answer = await rawExchange({ port: target.port, caPem: target.caPem, plainTcp: true, waitMs, send: () => Promise.resolve() });
    expect(answer.closedByServer).toBe(true);
  });

  it('cuts off headers trickled a byte at a time', async () => {
    const answer = await rawExchange({
      port: target.port,
      caPem: target.caPem,
      waitMs,
      send: async (io) => {
        for (const byte of httpRequest('POST', target.path, { 'x-filler': 'y'.repeat(200) }).subarray(0, 150)) {
          if (!(await io.write(Buffer.from([byte])))) return;
          await io.pause(50);
        }
      },
    });
    expect(answer.closedByServer).toBe(true);
    expect([undefined, 408]).toContain(answer.status);
  });

  it('cuts off a body trickled a byte at a time', async () => {
    const request = httpRequest('POST', target.path, { 'content-type': 'application/json' }, `{"a":"${'x'.repeat(500)}"}`);
    const headerEnd = request.indexOf('\r\n\r\n') + 4;
    const answer = await rawExchange({
      port: target.port,
      caPem: target.caPem,
      waitMs,
      send: async (io) => {
        if (!(await io.write(request.subarray(0, headerEnd)))) return;
        for (const byte of request.subarray(headerEnd)) {
          if (!(await io.write(Buffer.from([byte])))) return;
          await io.pause(50);
        }
      },
    });
    expect(answer.closedByServer).toBe(true);
    expect([undefined, 408]).toContain(answer.status);
  });

  it('answers 413 to a declared body over the limit without reading it', async () => {
    const answer = await rawExchange({
      port: target.port,
      caPem: target.caPem,
      waitMs,
      send: async (io) => {
        await io.write(httpRequest('POST', target.path, { 'content-length': String(limits.maxBodyBytes + 1) }));
      },
    });
    expect(answer.status).toBe(413);
    expect(answer.closedByServer).toBe(true);
  });

  it('answers 413 to a streamed body over the limit and closes before taking it all', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const answer = await rawExchange({
      port: target.port,
      caPem: target.caPem,
      waitMs,
      send: async (io) => {
        const head = `POST ${target.path} HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n`;
        if (!(await io.write(head))) return;
        for (let sent = 0; sent < total; sent += chunk.byteLength) {
          if (!(await io.write(Buffer.concat([Buffer.from(`${chunk.byteLength.toString(16)}\r\n`), chunk, Buffer.from('\r\n')])))) return;
        }
      },
    });
    expect(answer.status).toBe(413);
    expect(answer.closedByServer).toBe(true);
    // Cut off well before the 64 MiB were sent (what is in flight in socket buffers aside).
    expect(answer.bytesWritten).toBeLessThan(total / 2);
  });
});
