import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import fc from 'fast-check';
import { group, isReason, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { generateSelfManagedTls } from '../../../src/tls/self-managed-tls.ts';
import { freePorts } from '../../harness/backend-tools.ts';
import { startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { registerNeedle } from '../../harness/leak-capture.ts';
import { httpRequest, rawExchange, type RawAnswer } from '../../harness/raw-https.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from '../support/cluster.ts';

/**
 * Fuzz 2 of issue #15 item 7: the broker and the admission webhook of a controller *process*, over
 * real HTTPS, fed malformed JSON, wrong types, random AdmissionReview shapes, odd methods, paths
 * and headers, and bodies over the limit (declared, and streamed 8× past it). Every answer is a
 * clean HTTP error or a well-formed answer (broker: a JSON body with a reason from the closed list;
 * webhook: an AdmissionReview echoing the request's uid), never a 5xx; the process stays up under
 * a bounded heap (`--max-old-space-size`, see {@link heapLimitMiB}); and its heap after the run is
 * within {@link heapGrowthBoundMiB} of before. Slow clients are covered in test/unit/request-limits.test.ts
 * (the production timeouts are seconds long).
 *
 * SECRET_BINDER_FUZZ_HTTP_CASES sets the number of requests (default 300).
 */

const cases = Number(process.env.SECRET_BINDER_FUZZ_HTTP_CASES ?? '300');
/** Requests in flight at once. */
const concurrency = 4;
/**
 * The controller's old-generation heap limit. Idle it uses ~60–90 MiB; a request holds at most
 * its body limit (4 MiB broker, 3 MiB webhook) plus its parsed form (≲ 3×), so `concurrency`
 * requests add ≲ 48 MiB. A server that buffered the 32 MiB streamed bodies would need far more
 * and die of OOM, which the liveness check catches.
 */
const heapLimitMiB = 256;
/** Heap used after the run minus before: what the requests above may hold, plus garbage not yet collected. */
const heapGrowthBoundMiB = 96;

const suffix = randomBytes(3).toString('hex');
const ns = `httpfuzz-${suffix}`;
const sysNs = `httpfuzz-sys-${suffix}`;
const node = `httpfuzz-node-${suffix}`;

let kc: KubeConfig;
let controller: ControllerProcess;
let brokerPort = 0;
let brokerCa = '';
let webhookPort = 0;
let webhookCa = '';
let callerToken = '';
let tmp = '';

async function heapUsedBytes(): Promise<number> {
  return controller.metric('nodejs_heap_size_used_bytes');
}

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCrds(kc);
  const core = kc.makeApiClient(CoreV1Api);
  tmp = mkdtempSync(join(tmpdir(), 'sb-httpfuzz-'));
  for (const name of [ns, sysNs]) await core.createNamespace({ body: { metadata: { name } } });
  await core.createNode({ body: { metadata: { name: node } } });
  await core.createNamespacedServiceAccount({ namespace: sysNs, body: { metadata: { name: 'node-plugin' } } });
  const pluginPod = await core.createNamespacedPod({
    namespace: sysNs,
    body: { metadata: { name: 'node-plugin' }, spec: { nodeName: node, serviceAccountName: 'node-plugin', automountServiceAccountToken: false, containers: [{ name: 'plugin', image: 'busybox' }] } },
  });
  // The node plugin's own token: the fuzz reaches past authentication into request validation.
  const answer = await core.createNamespacedServiceAccountToken({
    namespace: sysNs,
    name: 'node-plugin',
    body: { spec: { audiences: ['secretbinder.dev'], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'node-plugin', uid: pluginPod.metadata?.uid ?? '' } } },
  });
  callerToken = answer.status?.token ?? '';
  registerNeedle(callerToken, 'http fuzz node-plugin token');
  await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group, version, plural: resources.SecretBinding.plural, namespace: ns,
    body: { apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name: 'db' }, spec: { backendRef: { name: 'none' }, podSelector: {}, containers: ['app'], files: [{ path: 'password', key: 'app/db' }] } },
  });

  const webhookTls = await generateSelfManagedTls({ caName: 'httpfuzz-webhook-ca', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  writeFileSync(join(tmp, 'webhook.crt'), webhookTls.certPem);
  writeFileSync(join(tmp, 'webhook.key'), webhookTls.keyPem, { mode: 0o600 });
  webhookCa = webhookTls.caPem;
  brokerPort = await freePorts(1);
  webhookPort = await freePorts(1);
  while (webhookPort === brokerPort) webhookPort = await freePorts(1);
  controller = startController(currentWorld(), {
    identity: `httpfuzz-${suffix}`,
    watchNamespaces: [ns],
    leaseName: `httpfuzz-${suffix}`,
    leaderElect: false,
    namespace: sysNs,
    nodeOptions: [`--max-old-space-size=${String(heapLimitMiB)}`],
    extraArgs: [
      '--broker-address', `127.0.0.1:${String(brokerPort)}`,
      '--broker-ca-out', join(tmp, 'broker-ca.pem'),
      '--broker-dns-names', 'localhost,127.0.0.1',
      '--node-plugin-service-account', `${sysNs}:node-plugin`,
      '--webhook-address', `127.0.0.1:${String(webhookPort)}`,
      '--webhook-cert-file', join(tmp, 'webhook.crt'),
      '--webhook-key-file', join(tmp, 'webhook.key'),
    ],
  });
  await controller.healthPort();
  brokerCa = await eventually('broker CA written', () => {
    try {
      return Promise.resolve(readFileSync(join(tmp, 'broker-ca.pem'), 'utf8') || undefined);
    } catch {
      return Promise.resolve(undefined);
    }
  });
  // The webhook answers reviews once its binding cache synced (503 before).
  await eventually('webhook ready', async () => {
    const a = await rawExchange({ port: webhookPort, caPem: webhookCa, waitMs: 5000, send: async (io) => { await io.write(httpRequest('POST', '/validate', { 'content-type': 'application/json' }, JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', operation: 'CREATE' } }))); } });
    return a.status === 200 && !a.body.includes('"code":503') ? true : undefined;
  }, 60_000);
});

afterAll(async () => {
  await controller.stop();
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [ns, sysNs]) await core.deleteNamespace({ name }).catch(() => undefined);
  await core.deleteNode({ name: node }).catch(() => undefined);
  rmSync(tmp, { recursive: true, force: true });
});

// --- arbitraries -------------------------------------------------------------------------------

const name = fc.oneof(fc.constantFrom('db', 'node-plugin', 'web', ''), fc.string({ maxLength: 300 }));
const stringish = fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]));
const nearPublish = fc.record(
  {
    volumeId: fc.oneof(fc.string({ maxLength: 600 }), stringish),
    pod: fc.oneof(fc.record({ namespace: fc.oneof(fc.constant(ns), name), name, uid: fc.oneof(fc.uuid(), stringish), serviceAccountName: name }, { requiredKeys: [] }), stringish),
    binding: fc.oneof(fc.constant('db'), name, stringish),
    podToken: fc.oneof(fc.constant('not-a-token'), fc.string({ maxLength: 100 }), stringish),
  },
  { requiredKeys: [] },
);
const nearChanges = fc.record(
  {
    volumes: fc.oneof(
      fc.array(fc.record({ volumeId: fc.string({ maxLength: 20 }), namespace: fc.constant(ns), binding: fc.constant('db'), contentHash: fc.string({ maxLength: 20 }), pod: fc.record({ name, uid: fc.uuid() }) }, { requiredKeys: [] }), { maxLength: 5 }),
      stringish,
    ),
    // Never a long wait: the broker holds a valid changes request up to this many seconds.
    waitSeconds: fc.oneof(fc.constant(0), fc.constant(-1), stringish.filter((v) => typeof v !== 'number')),
  },
  { requiredKeys: [] },
);
const brokerBody = fc.oneof(
  { arbitrary: nearPublish.map((v) => JSON.stringify(v)), weight: 4 },
  { arbitrary: nearChanges.map((v) => JSON.stringify(v)), weight: 3 },
  { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)), weight: 2 },
  { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
  { arbitrary: fc.constantFrom('{', '{"volumeId":', '[1,2', 'null', '""', '\u0000\u0001', '{"a":1}garbage'), weight: 1 },
);

const podArb = fc.record(
  {
    apiVersion: fc.constantFrom('v1', 'x'),
    kind: fc.oneof(fc.constant('Pod'), fc.constant(undefined), fc.string({ maxLength: 8 })),
    metadata: fc.oneof(
      fc.record(
        {
          name: name,
          namespace: fc.constant(ns),
          labels: fc.oneof(fc.constant({ 'secretbinder.dev/inject': 'true' }), fc.dictionary(fc.string({ maxLength: 10 }), stringish, { maxKeys: 3 })),
          annotations: fc.oneof(fc.constant({ 'secretbinder.dev/binding': 'db' }), fc.dictionary(fc.constantFrom('secretbinder.dev/binding', 'secretbinder.dev/containers', 'secretbinder.dev/mount-path', 'x'), stringish, { maxKeys: 3 })),
        },
        { requiredKeys: [] },
      ),
      stringish,
    ),
    spec: fc.oneof(
      fc.record(
        {
          containers: fc.oneof(fc.array(fc.record({ name: fc.oneof(fc.constant('app'), name), volumeMounts: fc.oneof(fc.array(fc.record({ name: fc.constantFrom('secrets', 'x'), mountPath: fc.constantFrom('/s', ''), subPath: fc.string({ maxLength: 4 }) }, { requiredKeys: [] }), { maxLength: 3 }), stringish) }, { requiredKeys: [] }), { maxLength: 3 }), stringish),
          initContainers: fc.oneof(fc.constant(undefined), fc.array(fc.record({ name, volumeMounts: stringish }, { requiredKeys: [] }), { maxLength: 2 })),
          ephemeralContainers: fc.oneof(fc.constant(undefined), fc.array(fc.record({ name, volumeMounts: stringish }, { requiredKeys: [] }), { maxLength: 2 })),
          volumes: fc.oneof(fc.array(fc.record({ name: fc.constantFrom('secrets', 'x'), csi: fc.oneof(fc.record({ driver: fc.constantFrom('secretbinder.dev', 'other'), volumeAttributes: fc.oneof(fc.constant({ binding: 'db' }), fc.dictionary(fc.string({ maxLength: 8 }), stringish, { maxKeys: 2 })) }, { requiredKeys: [] }), stringish) }, { requiredKeys: [] }), { maxLength: 3 }), stringish),
          serviceAccountName: name,
        },
        { requiredKeys: [] },
      ),
      stringish,
    ),
  },
  { requiredKeys: [] },
);
const admissionRequest = fc.record(
  {
    uid: fc.oneof({ arbitrary: fc.uuid(), weight: 9 }, { arbitrary: stringish, weight: 1 }),
    kind: fc.oneof(fc.constant({ group: '', version: 'v1', kind: 'Pod' }), stringish),
    resource: fc.oneof(fc.constant({ group: '', version: 'v1', resource: 'pods' }), fc.record({ group: stringish, resource: stringish }, { requiredKeys: [] }), stringish),
    subResource: fc.oneof(fc.constant(undefined), fc.constant('ephemeralcontainers'), fc.constant('status'), stringish),
    namespace: fc.oneof(fc.constant(ns), fc.constantFrom('kube-system', ''), stringish),
    name: fc.oneof(name, stringish),
    operation: fc.oneof(fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'), stringish),
    object: fc.oneof({ arbitrary: podArb, weight: 4 }, { arbitrary: fc.anything({ maxDepth: 3 }), weight: 1 }),
    oldObject: fc.oneof(fc.constant(undefined), podArb, stringish),
    dryRun: fc.oneof(fc.boolean(), stringish),
  },
  { requiredKeys: ['uid'] },
);
const webhookBody = fc.oneof(
  { arbitrary: fc.record({ apiVersion: fc.oneof({ arbitrary: fc.constant('admission.k8s.io/v1'), weight: 9 }, { arbitrary: stringish, weight: 1 }), kind: fc.oneof({ arbitrary: fc.constant('AdmissionReview'), weight: 9 }, { arbitrary: stringish, weight: 1 }), request: fc.oneof({ arbitrary: admissionRequest, weight: 5 }, { arbitrary: fc.anything({ maxDepth: 2 }), weight: 1 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)), weight: 8 },
  { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)), weight: 1 },
  { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
);

interface HttpCase {
  readonly target: 'broker' | 'webhook';
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly oversize: 'none' | 'declared' | 'streamed';
}

const headerValue = fc.oneof(fc.constant('application/json'), fc.constant('text/plain'), fc.string({ maxLength: 30 }));
const authorization = fc.oneof(
  { arbitrary: fc.constant('valid'), weight: 5 },
  { arbitrary: fc.constant('none'), weight: 1 },
  { arbitrary: fc.constantFrom('Bearer not-a-token', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer x y'), weight: 2 },
  { arbitrary: fc.string({ maxLength: 60 }), weight: 1 },
);
const httpCase: fc.Arbitrary<HttpCase> = fc.oneof(
  fc.record({
    target: fc.constant('broker' as const),
    method: fc.oneof({ arbitrary: fc.constant('POST'), weight: 8 }, { arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'OPTIONS'), weight: 1 }),
    path: fc.oneof({ arbitrary: fc.constantFrom('/v1/publish', '/v1/changes'), weight: 8 }, { arbitrary: fc.constantFrom('/', '/v1', '/v1/publish/', '/v1/changes?x=1', '/metrics'), weight: 1 }),
    auth: authorization,
    contentType: headerValue,
    body: brokerBody,
    oversize: fc.oneof({ arbitrary: fc.constant('none' as const), weight: 30 }, { arbitrary: fc.constantFrom('declared' as const, 'streamed' as const), weight: 1 }),
  }).map(({ auth, contentType, ...rest }) => ({
    ...rest,
    headers: { 'content-type': contentType, ...(auth === 'none' ? {} : { authorization: auth === 'valid' ? `Bearer ${callerToken}` : auth }) },
  })),
  fc.record({
    target: fc.constant('webhook' as const),
    method: fc.oneof({ arbitrary: fc.constant('POST'), weight: 8 }, { arbitrary: fc.constantFrom('GET', 'PUT'), weight: 1 }),
    path: fc.oneof({ arbitrary: fc.constantFrom('/mutate', '/validate', '/mutate?timeout=10s'), weight: 8 }, { arbitrary: fc.constantFrom('/', '/healthz', '/mutate/x'), weight: 1 }),
    contentType: headerValue,
    body: webhookBody,
    oversize: fc.oneof({ arbitrary: fc.constant('none' as const), weight: 30 }, { arbitrary: fc.constantFrom('declared' as const, 'streamed' as const), weight: 1 }),
  }).map(({ contentType, ...rest }) => ({ ...rest, headers: { 'content-type': contentType } })),
);

/** Header values go on the wire as they are; a value the HTTP parser refuses gets Node's 400. */
function send(c: HttpCase): Promise<RawAnswer> {
  const port = c.target === 'broker' ? brokerPort : webhookPort;
  const caPem = c.target === 'broker' ? brokerCa : webhookCa;
  const limit = c.target === 'broker' ? 4 * 1024 * 1024 : 3 * 1024 * 1024;
  return rawExchange({
    port,
    caPem,
    waitMs: 20_000,
    send: async (io) => {
      if (c.oversize === 'none') {
        await io.write(httpRequest(c.method, c.path, c.headers, c.body));
        return;
      }
      if (c.oversize === 'declared') {
        await io.write(httpRequest(c.method, c.path, { ...c.headers, 'content-length': String(limit + 1 + c.body.length) }));
        return;
      }
      // Streamed: chunked, 8× the limit, unless the server cuts us off first.
      const head = Object.entries({ ...c.headers, 'transfer-encoding': 'chunked', connection: 'close' }).map(([k, v]) => `${k}: ${v}`).join('\r\n');
      if (!(await io.write(`${c.method} ${c.path} HTTP/1.1\r\nhost: localhost\r\n${head}\r\n\r\n`))) return;
      const chunk = Buffer.alloc(256 * 1024, ' ');
      const framed = Buffer.concat([Buffer.from(`${chunk.byteLength.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
      for (let sent = 0; sent < 8 * limit; sent += chunk.byteLength) if (!(await io.write(framed))) return;
      await io.write('0\r\n\r\n');
    },
  });
}

/** What a clean answer is; returns a problem or undefined. */
function judge(c: HttpCase, a: RawAnswer): string | undefined {
  const limit = c.target === 'broker' ? 4 * 1024 * 1024 : 3 * 1024 * 1024;
  if (c.oversize === 'streamed') {
    // The server answers (413, or 404 for a wrong path) and closes while the client still sends:
    // the answer can be lost to the reset that closing an unread socket sends (Node does no
    // lingering close). What must hold is that the server cut the stream off before its end (what
    // it drops meanwhile costs it no memory: the heap bound below says so).
    if (!a.closedByServer) return 'oversized stream not cut off';
    if (a.bytesWritten >= 8 * limit) return `oversized stream read to its end (${String(a.bytesWritten)} bytes)`;
    if (a.status === undefined) return undefined;
  }
  if (a.status === undefined) return 'no HTTP answer';
  if (a.status >= 500) return `server error ${String(a.status)}: ${a.body.slice(0, 300)}`;
  if (c.oversize !== 'none' && a.status !== 413 && a.status !== 404 && a.status !== 400) return `oversized body answered ${String(a.status)}`;
  // Node's own parser refusals (bad header bytes) carry no body of ours.
  const ours = a.headers['content-type']?.startsWith('application/json') === true;
  if (c.target === 'broker' && ours) {
    const body = JSON.parse(a.body) as { reason?: unknown };
    if (a.status !== 200 && (typeof body.reason !== 'string' || !isReason(body.reason))) return `broker refusal without a reason of the closed list: ${a.body.slice(0, 300)}`;
  }
  if (c.target === 'webhook' && a.status === 200 && ours) {
    const review = JSON.parse(a.body) as { apiVersion?: unknown; kind?: unknown; response?: { uid?: unknown; allowed?: unknown } };
    const sent = (JSON.parse(c.body) as { request?: { uid?: unknown } }).request?.uid;
    if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview') return `not an AdmissionReview: ${a.body.slice(0, 300)}`;
    if (review.response?.uid !== sent || typeof review.response?.allowed !== 'boolean') return `response does not answer uid ${JSON.stringify(sent)}: ${a.body.slice(0, 300)}`;
  }
  if (![200, 400, 401, 403, 404, 413, 431].includes(a.status)) return `unexpected status ${String(a.status)}: ${a.body.slice(0, 300)}`;
  return undefined;
}

describe('broker and webhook of a controller process under fuzzed HTTPS requests', () => {
  it(`answer ${String(cases)} malformed, mistyped, oversized and random requests cleanly, and stay up with a bounded heap`, async () => {
    const statuses: Record<string, number> = {};
    const before = await heapUsedBytes();
    await fc.assert(
      fc.asyncProperty(fc.array(httpCase, { minLength: concurrency, maxLength: concurrency }), async (batch) => {
        const answers = await Promise.all(batch.map(send));
        batch.forEach((c, i) => {
          const a = answers[i] as RawAnswer;
          const key = `${c.target} ${String(a.status)}`;
          statuses[key] = (statuses[key] ?? 0) + 1;
          const problem = judge(c, a);
          if (problem !== undefined) throw new Error(`${c.method} ${c.target} ${c.path} (${c.oversize}) ${JSON.stringify(c.headers).slice(0, 200)} ${c.body.slice(0, 300)} → ${problem}`);
        });
        if (!controller.alive()) throw new Error(`the controller died:\n${controller.log().slice(-3000)}`);
      }),
      // A failure is shrunk for at most five minutes (each run talks to a real process).
      { numRuns: Math.ceil(cases / concurrency), interruptAfterTimeLimit: 300_000, ...(process.env.SECRET_BINDER_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.SECRET_BINDER_FUZZ_SEED) }) },
    );
    // Let garbage of the last requests go before the second reading (no timing is asserted).
    await sleep(1000);
    const after = await heapUsedBytes();
    process.stdout.write(`http fuzz: ${String(cases)} requests; answers ${JSON.stringify(statuses)}; heap used ${(before / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MiB (limit ${String(heapLimitMiB)} MiB)\n`);
    expect(controller.alive()).toBe(true);
    expect((after - before) / 2 ** 20).toBeLessThan(heapGrowthBoundMiB);
    // Both servers and both halves (refusals and answers) were exercised.
    expect(Object.keys(statuses).some((k) => k.startsWith('broker 4'))).toBe(true);
    expect(Object.keys(statuses).some((k) => k.startsWith('webhook 200'))).toBe(true);
    // No handler threw: an admission or broker failure would be logged at error level.
    const errors = controller.log().split('\n').filter((l) => l.includes('"level":"error"'));
    expect(errors).toEqual([]);
  }, 600_000);
});
