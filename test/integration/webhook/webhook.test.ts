import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { AdmissionregistrationV1Api, ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { group, resources, version, type SecretBinding } from '../../../src/api/v1alpha1/index.ts';
import { CapturedOutput } from '../../../src/observability/captured-output.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Informer } from '../../../src/runtime/informer.ts';
import { KubeListWatch } from '../../../src/runtime/kube-list-watch.ts';
import { syncCaBundles } from '../../../src/webhook/ca-bundle.reconciler.ts';
import { webhookConfigurations } from '../../../src/webhook/webhook-configurations.ts';
import { generateServingTls } from '../../../src/webhook/webhook-tls.ts';
import { buildWebhookServer } from '../../../src/webhook/webhook.ts';
import type { WebhookServer } from '../../../src/webhook/webhook.server.ts';
import { adminKubeConfig, errorText, eventually, installCrds } from '../support/cluster.ts';

/**
 * The webhook in-process on 127.0.0.1, registered in the real API server by URL with the
 * configurations we ship (scoped to this suite's namespace by a label): injection of labelled pods,
 * refusal of unlisted containers (regular and ephemeral), subPath warnings, caBundle upkeep.
 * Pods stay Pending (no kubelet); only admission is under test.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `wh-${suffix}`;
const scopeLabel = { 'secretbinder.dev/webhook-suite': suffix };
const names = { mutating: `secret-binder-test-${suffix}`, validating: `secret-binder-test-${suffix}` };

let kc: KubeConfig;
let core: CoreV1Api;
let admission: AdmissionregistrationV1Api;
let server: WebhookServer;
const informerStop = new AbortController();
let caPem: string;

const boundVolume = { name: 'creds', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } } };

function pod(name: string, spec: Partial<NonNullable<V1Pod['spec']>>, metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): V1Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, ...metadata }, spec: { containers: [], ...spec } };
}
const container = (name: string, volumeMounts?: { name: string; mountPath: string; subPath?: string }[]): { name: string; image: string; volumeMounts?: typeof volumeMounts } => ({
  name,
  image: 'registry.invalid/none:1',
  ...(volumeMounts === undefined ? {} : { volumeMounts }),
});

async function refusal(create: Promise<unknown>): Promise<string> {
  try {
    await create;
  } catch (error) {
    if (error instanceof ApiException) return errorText(error);
    throw error;
  }
  throw new Error('expected a refusal');
}

/** POST with the admin client, returning the Warning headers the API server relays from webhooks. */
async function createPodRaw(body: V1Pod): Promise<{ status: number; warnings: string[]; body: string }> {
  const serverUrl = kc.getCurrentCluster()?.server ?? '';
  const options: RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(`/api/v1/namespaces/${ns}/pods`, serverUrl), { ...options, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw: string | string[] | undefined = res.headers.warning;
        const list: string[] = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
        const warnings = list.flatMap((w) => w.split(/,\s*(?=299 )/));
        resolve({ status: res.statusCode ?? 0, warnings, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('admission webhook against the real API server', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    admission = kc.makeApiClient(AdmissionregistrationV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    await installCrds(kc);
    await core.createNamespace({ body: { metadata: { name: ns, labels: scopeLabel } } });
    await custom.createNamespacedCustomObject({
      group,
      version,
      plural: resources.SecretBinding.plural,
      namespace: ns,
      body: {
        apiVersion: `${group}/${version}`,
        kind: 'SecretBinding',
        metadata: { name: 'db' },
        spec: { backendRef: { kind: 'SecretBackend', name: 'none' }, podSelector: {}, containers: ['app', 'migrate'], files: [{ path: 'password', key: 'app/db', property: 'password' }] },
      },
    });

    const bindings = new Informer<SecretBinding>({
      resource: resources.SecretBinding.plural,
      source: new KubeListWatch<SecretBinding>(kc, { group, version, plural: resources.SecretBinding.plural }, { namespace: ns }),
    });
    void bindings.start(informerStop.signal);
    await eventually('binding cache holds db', () => Promise.resolve(bindings.get(`${ns}/db`)));

    const tls = await generateServingTls({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    caPem = tls.caPem ?? '';
    server = buildWebhookServer({
      bindings,
      operatorNamespace: 'secret-binder-system',
      host: '127.0.0.1',
      port: 0,
      tls,
      registry: new Registry(),
      logger: createLogger({ level: 'error', component: 'webhook', stream: new CapturedOutput() }),
    });
    const port = await server.listen();

    // Registered without caBundle: the caBundle reconciler has to make them work.
    const { mutating, validating } = webhookConfigurations({
      names,
      clientConfig: (path) => ({ url: `https://127.0.0.1:${port}${path}` }),
      excludedNamespaces: ['kube-system', 'secret-binder-system'],
      namespaceMatchLabels: scopeLabel,
    });
    await admission.createMutatingWebhookConfiguration({ body: mutating });
    await admission.createValidatingWebhookConfiguration({ body: validating });
    await eventually('default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.find((s) => s.metadata?.name === 'default'));
  });

  afterAll(async () => {
    await admission.deleteMutatingWebhookConfiguration({ name: names.mutating }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: names.validating }).catch(() => undefined);
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    informerStop.abort();
    await server.close();
  });

  it('publishes our CA in both configurations, once', async () => {
    const written = await syncCaBundles(admission, names, caPem, new Date());
    expect(written.sort()).toEqual([`mutatingwebhookconfiguration/${names.mutating}`, `validatingwebhookconfiguration/${names.validating}`]);
    expect(await syncCaBundles(admission, names, caPem, new Date())).toEqual([]);
    const stored = await admission.readMutatingWebhookConfiguration({ name: names.mutating });
    expect(Buffer.from(stored.webhooks?.[0]?.clientConfig.caBundle ?? '', 'base64').toString('utf8').replace(/\s/g, '')).toBe(caPem.replace(/\s/g, ''));
  });

  it('injects the volume and read-only mounts into the containers the binding lists', async () => {
    // The API server picks up new webhook configurations within a moment: dry-run until it does.
    const labelled = (name: string): V1Pod =>
      pod(name, { initContainers: [container('migrate')], containers: [container('app'), container('proxy')] }, {
        labels: { 'secretbinder.dev/inject': 'true' },
        annotations: { 'secretbinder.dev/bindings': 'db', 'secretbinder.dev/mount-path.db': '/etc/db' },
      });
    await eventually('mutating webhook active', async () => {
      const dry = await core.createNamespacedPod({ namespace: ns, body: labelled('probe'), dryRun: 'All' });
      return (dry.spec?.volumes ?? []).some((v) => v.name === 'secretbinder-db') ? true : undefined;
    });
    await core.createNamespacedPod({ namespace: ns, body: labelled('web') });
    const stored = await core.readNamespacedPod({ namespace: ns, name: 'web' });
    expect(stored.spec?.volumes?.find((v) => v.name === 'secretbinder-db')?.csi).toEqual({ driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } });
    const mounts = (c: string): unknown =>
      [...(stored.spec?.initContainers ?? []), ...(stored.spec?.containers ?? [])].find((x) => x.name === c)?.volumeMounts?.filter((m) => m.name === 'secretbinder-db');
    expect(mounts('app')).toEqual([{ name: 'secretbinder-db', mountPath: '/etc/db', readOnly: true }]);
    expect(mounts('migrate')).toEqual([{ name: 'secretbinder-db', mountPath: '/etc/db', readOnly: true }]);
    expect(mounts('proxy')).toEqual([]);
    expect(stored.metadata?.annotations?.['secretbinder.dev/injected']).toBe('db');
  });

  it('refuses a labelled pod naming a binding that does not exist', async () => {
    const message = await refusal(
      core.createNamespacedPod({
        namespace: ns,
        body: pod('ghost', { containers: [container('app')] }, { labels: { 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': 'nope' } }),
      }),
    );
    expect(message).toContain(`SecretBinding ${ns}/nope (annotation secretbinder.dev/bindings) not found`);
  });

  it('refuses a pod that mounts a bound volume from a container the binding does not list', async () => {
    const body = pod('sneaky', { containers: [container('app', [{ name: 'creds', mountPath: '/c' }]), container('proxy', [{ name: 'creds', mountPath: '/c' }])], volumes: [boundVolume] });
    const message = await eventually('validating webhook active', async () => {
      try {
        await core.createNamespacedPod({ namespace: ns, body, dryRun: 'All' });
        return undefined;
      } catch (error) {
        return errorText(error);
      }
    });
    expect(message).toMatch(/^403 /);
    expect(message).toContain('ContainerNotAllowed: container proxy mounts volume creds of SecretBinding db, which does not list it (listed: app, migrate)');
    expect(await refusal(core.createNamespacedPod({ namespace: ns, body }))).toContain('container proxy');
  });

  it('refuses an ephemeral container that mounts the bound volume, admits one that does not', async () => {
    await core.createNamespacedPod({ namespace: ns, body: pod('debuggee', { containers: [container('app', [{ name: 'creds', mountPath: '/c' }])], volumes: [boundVolume] }) });
    const current = await core.readNamespacedPod({ namespace: ns, name: 'debuggee' });
    const withDebug = (mounts?: { name: string; mountPath: string }[]): V1Pod => {
      const next = structuredClone(current);
      next.spec = next.spec ?? { containers: [] };
      next.spec.ephemeralContainers = [{ ...container('debug', mounts), targetContainerName: 'app' }];
      return next;
    };
    const message = await refusal(
      core.replaceNamespacedPodEphemeralcontainers({ namespace: ns, name: 'debuggee', body: withDebug([{ name: 'creds', mountPath: '/c' }]) }),
    );
    expect(message).toContain('ephemeral container debug mounts volume creds of SecretBinding db, which does not list it');
    await core.replaceNamespacedPodEphemeralcontainers({ namespace: ns, name: 'debuggee', body: withDebug() });
    const after = await core.readNamespacedPod({ namespace: ns, name: 'debuggee' });
    expect(after.spec?.ephemeralContainers?.map((c) => c.name)).toEqual(['debug']);
  });

  it('admits a subPath mount of a bound volume with a warning naming container and binding', async () => {
    const answer = await createPodRaw(pod('subpath', { containers: [container('app', [{ name: 'creds', mountPath: '/etc/password', subPath: 'password' }])], volumes: [boundVolume] }));
    expect(answer.status).toBe(201);
    expect(answer.warnings.join('\n')).toContain('SubPathMount: container app mounts volume creds of SecretBinding db with subPath: files mounted by subPath never receive updates');
  });
});
