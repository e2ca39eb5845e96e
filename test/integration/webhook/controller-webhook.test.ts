import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { webhookConfigurations } from '../../../src/webhook/webhook-configurations.ts';
import { hmacKeyFile, operatorNamespace } from '../../harness/controller-process.ts';
import { startProcess, stopProcess, type ProcessRecord } from '../../harness/process.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, errorText, eventually, installCrds, root } from '../support/cluster.ts';

/**
 * The controller as a process with `--webhook-address` and a self-managed certificate: it
 * publishes its CA into the (empty) caBundle of the configurations it is told about, injects
 * labelled pods from its SecretBinding cache, and reports admission latency on /metrics.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `whc-${suffix}`;
const scopeLabel = { 'secretbinder.dev/webhook-suite': suffix };
const configName = `secret-binder-ctl-test-${suffix}`;

let kc: KubeConfig;
let core: CoreV1Api;
let admission: AdmissionregistrationV1Api;
let controller: ProcessRecord | undefined;
let log = (): string => '';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  return port;
}

describe('controller process with the webhook on', () => {
  beforeAll(async () => {
    const world = currentWorld();
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await installCrds(kc);
    await core.createNamespace({ body: { metadata: { name: operatorNamespace } } }).catch(() => undefined);
    await core.createNamespace({ body: { metadata: { name: ns, labels: scopeLabel } } });
    await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group,
      version,
      plural: resources.SecretBinding.plural,
      namespace: ns,
      body: {
        apiVersion: `${group}/${version}`,
        kind: 'SecretBinding',
        metadata: { name: 'db' },
        spec: { backendRef: { kind: 'SecretBackend', name: 'none' }, podSelector: {}, containers: ['app'], files: [{ path: 'password', key: 'app/db', property: 'password' }] },
      },
    });

    const port = await freePort();
    const { mutating, validating } = webhookConfigurations({
      names: { mutating: configName, validating: configName },
      clientConfig: (path) => ({ url: `https://127.0.0.1:${port}${path}` }),
      excludedNamespaces: ['kube-system', operatorNamespace],
      namespaceMatchLabels: scopeLabel,
    });
    await admission.createMutatingWebhookConfiguration({ body: mutating });
    await admission.createValidatingWebhookConfiguration({ body: validating });

    const record = startProcess({
      name: `controller-webhook-${suffix}`,
      command: process.execPath,
      args: [
        join(root, 'src/main.ts'),
        '--kubeconfig', world.kube.kubeconfigPath,
        '--namespace', operatorNamespace,
        '--identity', `webhook-${suffix}`,
        '--watch-namespaces', ns,
        '--leader-elect', 'false',
        '--http-address', '127.0.0.1:0',
        '--hmac-key-file', hmacKeyFile(world),
        '--webhook-address', `127.0.0.1:${port}`,
        '--webhook-dns-names', 'localhost,127.0.0.1',
        '--webhook-configuration-name', configName,
      ],
      env: { AWS_EC2_METADATA_DISABLED: 'true' },
      logDir: world.logDir,
      maxLifetimeSeconds: 600,
    });
    controller = record;
    log = () => {
      try {
        return readFileSync(record.logPath, 'utf8');
      } catch {
        return '';
      }
    };
    await eventually('default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.find((s) => s.metadata?.name === 'default'));
  });

  afterAll(async () => {
    if (controller !== undefined) await stopProcess(controller, 30_000);
    await admission.deleteMutatingWebhookConfiguration({ name: configName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: configName }).catch(() => undefined);
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('publishes its CA into both configurations', async () => {
    const bundle = async (): Promise<string | undefined> => {
      const [m, v] = await Promise.all([
        admission.readMutatingWebhookConfiguration({ name: configName }),
        admission.readValidatingWebhookConfiguration({ name: configName }),
      ]);
      const a = m.webhooks?.[0]?.clientConfig.caBundle ?? '';
      const b = v.webhooks?.[0]?.clientConfig.caBundle ?? '';
      return a !== '' && a === b ? Buffer.from(a, 'base64').toString('utf8') : undefined;
    };
    let pem: string;
    try {
      pem = await eventually('caBundle published', bundle, 30_000);
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}\ncontroller log:\n${log().slice(-3000)}`);
    }
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(log()).toContain('webhook caBundle updated');
  });

  it('injects a labelled pod from its binding cache and records the admission latency', async () => {
    const body: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', labels: { 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': 'db' } },
      spec: { containers: [{ name: 'app', image: 'registry.invalid/none:1' }, { name: 'proxy', image: 'registry.invalid/none:1' }] },
    };
    // Until its binding cache has synced the webhook refuses with a retryable 503 (fail closed).
    await eventually('mutating webhook active', async () => {
      try {
        const dry = await core.createNamespacedPod({ namespace: ns, body, dryRun: 'All' });
        return (dry.spec?.volumes ?? []).some((v) => v.name === 'secretbinder-db') ? true : undefined;
      } catch (error) {
        if (!errorText(error).includes('SecretBinding cache not synced yet')) throw error;
        return undefined;
      }
    }, 30_000);
    const pod = await core.createNamespacedPod({ namespace: ns, body });
    // The ServiceAccount admission plugin adds its token volume too; only ours is under test.
    const ours = (c: string): unknown => pod.spec?.containers.find((x) => x.name === c)?.volumeMounts?.filter((m) => m.name.startsWith('secretbinder-'));
    expect(ours('app')).toEqual([{ name: 'secretbinder-db', mountPath: '/var/run/secrets/secretbinder/db', readOnly: true }]);
    expect(ours('proxy')).toEqual([]);

    const healthPort = /"message":"health server listening","port":(\d+)/.exec(log())?.[1] ?? /"port":(\d+)[^\n]*"message":"health server listening"/.exec(log())?.[1];
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort ?? '0'}/metrics`)).text();
    expect(metrics).toMatch(/secretbinder_webhook_admission_duration_seconds_count\{webhook="mutate",outcome="patched"\} [1-9]/);
  });

  it('refuses the pods of a Deployment with a typo in the annotation, and the Deployment says why (ReplicaFailure)', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    const labels = { app: 'typo' };
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'typo' },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            // `binding` for `bindings`: the label sends the pod to the webhook, which names what is missing.
            metadata: { labels: { ...labels, 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/binding': 'db' } },
            spec: { containers: [{ name: 'app', image: 'registry.invalid/none:1' }] },
          },
        },
      },
    });
    const failure = await eventually('the Deployment reports ReplicaFailure', async () => {
      const deployment = await apps.readNamespacedDeployment({ namespace: ns, name: 'typo' });
      return deployment.status?.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
    }, 60_000);
    process.stdout.write(`annotation typo: Deployment condition ReplicaFailure: ${failure.message ?? ''}\n`);
    expect(failure.reason).toBe('FailedCreate');
    expect(failure.message).toContain('annotation secretbinder.dev/bindings is required on pods labelled secretbinder.dev/inject="true"');
    expect((await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=typo' })).items).toHaveLength(0);
  }, 90_000);
});
