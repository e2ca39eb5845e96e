import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { request as httpsRequest } from 'node:https';
import { Registry } from 'prom-client';
import { createLogger } from '../observability/logger.ts';
import { CapturedOutput } from '../observability/captured-output.ts';
import { allow, deny, type AdmissionRequest, type AdmissionReview } from './admission.ts';
import { desiredCaBundle, generateServingTls, sharedCaBundle, splitPemBundle, type ServingTls } from './webhook-tls.ts';
import { createWebhookMetrics } from './webhook.metrics.ts';
import { WebhookServer } from './webhook.server.ts';

function post(port: number, ca: string, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false, ca, servername: 'webhook.test.svc', headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }); });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const review = (request: Partial<AdmissionRequest>): string =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'uid-1', operation: 'CREATE', ...request } });

describe('WebhookServer', () => {
  let tls: ServingTls;
  let server: WebhookServer;
  let port: number;
  let synced = false;
  const registry = new Registry();
  const seen: AdmissionRequest[] = [];

  beforeAll(async () => {
    tls = await generateServingTls({ dnsNames: ['webhook.test.svc'], ipAddresses: ['127.0.0.1'] });
    server = new WebhookServer({
      host: '127.0.0.1',
      port: 0,
      tls,
      ready: () => synced,
      metrics: createWebhookMetrics(registry),
      logger: createLogger({ level: 'error', component: 'webhook', stream: new CapturedOutput() }),
      handlers: {
        mutate: (r) => { seen.push(r); return { outcome: 'patched', patch: [{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }], warnings: [] }; },
        validate: (r) => (r.name === 'bad' ? deny('container x mounts volume y of SecretBinding z, which does not list it', 403, ['w1']) : allow()),
      },
    });
    port = await server.listen();
  });
  afterAll(async () => { await server.close(); });

  it('refuses with a retryable 503 until the binding cache synced', async () => {
    const res = await post(port, tls.caPem ?? '', '/validate', review({}));
    const body = JSON.parse(res.text) as AdmissionReview;
    expect(body.response).toMatchObject({ uid: 'uid-1', allowed: false, status: { code: 503 } });
    synced = true;
  });

  it('answers AdmissionReview v1 on /mutate with a base64 JSON patch, over TLS verified by the CA', async () => {
    const res = await post(port, tls.caPem ?? '', '/mutate', review({ namespace: 'shop' }));
    expect(res.status).toBe(200);
    const body = JSON.parse(res.text) as AdmissionReview;
    expect(body.apiVersion).toBe('admission.k8s.io/v1');
    expect(body.kind).toBe('AdmissionReview');
    expect(body.response?.uid).toBe('uid-1');
    expect(body.response?.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(body.response?.patch ?? '', 'base64').toString('utf8'))).toEqual([{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }]);
    expect(seen.at(-1)?.namespace).toBe('shop');
  });

  it('answers refusals with status and warnings on /validate', async () => {
    const body = JSON.parse((await post(port, tls.caPem ?? '', '/validate', review({ name: 'bad' }))).text) as AdmissionReview;
    expect(body.response).toEqual({
      uid: 'uid-1',
      allowed: false,
      status: { code: 403, message: 'container x mounts volume y of SecretBinding z, which does not list it' },
      warnings: ['w1'],
    });
  });

  it('rejects what is not an AdmissionReview, and unknown paths', async () => {
    expect((await post(port, tls.caPem ?? '', '/validate', '{"kind":"Pod"}')).status).toBe(400);
    expect((await post(port, tls.caPem ?? '', '/validate', 'not json')).status).toBe(400);
    expect((await post(port, tls.caPem ?? '', '/other', review({}))).status).toBe(404);
  });

  it('records latency in seconds with closed labels', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/secretbinder_webhook_admission_duration_seconds_count\{webhook="mutate",outcome="patched"\} [1-9]/);
    expect(text).toMatch(/secretbinder_webhook_admission_duration_seconds_count\{webhook="validate",outcome="denied"\} [1-9]/);
  });

  it('swaps the serving certificate without a restart', async () => {
    const next = await generateServingTls({ dnsNames: ['webhook.test.svc'] });
    server.setTls(next);
    await expect(post(port, tls.caPem ?? '', '/validate', review({}))).rejects.toThrow();
    expect((await post(port, next.caPem ?? '', '/validate', review({}))).status).toBe(200);
  });
});

describe('desiredCaBundle', () => {
  it('puts our CA first, keeps other valid CAs, drops expired ones, and is stable', async () => {
    const now = new Date();
    const [a, b, old] = await Promise.all([
      generateServingTls({ dnsNames: ['a'] }),
      generateServingTls({ dnsNames: ['b'] }),
      generateServingTls({ dnsNames: ['old'], validityDays: 1, now: new Date(now.getTime() - 3 * 86_400_000) }),
    ]);
    const caA = a.caPem ?? '';
    const caB = b.caPem ?? '';
    const first = desiredCaBundle('', caA, now);
    expect(first !== undefined && splitPemBundle(first)).toHaveLength(1);
    expect(desiredCaBundle(first ?? '', caA, now)).toBeUndefined();
    const both = desiredCaBundle(`${first ?? ''}${old.caPem ?? ''}`, caB, now) ?? '';
    expect(splitPemBundle(both).map((p) => p.replace(/\s/g, ''))).toEqual([caB, caA].map((p) => p.replace(/\s/g, '')));
    expect(desiredCaBundle(both, caB, now)).toBeUndefined();
  });
});

describe('sharedCaBundle', () => {
  it("leads with the managed Secret's bundle in its order, keeps other valid CAs after it, drops expired ones, and is stable", async () => {
    const now = new Date();
    const [next, current, replica, old] = await Promise.all([
      generateServingTls({ dnsNames: ['next'] }),
      generateServingTls({ dnsNames: ['current'] }),
      generateServingTls({ dnsNames: ['replica'] }),
      generateServingTls({ dnsNames: ['old'], validityDays: 1, now: new Date(now.getTime() - 3 * 86_400_000) }),
    ]);
    const flat = (pems: string): string[] => splitPemBundle(pems).map((p) => p.replace(/\s/g, ''));
    const secretBundle = `${next.caPem ?? ''}${current.caPem ?? ''}`;
    // A fresh install: exactly the Secret's bundle.
    const fresh = sharedCaBundle('', secretBundle, now) ?? '';
    expect(flat(fresh)).toEqual(flat(secretBundle));
    expect(sharedCaBundle(fresh, secretBundle, now)).toBeUndefined();
    // An upgrade from per-replica CAs: the old replica's CA stays trusted after ours; expired ones go.
    const upgraded = sharedCaBundle(`${replica.caPem ?? ''}${old.caPem ?? ''}${current.caPem ?? ''}`, secretBundle, now) ?? '';
    expect(flat(upgraded)).toEqual(flat(`${secretBundle}${replica.caPem ?? ''}`));
    expect(sharedCaBundle(upgraded, secretBundle, now)).toBeUndefined();
  });
});
