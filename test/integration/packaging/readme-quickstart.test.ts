import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  RbacAuthorizationV1Api,
  StorageV1Api,
  type V1MutatingWebhookConfiguration,
  type V1ValidatingWebhookConfiguration,
} from '@kubernetes/client-node';
import { group, resources, version, type ClusterSecretBackend, type SecretBinding } from '../../../src/api/v1alpha1/index.ts';
import { baoBinary, freePorts } from '../../harness/backend-tools.ts';
import { startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { projectImageReference } from '../../harness/node/project-image.ts';
import { openBaoRequest } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, errorText } from '../support/cluster.ts';
import { chartBrokerFlags, chartRelease, refusedRequest, uninstallChart } from './chart-release.support.ts';
import { command, helmPath, kubectlPath, type CommandResult } from './helm.support.ts';
import { serviceAccountKubeConfig } from './identity.support.ts';
import { readmeQuickStart } from './readme-quickstart.support.ts';

/**
 * The README's quick start, run verbatim: every `sh` block of its "Quick start" section, in order,
 * by bash, with the world's admin kubeconfig as KUBECONFIG, the cached helm and kubectl, and
 * OpenBao's CLI as `vault` (same commands). The block marked `quickstart: environment` is the
 * user's to fill in: the test checks it names exactly the variables the test sets from the world.
 *
 * No image runs in this world (no kubelet), so right after the `helm install` block the test stands
 * in for the controller pods: the controller runs as a process under a token of the chart's
 * service account, with the chart's broker certificate, and — as no Service routes to a process —
 * the chart's two webhook configurations are pointed at its webhook's loopback URL. Then the
 * outcome is checked against the API server: chart objects, a Ready backend and binding, and the
 * Deployment's pods injected with the volume and counted as consumers.
 */

const [imageRepository = '', imageTag = ''] = projectImageReference.split(/:(?=[^:]+$)/);

const readme = readmeQuickStart();

// The names the README uses (release, namespaces, objects); the test reads them, never edits them.
const chart = chartRelease('secret-binder', 'secret-binder-system');
const shopNs = 'shop';
const vaultRole = 'secret-binder';
const vaultPolicy = 'shop-read';
const secretPath = 'shop/db';
const suffix = randomBytes(3).toString('hex');

let admin: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let controller: ControllerProcess | undefined;
let env: Record<string, string>;
const outputs: CommandResult[] = [];

function bao(): NonNullable<ReturnType<typeof currentWorld>['openbao']> {
  const endpoint = currentWorld().openbao;
  if (endpoint === undefined) throw new Error('the world has no OpenBao (SECRET_BINDER_WORLD_BACKENDS must include openbao)');
  return endpoint;
}

/** What the chart's controller pod would be: the controller as a process, as the chart's account. */
async function standInForTheControllerPods(): Promise<void> {
  const world = currentWorld();
  const port = await freePorts(1);
  // No Service reaches a process: the webhooks call its loopback URL instead (the rest of each
  // configuration — selectors, rules, failure policy — stays the chart's).
  const admission = admin.makeApiClient(AdmissionregistrationV1Api);
  const toUrl = <T extends V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration>(config: T): T => {
    for (const w of config.webhooks ?? []) w.clientConfig = { url: `https://127.0.0.1:${port}${w.clientConfig.service?.path ?? ''}` };
    return config;
  };
  const name = chart.webhookConfigurationName;
  await admission.replaceMutatingWebhookConfiguration({ name, body: toUrl(await admission.readMutatingWebhookConfiguration({ name })) });
  await admission.replaceValidatingWebhookConfiguration({ name, body: toUrl(await admission.readValidatingWebhookConfiguration({ name })) });

  const identity = await serviceAccountKubeConfig(core, chart.namespace, chart.controllerServiceAccount);
  const { flags } = chartBrokerFlags(chart);
  controller = startController(world, {
    identity: `quickstart-${suffix}`,
    // The quick start's namespace only: other suites' objects in the shared world stay out of it.
    watchNamespaces: [shopNs],
    leaseName: chart.leaseName,
    kubeconfigPath: identity.path,
    namespace: chart.namespace,
    logLevel: 'info',
    // The keys and certificates the controller keeps, as the chart's Deployment (ADR 0155).
    hmacKeySecret: `${chart.fullname}-content-hmac`,
    extraArgs: [
      ...flags,
      // The world's OpenBao listens on plain http on loopback: allowed for tokens only with the
      // development flag (ADR 0150); the README's in-cluster address is https.
      '--allow-http-loopback-token-endpoints=true',
      `--webhook-address=127.0.0.1:${port}`,
      `--webhook-tls-secret=${chart.fullname}-webhook-tls`,
      '--webhook-dns-names=localhost,127.0.0.1',
      `--webhook-configuration-name=${name}`,
    ],
  });
  await controller.healthPort();
}

async function run(block: string): Promise<CommandResult> {
  const result = await command('/bin/bash', ['-euo', 'pipefail', '-c', block], undefined, { env, timeoutMs: 200_000 });
  outputs.push(result);
  if (result.code !== 0) {
    throw new Error(`README quick-start block failed (exit ${result.code}):\n${block}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}\n--- controller log\n${controller?.log().slice(-3000) ?? '(not started)'}`);
  }
  return result;
}

async function cleanUp(): Promise<void> {
  await controller?.stop();
  controller = undefined;
  await uninstallChart(chart);
  const ignore = (): undefined => undefined;
  await custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name: 'vault' }).catch(ignore);
  await core.deleteNamespace({ name: shopNs }).catch(ignore);
  await core.deleteNamespacedServiceAccount({ name: 'vault-reader', namespace: chart.namespace }).catch(ignore);
  // The controller's own Secrets outlive `helm uninstall` on purpose (docs/install.md); the
  // namespace is shared with other suites.
  for (const secret of ['content-hmac', 'broker-tls', 'webhook-tls']) {
    await core.deleteNamespacedSecret({ name: `${chart.fullname}-${secret}`, namespace: chart.namespace }).catch(ignore);
  }
  await admin.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ name: chart.leaseName, namespace: chart.namespace }).catch(ignore);
  await openBaoRequest(bao(), 'DELETE', `auth/${bao().kubernetesAuthMount}/role/${vaultRole}`).catch(ignore);
  await openBaoRequest(bao(), 'DELETE', `sys/policies/acl/${vaultPolicy}`).catch(ignore);
  await openBaoRequest(bao(), 'DELETE', `${bao().kvMount}/metadata/${secretPath}`).catch(ignore);
}

beforeAll(() => {
  admin = adminKubeConfig();
  core = admin.makeApiClient(CoreV1Api);
  custom = admin.makeApiClient(CustomObjectsApi);
  // helm, kubectl and `vault` (OpenBao's CLI) on PATH, as on the user's machine.
  const bin = mkdtempSync(join(tmpdir(), 'sb-quickstart-bin-'));
  symlinkSync(helmPath, join(bin, 'helm'));
  symlinkSync(kubectlPath, join(bin, 'kubectl'));
  symlinkSync(baoBinary(), join(bin, 'vault'));
  env = {
    PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
    KUBECONFIG: currentWorld().kube.kubeconfigPath,
    // `vault login` as the OpenBao dev server's root; the controller reaches it on the same host.
    VAULT_ADDR: bao().address,
    VAULT_TOKEN: bao().rootToken,
    VAULT_IN_CLUSTER_ADDR: bao().address,
    // The image the user built and pushed (docs/install.md): here the one the real-node tier
    // assembles; no pod runs it in this world, but the chart must be installed with exactly it.
    IMAGE_REPOSITORY: imageRepository,
    IMAGE_TAG: imageTag,
  };
});

afterAll(cleanUp, 120_000);

describe('README quick start', () => {
  it('is sh blocks, the first a helm install, after a block naming the variables the test sets', () => {
    expect([...readme.environment].sort()).toEqual(Object.keys(env).filter((k) => /^(VAULT_|IMAGE_)/.test(k) && k !== 'VAULT_TOKEN').sort());
    expect(readme.blocks.length).toBeGreaterThanOrEqual(4);
    expect(readme.blocks[0]).toMatch(/^helm install secret-binder charts\/secret-binder\b/);
    expect(readme.blocks[0]).toContain('--set image.repository="$IMAGE_REPOSITORY" --set image.tag="$IMAGE_TAG"');
    expect(readme.blocks.slice(1).join('\n')).not.toMatch(/helm install/);
  });

  it('runs verbatim: the chart, the backend, the binding, the Deployment', async () => {
    const [install, ...rest] = readme.blocks;
    await run(install ?? '');
    await standInForTheControllerPods();
    for (const block of rest) await run(block);
  }, 600_000);

  it('installed the chart: controller, node plugin, RBAC, CSI driver and webhooks (caBundle kept by the controller)', async () => {
    const apps = admin.makeApiClient(AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({ name: `${chart.fullname}-controller`, namespace: chart.namespace });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(`${imageRepository}:${imageTag}`);
    expect(deployment.spec?.template.spec?.serviceAccountName).toBe(chart.controllerServiceAccount);
    await apps.readNamespacedDaemonSet({ name: `${chart.fullname}-node`, namespace: chart.namespace });
    await admin.makeApiClient(RbacAuthorizationV1Api).readClusterRole({ name: `${chart.fullname}-controller` });
    const driver = await admin.makeApiClient(StorageV1Api).readCSIDriver({ name: 'secretbinder.dev' });
    expect(driver.metadata?.labels?.['app.kubernetes.io/instance']).toBe(chart.release);
    const admission = admin.makeApiClient(AdmissionregistrationV1Api);
    const mutating = await admission.readMutatingWebhookConfiguration({ name: chart.webhookConfigurationName });
    const validating = await admission.readValidatingWebhookConfiguration({ name: chart.webhookConfigurationName });
    for (const w of [...(mutating.webhooks ?? []), ...(validating.webhooks ?? [])]) {
      expect(w.failurePolicy).toBe('Fail');
      expect(Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    }
  });

  it('made the backend and the binding Ready, reading shop/db from OpenBao through kubernetes auth', async () => {
    const backend = (await custom.getClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name: 'vault' })) as ClusterSecretBackend;
    expect(backend.spec.vault?.auth.kubernetes?.serviceAccountRef.name).toBe('vault-reader');
    expect(backend.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const binding = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: shopNs, name: 'shop-db' })) as SecretBinding;
    expect(binding.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Reconciled' });
    expect(binding.status?.contentHmac).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(binding.status?.backendVersions).toEqual([{ key: secretPath, version: '1' }]);
    // The block that opts the Deployment in ends by printing the binding Ready with its 2 consumers.
    const printed = readme.blocks.findIndex((b) => b.includes('kubectl -n shop get secretbinding shop-db'));
    expect(printed).toBeGreaterThan(0);
    expect(outputs[printed]?.stdout).toMatch(/^shop-db\s+vault\s+True\s+Reconciled\s+2\s/m);
  });

  it('injected the volume into both pods of the Deployment, mounted only in container app, and counts them as consumers', async () => {
    const pods = (await core.listNamespacedPod({ namespace: shopNs, labelSelector: 'app=shop' })).items;
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.metadata?.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
      expect(pod.metadata?.annotations?.['secretbinder.dev/injected']).toBe('shop-db');
      expect(pod.spec?.volumes?.find((v) => v.name === 'secretbinder-shop-db')?.csi).toEqual({ driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'shop-db' } });
      const mounts = pod.spec?.containers.find((c) => c.name === 'app')?.volumeMounts?.filter((m) => m.name.startsWith('secretbinder-'));
      expect(mounts).toEqual([{ name: 'secretbinder-shop-db', mountPath: '/var/run/secrets/secretbinder/shop-db', readOnly: true }]);
    }
    const binding = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: shopNs, name: 'shop-db' })) as SecretBinding;
    expect(binding.status?.consumers).toMatchObject({ pods: 2, workloads: 1 });
  });

  it('refuses a pod whose unlisted container mounts the bound volume, as the README says', async () => {
    let refusal = '';
    try {
      await core.createNamespacedPod({
        namespace: shopNs,
        dryRun: 'All',
        body: {
          metadata: { name: `sidecar-${suffix}`, labels: { app: 'shop' } },
          spec: {
            volumes: [{ name: 'db', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'shop-db' } } }],
            containers: [
              { name: 'app', image: 'busybox:1.37' },
              { name: 'proxy', image: 'busybox:1.37', volumeMounts: [{ name: 'db', mountPath: '/db', readOnly: true }] },
            ],
          },
        },
      });
    } catch (error) {
      refusal = errorText(error);
    }
    expect(refusal).toMatch(/denied the request/);
    expect(refusal).toContain('proxy');
  });

  it('ran the controller under the chart identity without a refused request, and no value reached its log', async () => {
    const running = controller;
    if (running === undefined) throw new Error('the controller did not start');
    expect(running.alive()).toBe(true);
    const log = running.log();
    expect(log).not.toMatch(refusedRequest);
    const stored = (await openBaoRequest(bao(), 'GET', `${bao().kvMount}/data/${secretPath}`)) as { data?: { data?: { password?: string } } };
    const password = stored.data?.data?.password ?? '';
    expect(password.length).toBeGreaterThan(10);
    expect(log).not.toContain(password);
  });

  it('leaves nothing behind in the shared world: no webhook configuration, CSI driver or Vault role', async () => {
    await cleanUp();
    const admission = admin.makeApiClient(AdmissionregistrationV1Api);
    const gone = async (read: () => Promise<unknown>): Promise<boolean> => read().then(() => false, (error: unknown) => /404|not found/i.test(errorText(error)));
    expect(await gone(() => admission.readMutatingWebhookConfiguration({ name: chart.webhookConfigurationName }))).toBe(true);
    expect(await gone(() => admission.readValidatingWebhookConfiguration({ name: chart.webhookConfigurationName }))).toBe(true);
    expect(await gone(() => admin.makeApiClient(StorageV1Api).readCSIDriver({ name: 'secretbinder.dev' }))).toBe(true);
    expect(await gone(() => admin.makeApiClient(RbacAuthorizationV1Api).readClusterRole({ name: `${chart.fullname}-controller` }))).toBe(true);
    expect(await gone(() => openBaoRequest(bao(), 'GET', `auth/${bao().kubernetesAuthMount}/role/${vaultRole}`))).toBe(true);
  }, 120_000);
});
