import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, V1MicroTime, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import type { ChangesAnswer, PublishAnswer, PublishRequest } from '../../../src/broker/broker.protocol.ts';
import type { Operator } from '../../../src/controllers/operator.ts';
import { createAuditLog, type AuditLog } from '../../../src/observability/audit.ts';
import { CapturedOutput } from '../../../src/observability/captured-output.ts';
import { registerNeedle } from '../../harness/leak-capture.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from '../support/cluster.ts';
import { buildInProcessController } from '../support/in-process-controller.ts';

/**
 * The broker in-process (built by buildOperator, like main.ts does) against the real API server
 * and OpenBao, called over HTTPS the way the node plugin calls it: with the plugin's token bound
 * to its pod on a node, and the app pod's token. Every refusal is checked to be audited, and no
 * value or token may reach the log, the audit stream, Events or status.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `brk-${suffix}`;
const otherNs = `brk-other-${suffix}`;
const systemNs = `brk-sys-${suffix}`;
const nodeX = `brk-x-${suffix}`;
const nodeY = `brk-y-${suffix}`;
const driver = 'secretbinder.dev';
const markers = {
  password: `marker-password-${randomBytes(6).toString('hex')}`,
  apiKey: `marker-apikey-${randomBytes(6).toString('hex')}`,
  shared: `marker-shared-${randomBytes(6).toString('hex')}`,
  rotated1: `marker-rotated1-${randomBytes(6).toString('hex')}`,
  rotated2: `marker-rotated2-${randomBytes(6).toString('hex')}`,
  rotated3: `marker-rotated3-${randomBytes(6).toString('hex')}`,
};
/** Every token minted by this suite: none may appear in any output. */
const tokens: string[] = [];

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let brokerUrl: URL;
let caPem: string;
let tmp: string;
let hmacKey: string;
let main: Replica;
const replicas: Replica[] = [];
const logOut = new CapturedOutput();
const auditOut = new CapturedOutput();
let audit: AuditLog;
const pods = new Map<string, V1Pod>();
const registry = new Registry();
const pluginTokens = new Map<string, string>();

// --- objects --------------------------------------------------------------------------------------

async function createPod(
  namespace: string,
  name: string,
  options: { node: string; labels?: Record<string, string>; serviceAccount?: string; binding?: string; mounts?: { containers: string[]; init?: string[] } },
): Promise<V1Pod> {
  const binding = options.binding ?? 'web';
  const mountingContainers = new Set(options.mounts?.containers ?? ['app']);
  const mount = [{ name: 'secrets', mountPath: '/secrets', readOnly: true }];
  const containerNames = [...new Set(['app', ...mountingContainers])];
  const pod = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: options.labels ?? { app: 'web' } },
      spec: {
        nodeName: options.node,
        serviceAccountName: options.serviceAccount ?? 'web',
        automountServiceAccountToken: false,
        initContainers: (options.mounts?.init ?? []).map((c) => ({ name: c, image: 'busybox', volumeMounts: mount })),
        containers: containerNames.map((c) => ({ name: c, image: 'busybox', ...(mountingContainers.has(c) ? { volumeMounts: mount } : {}) })),
        volumes: [{ name: 'secrets', csi: { driver, readOnly: true, volumeAttributes: { binding } } }],
      },
    },
  });
  pods.set(`${namespace}/${name}`, pod);
  return pod;
}

async function podToken(pod: V1Pod, audience = driver): Promise<string> {
  const answer = await core.createNamespacedServiceAccountToken({
    namespace: pod.metadata?.namespace ?? '',
    name: pod.spec?.serviceAccountName ?? '',
    body: {
      spec: {
        audiences: [audience],
        expirationSeconds: 600,
        boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' },
      },
    },
  });
  const token = answer.status?.token ?? '';
  registerNeedle(token, `pod token ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`);
  tokens.push(token);
  return token;
}

function publishRequest(pod: V1Pod, token: string, binding = 'web'): PublishRequest {
  return {
    volumeId: `csi-${pod.metadata?.uid ?? ''}`,
    pod: {
      namespace: pod.metadata?.namespace ?? '',
      name: pod.metadata?.name ?? '',
      uid: pod.metadata?.uid ?? '',
      serviceAccountName: pod.spec?.serviceAccountName ?? '',
    },
    binding,
    podToken: token,
  };
}

function binding(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name }, spec };
}

// --- controller replicas, in-process ----------------------------------------------------------

interface Replica {
  readonly operator: Operator;
  readonly url: URL;
  readonly caPem: string;
  stop(): Promise<void>;
}

/**
 * A controller replica built like main.ts builds it, with the broker on a loopback port and a
 * self-managed certificate. With `lease`, it runs leader election on that Lease (tests hold the
 * Lease for someone else, so the replica never leads: no reconciler, broker only).
 */
async function startReplica(name: string, metrics: Registry, lease?: string): Promise<Replica> {
  const { operator, caPath: caOut } = buildInProcessController({
    dir: tmp,
    name,
    identity: `broker-test-${name}-${suffix}`,
    namespace: systemNs,
    watchNamespaces: [ns, otherNs],
    nodePluginServiceAccount: `${systemNs}:node-plugin`,
    ...(lease === undefined ? {} : { lease }),
    hmacKeyPath: hmacKey,
    kubeConfig: kc,
    log: { stream: logOut, level: 'debug' },
    registry: metrics,
    audit,
  });
  const stop = new AbortController();
  const running = operator.manager.run(stop.signal);
  const broker = operator.broker;
  if (broker === undefined) throw new Error('the broker is not enabled');
  const address = await broker.address();
  const replica: Replica = {
    operator,
    url: new URL(`https://127.0.0.1:${address.port}`),
    caPem: readFileSync(caOut, 'utf8'),
    stop: async () => {
      stop.abort();
      await running;
      await operator.close();
    },
  };
  replicas.push(replica);
  return replica;
}

// --- the broker over HTTPS ------------------------------------------------------------------------

interface Reply<T> {
  readonly status: number;
  readonly body: T;
}

function call<T>(path: string, callerToken: string | undefined, body: unknown, target: { url: URL; caPem: string } = { url: brokerUrl, caPem }): Promise<Reply<T>> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, target.url),
      {
        method: 'POST',
        ca: target.caPem,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          ...(callerToken === undefined ? {} : { authorization: `Bearer ${callerToken}` }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const publish = (callerToken: string | undefined, body: unknown, target?: { url: URL; caPem: string }): Promise<Reply<PublishAnswer & { reason?: string; message?: string }>> =>
  call('/v1/publish', callerToken, body, target);

async function auditEvents(): Promise<Record<string, unknown>[]> {
  return (await auditOut.lines()).filter((l) => l['audit'] === true);
}

/** Asserts a refusal with `status` and `reason`, and that exactly one new `denied` audit line says so. */
async function expectDenied(reply: Reply<{ reason?: string; message?: string }>, status: number, reason: string, podName?: string, detail?: RegExp): Promise<void> {
  expect({ status: reply.status, reason: reply.body.reason }).toEqual({ status, reason });
  if (detail !== undefined) expect(reply.body.message).toMatch(detail);
  const denied = (await auditEvents()).filter((e) => e['event'] === 'denied' && e['reason'] === reason);
  const matching = podName === undefined ? denied : denied.filter((e) => (e['pod'] as { name?: string } | undefined)?.name === podName);
  expect(matching.length).toBeGreaterThan(0);
}

// --- setup ----------------------------------------------------------------------------------------

describe('broker against a real API server and OpenBao', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await installCrds(kc);
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    tmp = mkdtempSync(join(tmpdir(), 'sb-broker-test-'));

    for (const name of [ns, otherNs, systemNs]) await core.createNamespace({ body: { metadata: { name, labels: { 'brk-test': suffix } } } });
    for (const name of [nodeX, nodeY]) await core.createNode({ body: { metadata: { name } } });
    for (const [namespace, sa] of [[systemNs, 'node-plugin'], [systemNs, 'impostor'], [ns, 'web'], [ns, 'other'], [otherNs, 'web']] as const) {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: sa } } });
    }

    await writeKvSecret(bao, `brk-${suffix}/db`, { username: 'app', password: markers.password });
    await writeKvSecret(bao, `brk-${suffix}/api`, { key: markers.apiKey });
    await writeKvSecret(bao, `shared-${suffix}/smtp`, { password: markers.shared });
    await writeKvSecret(bao, `brk-${suffix}/rotating`, { value: markers.rotated1 });
    tokens.push(bao.rootToken);
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
    await core.createNamespacedSecret({ namespace: systemNs, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
    const vault = (secretName: string): Record<string, unknown> => ({
      address: bao.address,
      mount: bao.kvMount,
      kvVersion: 2,
      auth: { token: { secretRef: { name: secretName, key: 'token' } } },
    });
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: ns,
      body: { apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'openbao' }, spec: { vault: vault('openbao-token') } },
    });
    // Cluster-wide: only namespace `otherNs` may use it, and only keys under shared-<suffix>/.
    await custom.createClusterCustomObject({
      group, version, plural: resources.ClusterSecretBackend.plural,
      body: {
        apiVersion: `${group}/${version}`, kind: 'ClusterSecretBackend', metadata: { name: `brk-${suffix}` },
        spec: {
          vault: vault('openbao-token'),
          access: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': otherNs } }, keyPrefixes: [`shared-${suffix}/`] }],
        },
      },
    });
    const create = (namespace: string, body: Record<string, unknown>): Promise<unknown> =>
      custom.createNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace, body });
    await create(ns, binding('web', {
      backendRef: { kind: 'SecretBackend', name: 'openbao' },
      podSelector: { matchLabels: { app: 'web' } },
      serviceAccountNames: ['web'],
      containers: ['app', 'setup'],
      files: [
        { path: 'db-password', key: `brk-${suffix}/db`, property: 'password', mode: 0o440 },
        { path: 'config/app.env', format: 'dotenv', mode: 0o400, items: [{ name: 'API_KEY', key: `brk-${suffix}/api`, property: 'key' }, { name: 'DB_USER', key: `brk-${suffix}/db`, property: 'username' }] },
      ],
    }));
    await create(ns, binding('rotating', {
      backendRef: { kind: 'SecretBackend', name: 'openbao' },
      podSelector: { matchLabels: { app: 'web' } },
      containers: ['app'],
      refreshInterval: '10s',
      files: [{ path: 'value', key: `brk-${suffix}/rotating`, property: 'value' }],
    }));
    await create(ns, binding('cluster-denied', {
      backendRef: { kind: 'ClusterSecretBackend', name: `brk-${suffix}` },
      podSelector: { matchLabels: { app: 'web' } },
      containers: ['app'],
      files: [{ path: 'smtp', key: `shared-${suffix}/smtp`, property: 'password' }],
    }));
    await create(otherNs, binding('outside-prefix', {
      backendRef: { kind: 'ClusterSecretBackend', name: `brk-${suffix}` },
      podSelector: { matchLabels: { app: 'web' } },
      containers: ['app'],
      files: [{ path: 'db', key: `brk-${suffix}/db`, property: 'password' }],
    }));
    await create(otherNs, binding('shared', {
      backendRef: { kind: 'ClusterSecretBackend', name: `brk-${suffix}` },
      podSelector: { matchLabels: { app: 'web' } },
      containers: ['app'],
      files: [{ path: 'smtp', key: `shared-${suffix}/smtp`, property: 'password' }],
    }));

    // The node plugin's pods (one per node) and the tokens the kubelet would give them.
    for (const [name, node] of [['plugin-x', nodeX], ['plugin-y', nodeY]] as const) {
      const pod = await createPod(systemNs, name, { node, labels: { app: 'node-plugin' }, serviceAccount: 'node-plugin' });
      pluginTokens.set(node, await podToken(pod));
    }

    hmacKey = join(tmp, 'hmac.key');
    writeFileSync(hmacKey, randomBytes(32), { mode: 0o600 });
    audit = createAuditLog({ destination: { kind: 'stream', stream: auditOut } });
    main = await startReplica('main', registry);
    brokerUrl = main.url;
    caPem = main.caPem;
    // Served once the binding has been reconciled (its status carries the content HMAC).
    await eventually('binding web resolved', async () => {
      const b = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name: 'web' })) as {
        status?: { contentHmac?: string };
      };
      return b.status?.contentHmac;
    });
  }, 90_000);

  afterAll(async () => {
    for (const replica of replicas) await replica.stop();
    await audit.close();
    for (const name of [ns, otherNs, systemNs]) await core.deleteNamespace({ name }).catch(() => undefined);
    for (const name of [nodeX, nodeY]) await core.deleteNode({ name }).catch(() => undefined);
    await custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name: `brk-${suffix}` }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  // --- delivery -----------------------------------------------------------------------------------

  it('serves a pod that matches the binding exactly its declared files, modes and contents, and audits it', async () => {
    const pod = await createPod(ns, 'app-a', { node: nodeX, mounts: { containers: ['app'], init: ['setup'] } });
    const reply = await publish(pluginTokens.get(nodeX), publishRequest(pod, await podToken(pod)));
    expect(reply.status).toBe(200);
    const files = reply.body.files.map((f) => ({ path: f.path, mode: f.mode, content: Buffer.from(f.contentBase64, 'base64').toString('utf8') }));
    expect(files).toEqual([
      { path: 'db-password', mode: 0o440, content: markers.password },
      { path: 'config/app.env', mode: 0o400, content: `API_KEY="${markers.apiKey}"\nDB_USER="app"\n` },
    ]);
    expect(reply.body.volumeId).toBe(`csi-${pod.metadata?.uid ?? ''}`);
    expect(reply.body.contentHash).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);

    const delivered = (await auditEvents()).filter((e) => e['event'] === 'delivered');
    expect(delivered).toEqual([
      expect.objectContaining({
        binding: { namespace: ns, name: 'web' },
        pod: { namespace: ns, name: 'app-a', uid: pod.metadata?.uid },
        node: nodeX,
        containers: ['app', 'setup'],
        paths: ['db-password', 'config/app.env'],
        contentHmac: reply.body.contentHash,
        via: 'csi',
      }),
    ]);
    expect(Object.keys(delivered[0]?.['backendVersions'] as object).sort()).toEqual([`brk-${suffix}/api`, `brk-${suffix}/db`]);
  });

  // --- identity -----------------------------------------------------------------------------------

  it('refuses callers without a valid node-plugin token', async () => {
    const pod = await createPod(ns, 'app-caller', { node: nodeX });
    const body = publishRequest(pod, await podToken(pod));
    await expectDenied(await publish(undefined, body), 401, 'Unauthenticated');
    // The pod's own token is valid but is not the node plugin's.
    await expectDenied(await publish(body.podToken, body), 403, 'Unauthenticated');
    // A service account of the plugin's namespace that is not the plugin.
    const impostor = await createPod(systemNs, 'impostor', { node: nodeX, serviceAccount: 'impostor', labels: { app: 'impostor' } });
    await expectDenied(await publish(await podToken(impostor), body), 403, 'Unauthenticated', undefined, /is not the node plugin/);
    // The plugin's token for another audience (the API server's).
    const wrongAudience = await podToken(pods.get(`${systemNs}/plugin-x`) as V1Pod, currentWorld().kube.serviceAccountIssuer);
    await expectDenied(await publish(wrongAudience, body), 401, 'Unauthenticated', undefined, /caller token refused/);
  });

  it('refuses a pod token with the wrong audience', async () => {
    const pod = await createPod(ns, 'app-aud', { node: nodeX });
    const token = await podToken(pod, currentWorld().kube.serviceAccountIssuer);
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(pod, token)), 401, 'Unauthenticated', 'app-aud', /pod token refused/);
  });

  it("refuses pod A's token asking for pod B", async () => {
    const a = await createPod(ns, 'app-token-a', { node: nodeX });
    const b = await createPod(ns, 'app-token-b', { node: nodeX });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(b, await podToken(a))), 403, 'IdentityMismatch', 'app-token-b', /another pod/);
  });

  it('refuses the node plugin of node Y asking for a pod on node X', async () => {
    const pod = await createPod(ns, 'app-on-x', { node: nodeX });
    await expectDenied(await publish(pluginTokens.get(nodeY), publishRequest(pod, await podToken(pod))), 403, 'IdentityMismatch', 'app-on-x', /not on the caller's node/);
  });

  it('refuses a pod deleted and recreated under the same name (uid mismatch), and a token whose pod is gone', async () => {
    const first = await createPod(ns, 'app-reborn', { node: nodeX });
    const oldToken = await podToken(first);
    await core.deleteNamespacedPod({ namespace: ns, name: 'app-reborn', gracePeriodSeconds: 0 });
    await eventually('pod deleted', async () => ((await core.listNamespacedPod({ namespace: ns, fieldSelector: 'metadata.name=app-reborn' })).items.length === 0 ? true : undefined));
    const second = await createPod(ns, 'app-reborn', { node: nodeX });
    expect(second.metadata?.uid).not.toBe(first.metadata?.uid);
    const plugin = pluginTokens.get(nodeX);
    // The old token, for the old uid: TokenReview refuses a token whose bound pod is gone. This is
    // also how expiry is enforced: the broker never accepts a token TokenReview does not.
    await expectDenied(await publish(plugin, publishRequest(first, oldToken)), 401, 'Unauthenticated', 'app-reborn', /pod token refused/);
    // The old token presented for the new pod.
    await expectDenied(await publish(plugin, publishRequest(second, oldToken)), 401, 'Unauthenticated', 'app-reborn', /pod token refused/);
    // The new pod's token, but the request names the old uid.
    await expectDenied(await publish(plugin, publishRequest(first, await podToken(second))), 403, 'IdentityMismatch', 'app-reborn', /another pod/);
    // And the new pod with its own token is served.
    expect((await publish(plugin, publishRequest(second, await podToken(second)))).status).toBe(200);
  });

  it('refuses a token it served before once its pod is gone or replaced (a remembered review proves no live pod)', async () => {
    const first = await createPod(ns, 'app-served', { node: nodeX });
    const oldToken = await podToken(first);
    const plugin = pluginTokens.get(nodeX);
    // Served: the broker remembers this review for a while (ADR 0130).
    expect((await publish(plugin, publishRequest(first, oldToken))).status).toBe(200);
    await core.deleteNamespacedPod({ namespace: ns, name: 'app-served', gracePeriodSeconds: 0 });
    await eventually('pod deleted', async () => ((await core.listNamespacedPod({ namespace: ns, fieldSelector: 'metadata.name=app-served' })).items.length === 0 ? true : undefined));
    const second = await createPod(ns, 'app-served', { node: nodeX });
    // The API server itself remembers a successful authentication for a few seconds, so the fresh
    // review may still accept the token (then the live-pod check refuses: 403) or not (401).
    const refusals = [
      { status: 401, reason: 'Unauthenticated' },
      { status: 403, reason: 'IdentityMismatch' },
    ];
    for (const asked of [first, second]) {
      const reply = await publish(plugin, publishRequest(asked, oldToken));
      expect(refusals).toContainEqual({ status: reply.status, reason: reply.body.reason });
      expect(reply.body.files).toBeUndefined();
    }
    expect((await publish(plugin, publishRequest(second, await podToken(second)))).status).toBe(200);
  });

  // --- entitlement --------------------------------------------------------------------------------

  it('refuses a pod in which an unlisted container (regular or init) mounts the volume', async () => {
    const sidecar = await createPod(ns, 'app-sidecar', { node: nodeX, mounts: { containers: ['app', 'sidecar'] } });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(sidecar, await podToken(sidecar))), 403, 'NotEntitled', 'app-sidecar', /sidecar/);
    const init = await createPod(ns, 'app-init', { node: nodeX, mounts: { containers: ['app'], init: ['fetcher'] } });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(init, await podToken(init))), 403, 'NotEntitled', 'app-init', /fetcher/);
  });

  it('refuses a pod not selected by the podSelector or serviceAccountNames', async () => {
    const other = await createPod(ns, 'app-unselected', { node: nodeX, labels: { app: 'other' } });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(other, await podToken(other))), 403, 'NotEntitled', 'app-unselected', /podSelector/);
    const wrongSa = await createPod(ns, 'app-wrong-sa', { node: nodeX, serviceAccount: 'other' });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(wrongSa, await podToken(wrongSa))), 403, 'NotEntitled', 'app-wrong-sa', /serviceAccountNames/);
  });

  it('refuses a binding whose ClusterSecretBackend does not admit its namespace, or a key outside the allowed prefixes', async () => {
    const here = await createPod(ns, 'app-cluster', { node: nodeX, binding: 'cluster-denied' });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(here, await podToken(here), 'cluster-denied')), 403, 'AccessDenied', 'app-cluster');
    const there = await createPod(otherNs, 'app-prefix', { node: nodeX, binding: 'outside-prefix' });
    await expectDenied(await publish(pluginTokens.get(nodeX), publishRequest(there, await podToken(there), 'outside-prefix')), 403, 'AccessDenied', 'app-prefix');
    // The same backend serves an admitted namespace and key.
    const admitted = await createPod(otherNs, 'app-shared', { node: nodeX, binding: 'shared' });
    const reply = await publish(pluginTokens.get(nodeX), publishRequest(admitted, await podToken(admitted), 'shared'));
    expect(reply.status).toBe(200);
    expect(Buffer.from(reply.body.files[0]?.contentBase64 ?? '', 'base64').toString('utf8')).toBe(markers.shared);
  });

  // --- the change stream --------------------------------------------------------------------------

  it('holds a change poll while nothing changes, answers as soon as the binding changes, and revokes a deleted binding', async () => {
    const pod = await createPod(ns, 'app-watch', { node: nodeX });
    const plugin = pluginTokens.get(nodeX);
    const first = await publish(plugin, publishRequest(pod, await podToken(pod)));
    expect(first.status).toBe(200);
    const volume = { volumeId: first.body.volumeId, namespace: ns, binding: 'web', contentHash: first.body.contentHash, pod: { name: 'app-watch', uid: pod.metadata?.uid ?? '' } };

    const quietStart = Date.now();
    const quiet = await call<ChangesAnswer>('/v1/changes', plugin, { volumes: [volume], waitSeconds: 2 });
    expect(quiet).toEqual({ status: 200, body: { changed: [] } });
    expect(Date.now() - quietStart).toBeGreaterThanOrEqual(1_900);

    // A stale hash is answered at once.
    const stale = await call<ChangesAnswer>('/v1/changes', plugin, { volumes: [{ ...volume, contentHash: 'hmac-sha256:old' }], waitSeconds: 30 });
    expect(stale.body.changed).toEqual([{ volumeId: volume.volumeId, contentHash: first.body.contentHash, revoked: false }]);

    // Another node's plugin learns nothing about this pod's volume but that it must let go.
    const foreign = await call<ChangesAnswer>('/v1/changes', pluginTokens.get(nodeY), { volumes: [volume], waitSeconds: 5 });
    expect(foreign.body.changed).toEqual([{ volumeId: volume.volumeId, contentHash: null, revoked: true }]);

    // A spec change (a new file) gives the binding a new hash: the held poll answers with it.
    const held = call<ChangesAnswer>('/v1/changes', plugin, { volumes: [volume], waitSeconds: 60 });
    const changedAt = Date.now();
    await custom.patchNamespacedCustomObject({
      group, version, plural: resources.SecretBinding.plural, namespace: ns, name: 'web',
      body: [{ op: 'add', path: '/spec/files/-', value: { path: 'api-key', key: `brk-${suffix}/api`, property: 'key' } }],
    });
    const answer = await held;
    expect(Date.now() - changedAt).toBeLessThan(15_000);
    expect(answer.body.changed).toHaveLength(1);
    const next = answer.body.changed[0];
    expect(next?.revoked).toBe(false);
    expect(next?.contentHash).not.toBe(first.body.contentHash);
    const again = await publish(plugin, publishRequest(pod, await podToken(pod)));
    expect(again.body.contentHash).toBe(next?.contentHash);
    expect(again.body.files.map((f) => f.path)).toEqual(['db-password', 'config/app.env', 'api-key']);

    // Deleting the binding revokes the volume.
    const revokedPoll = call<ChangesAnswer>('/v1/changes', plugin, { volumes: [{ ...volume, contentHash: again.body.contentHash }], waitSeconds: 60 });
    await custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name: 'web' });
    expect((await revokedPoll).body.changed).toEqual([{ volumeId: volume.volumeId, contentHash: null, revoked: true }]);
    expect((await auditEvents()).some((e) => e['event'] === 'revoked' && (e['pod'] as { name?: string }).name === 'app-watch')).toBe(true);
  }, 60_000);

  it('answers a held change poll when the backend value rotates (found by the reconciler), and serves the new value', async () => {
    const pod = await createPod(ns, 'app-rotate', { node: nodeX, binding: 'rotating' });
    const plugin = pluginTokens.get(nodeX);
    const first = await publish(plugin, publishRequest(pod, await podToken(pod), 'rotating'));
    expect(first.status).toBe(200);
    expect(Buffer.from(first.body.files[0]?.contentBase64 ?? '', 'base64').toString('utf8')).toBe(markers.rotated1);
    const volume = { volumeId: first.body.volumeId, namespace: ns, binding: 'rotating', contentHash: first.body.contentHash, pod: { name: 'app-rotate', uid: pod.metadata?.uid ?? '' } };
    const held = call<ChangesAnswer>('/v1/changes', plugin, { volumes: [volume], waitSeconds: 60 });
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    await writeKvSecret(bao, `brk-${suffix}/rotating`, { value: markers.rotated2 });
    const answer = await held;
    expect(answer.body.changed).toEqual([{ volumeId: volume.volumeId, contentHash: expect.stringMatching(/^hmac-sha256:/) as unknown as string, revoked: false }]);
    expect(answer.body.changed[0]?.contentHash).not.toBe(first.body.contentHash);
    const again = await publish(plugin, publishRequest(pod, await podToken(pod), 'rotating'));
    expect(Buffer.from(again.body.files[0]?.contentBase64 ?? '', 'base64').toString('utf8')).toBe(markers.rotated2);
    expect(again.body.contentHash).toBe(answer.body.changed[0]?.contentHash);
  }, 60_000);

  it('revokes a held volume when its pod stops matching the selector', async () => {
    const pod = await createPod(ns, 'app-relabel', { node: nodeX, binding: 'rotating' });
    const plugin = pluginTokens.get(nodeX);
    const first = await publish(plugin, publishRequest(pod, await podToken(pod), 'rotating'));
    expect(first.status).toBe(200);
    const volume = { volumeId: first.body.volumeId, namespace: ns, binding: 'rotating', contentHash: first.body.contentHash, pod: { name: 'app-relabel', uid: pod.metadata?.uid ?? '' } };
    const held = call<ChangesAnswer>('/v1/changes', plugin, { volumes: [volume], waitSeconds: 60 });
    const relabeledAt = Date.now();
    await core.patchNamespacedPod({ namespace: ns, name: 'app-relabel', body: [{ op: 'replace', path: '/metadata/labels/app', value: 'retired' }] });
    expect((await held).body.changed).toEqual([{ volumeId: volume.volumeId, contentHash: null, revoked: true }]);
    expect(Date.now() - relabeledAt).toBeLessThan(10_000);
    expect((await auditEvents()).some((e) => e['event'] === 'revoked' && (e['pod'] as { name?: string }).name === 'app-relabel' && e['reason'] === 'NotEntitled')).toBe(true);
  }, 60_000);

  it('counts decisions with closed labels', async () => {
    const text = await registry.metrics();
    const value = (labels: string): number => Number(/ (\S+)$/.exec(text.split('\n').find((l) => l.startsWith(`secretbinder_broker_decisions_total{${labels}}`)) ?? '')?.[1] ?? 0);
    expect(value('endpoint="publish",result="delivered",reason="none"')).toBeGreaterThanOrEqual(5);
    expect(value('endpoint="publish",result="denied",reason="IdentityMismatch"')).toBeGreaterThanOrEqual(3);
    expect(value('endpoint="changes",result="revoked",reason="none"')).toBeGreaterThanOrEqual(2);
    expect(text).toContain('secretbinder_broker_request_duration_seconds_bucket{le="60",endpoint="changes"}');
  });

  it('serves from a replica that does not lead, which learns new content from the leader\'s status', async () => {
    // A Lease held by someone else for an hour: the second replica never leads, never reconciles.
    const lease = `brk-lease-${suffix}`;
    await kc.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace: systemNs,
      body: { metadata: { name: lease }, spec: { holderIdentity: 'someone-else', leaseDurationSeconds: 3600, acquireTime: new V1MicroTime(), renewTime: new V1MicroTime() } },
    });
    const follower = await startReplica('follower', new Registry(), lease);
    expect(follower.caPem).not.toBe(main.caPem);
    const pod = await createPod(ns, 'app-follower', { node: nodeY, binding: 'rotating' });
    const plugin = pluginTokens.get(nodeY);
    const first = await eventually('the follower serves', async () => {
      const reply = await publish(plugin, publishRequest(pod, await podToken(pod), 'rotating'), follower);
      return reply.status === 200 ? reply : undefined;
    });
    const volume = { volumeId: first.body.volumeId, namespace: ns, binding: 'rotating', contentHash: first.body.contentHash, pod: { name: 'app-follower', uid: pod.metadata?.uid ?? '' } };
    const held = call<ChangesAnswer>('/v1/changes', plugin, { volumes: [volume], waitSeconds: 60 }, follower);
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    await writeKvSecret(bao, `brk-${suffix}/rotating`, { value: markers.rotated3 });
    const answer = await held;
    expect(answer.body.changed).toHaveLength(1);
    expect(answer.body.changed[0]?.contentHash).not.toBe(first.body.contentHash);
    // The hash came from the leader's status write: the follower's own resolver has not re-read yet.
    const status = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name: 'rotating' })) as { status?: { contentHmac?: string } };
    expect(answer.body.changed[0]?.contentHash).toBe(status.status?.contentHmac);
    const again = await publish(plugin, publishRequest(pod, await podToken(pod), 'rotating'), follower);
    expect(Buffer.from(again.body.files[0]?.contentBase64 ?? '', 'base64').toString('utf8')).toBe(markers.rotated3);
  }, 90_000);

  // --- leaks --------------------------------------------------------------------------------------

  it('leaves no secret value and no token in the log, the audit stream, Events or status', async () => {
    const haystacks = [await logOut.text(), await auditOut.text()];
    for (const namespace of [ns, otherNs, systemNs]) {
      haystacks.push(JSON.stringify((await core.listNamespacedEvent({ namespace })).items));
      haystacks.push(JSON.stringify(await custom.listNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace })));
    }
    expect(haystacks[1]).toContain('"event":"denied"');
    const needles = [...Object.values(markers), ...tokens];
    expect(needles.length).toBeGreaterThan(10);
    for (const needle of needles) {
      expect(needle.length).toBeGreaterThan(10);
      for (const haystack of haystacks) expect(haystack.includes(needle)).toBe(false);
    }
  });
});
