import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  RbacAuthorizationV1Api,
  StorageV1Api,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually } from '../support/cluster.ts';
import { chartBrokerFlags, chartRelease, installChart, refusedRequest, uninstallChart } from './chart-release.support.ts';
import { chartDir, helm, kubectl, template, valuesFile } from './helm.support.ts';
import { serviceAccountKubeConfig, statusOf } from './identity.support.ts';

/**
 * `helm install` into the world's real API server (no kubelet: the pods stay Pending), then the
 * controller's own identity — a token minted for the chart's service account — shows the RBAC is
 * least privilege: no Secret outside the operator namespace until a namespace owner opts in, yet
 * everything the controller needs works, proven by running the controller under that identity.
 */

const suffix = randomBytes(3).toString('hex');
const release = `pkg-${suffix}`;
const releaseNs = `pkg-rel-${suffix}`;
const tenantNs = `pkg-tenant-${suffix}`;
const otherNs = `pkg-other-${suffix}`;
const fullname = `sbpkg-${suffix}`;
const chart = chartRelease(release, releaseNs, fullname);
const controllerSa = chart.controllerServiceAccount;

// Cluster mode (the default). The validating webhook sees every pod of the shared test world while
// installed; Ignore keeps other suites safe should the uninstall below not run.
const values = { fullnameOverride: fullname, webhook: { failurePolicy: 'Ignore' }, tokenServiceAccounts: ['vault-reader'] };

let admin: KubeConfig;
let core: CoreV1Api;
let saConfigPath: string;
let sa: KubeConfig;
let controller: ControllerProcess | undefined;
let caPath: string;

beforeAll(async () => {
  admin = adminKubeConfig();
  core = admin.makeApiClient(CoreV1Api);
  for (const ns of [tenantNs, otherNs]) await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedSecret({ namespace: tenantNs, body: { metadata: { name: 'db' }, stringData: { password: 'not-for-the-controller' } } });
  await installChart(chart, values);
  ({ config: sa, path: saConfigPath } = await serviceAccountKubeConfig(core, releaseNs, controllerSa));
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await uninstallChart(chart);
  for (const ns of [tenantNs, otherNs, releaseNs]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
}, 120_000);

describe('helm install', () => {
  it('creates the controller, the node plugin, RBAC, the webhook and the CSI driver', async () => {
    const apps = admin.makeApiClient(AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({ name: `${fullname}-controller`, namespace: releaseNs });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.template.spec?.serviceAccountName).toBe(controllerSa);
    const ds = await apps.readNamespacedDaemonSet({ name: `${fullname}-node`, namespace: releaseNs });
    expect(ds.spec?.template.spec?.containers[0]?.securityContext?.privileged).toBe(true);
    // No kubelet in this world: nothing runs, but the objects are there and valid.
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.readClusterRole({ name: `${fullname}-controller` });
    await rbac.readClusterRole({ name: `${fullname}-credentials-reader` });
    await rbac.readNamespacedRole({ name: `${fullname}-controller`, namespace: releaseNs });
    const admission = admin.makeApiClient(AdmissionregistrationV1Api);
    const mutating = await admission.readMutatingWebhookConfiguration({ name: `${fullname}-webhook` });
    expect(mutating.webhooks?.[0]?.objectSelector?.matchLabels).toEqual({ 'secretbinder.dev/inject': 'true' });
    expect(mutating.webhooks?.[0]?.namespaceSelector?.matchExpressions?.[0]?.values).toContain(releaseNs);
    await admission.readValidatingWebhookConfiguration({ name: `${fullname}-webhook` });
    const driver = await admin.makeApiClient(StorageV1Api).readCSIDriver({ name: 'secretbinder.dev' });
    expect(driver.spec.tokenRequests?.[0]?.audience).toBe('secretbinder.dev');
    // No key or certificate comes from Helm: the controller makes them at run time (ADR 0155).
    const secrets = (await core.listNamespacedSecret({ namespace: releaseNs })).items.map((s) => s.metadata?.name ?? '');
    expect(secrets.filter((name) => !name.startsWith('sh.helm.release.'))).toEqual([]);
  });
});

describe("the controller's service account", () => {
  it('cannot read or list Secrets or ConfigMaps outside its namespace, nor list Secrets in it', async () => {
    const client = sa.makeApiClient(CoreV1Api);
    expect(await statusOf(() => client.readNamespacedSecret({ name: 'db', namespace: tenantNs }))).toBe(403);
    expect(await statusOf(() => client.listNamespacedSecret({ namespace: tenantNs }))).toBe(403);
    expect(await statusOf(() => client.listSecretForAllNamespaces())).toBe(403);
    expect(await statusOf(() => client.listNamespacedSecret({ namespace: releaseNs }))).toBe(403);
    expect(await statusOf(() => client.listConfigMapForAllNamespaces())).toBe(403);
    expect(await statusOf(() => client.readNamespacedConfigMap({ name: 'kube-root-ca.crt', namespace: otherNs }))).toBe(403);
    // Its own namespace: one get by name (ClusterSecretBackend credentials, its own keys) — allowed,
    // and not there yet: the controller creates its keys when it starts.
    expect(await statusOf(() => client.readNamespacedSecret({ name: `${fullname}-content-hmac`, namespace: releaseNs }))).toBe(404);
  });

  it('lists bindings, backends, namespaces and pods, and reviews tokens', async () => {
    const custom = sa.makeApiClient(CustomObjectsApi);
    for (const kind of ['SecretBinding', 'SecretBackend', 'ClusterSecretBackend'] as const) {
      expect(await statusOf(() => custom.listClusterCustomObject({ group, version, plural: resources[kind].plural }))).toBe(200);
    }
    const client = sa.makeApiClient(CoreV1Api);
    expect(await statusOf(() => client.listNamespace())).toBe(200);
    expect(await statusOf(() => client.listPodForAllNamespaces())).toBe(200);
    const review = await sa.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token: 'not-a-token', audiences: ['secretbinder.dev'] } } });
    expect(review.status?.authenticated).not.toBe(true);
    // Not allowed: anything it does not need.
    expect(await statusOf(() => client.deleteNamespace({ name: otherNs }))).toBe(403);
    expect(await statusOf(() => custom.createNamespacedCustomObject({ group, version, plural: 'secretbindings', namespace: tenantNs, body: {} }))).toBe(403);
    expect(await statusOf(() => sa.makeApiClient(AppsV1Api).listDeploymentForAllNamespaces())).toBe(403);
  });

  it('mints tokens in its namespace only for tokenServiceAccounts — never its own or the node plugin\'s — and in a tenant namespace only after the tenant binds the credentials reader', async () => {
    const client = sa.makeApiClient(CoreV1Api);
    const mint = (namespace: string, name = 'default'): Promise<unknown> =>
      client.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: ['vault'], expirationSeconds: 600 } } });
    await eventually('default service account in the tenant namespace', async () => ((await statusOf(() => core.readNamespacedServiceAccount({ name: 'default', namespace: tenantNs }))) === 200 ? true : undefined));
    await core.createNamespacedServiceAccount({ namespace: releaseNs, body: { metadata: { name: 'vault-reader' } } });
    expect(await statusOf(() => mint(tenantNs))).toBe(403);
    // ADR 0150: by name only in the release namespace (RBAC resourceNames).
    expect(await statusOf(() => mint(releaseNs, 'vault-reader'))).toBe(200);
    expect(await statusOf(() => client.readNamespacedServiceAccount({ name: 'vault-reader', namespace: releaseNs }))).toBe(200);
    for (const other of ['default', controllerSa, `${fullname}-node`]) expect({ other, status: await statusOf(() => mint(releaseNs, other)) }).toEqual({ other, status: 403 });

    await admin.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace: tenantNs,
      body: {
        metadata: { name: 'secret-binder-credentials' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${fullname}-credentials-reader` },
        subjects: [{ kind: 'ServiceAccount', name: controllerSa, namespace: releaseNs }],
      },
    });
    await eventually('tenant opt-in effective', async () => ((await statusOf(() => client.readNamespacedSecret({ name: 'db', namespace: tenantNs }))) === 200 ? true : undefined));
    expect(await statusOf(() => mint(tenantNs))).toBe(200);
    // Still one get by name: no listing, and no other namespace.
    expect(await statusOf(() => client.listNamespacedSecret({ namespace: tenantNs }))).toBe(403);
    expect(await statusOf(() => client.readNamespacedSecret({ name: 'db', namespace: otherNs }))).toBe(403);
  });

  it('is enough to run the controller: it takes the lease and reconciles bindings to Ready', async () => {
    const custom = admin.makeApiClient(CustomObjectsApi);
    const examples = join(process.cwd(), 'deploy', 'examples');
    for (const [file, plural] of [['secret-backend-fake.yaml', 'secretbackends'], ['binding-single-files.yaml', 'secretbindings']] as const) {
      const body = parse(readFileSync(join(examples, file), 'utf8')) as { metadata: Record<string, unknown> };
      await custom.createNamespacedCustomObject({ group, version, plural, namespace: tenantNs, body: { ...body, metadata: { ...body.metadata, namespace: tenantNs } } });
    }
    // As the chart's Deployment: the broker's and the webhook's certificates and the HMAC key in
    // the Secrets the controller keeps (ADR 0155).
    controller = startChartController(`pkg-${suffix}-0`);
    const binding = await eventually(
      'binding shop-credentials Ready=True',
      async () => {
        const b = (await custom.getNamespacedCustomObject({ group, version, plural: 'secretbindings', namespace: tenantNs, name: 'shop-credentials' })) as {
          status?: { conditions?: { type: string; status: string; reason: string }[] };
        };
        return b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true ? b : undefined;
      },
      60_000,
    );
    expect(binding.status?.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('Reconciled');
    const lease = await admin.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: `${fullname}-controller`, namespace: releaseNs });
    expect(lease.spec?.holderIdentity).toBe(`pkg-${suffix}-0`);

    // The node plugin's view of the broker: the chart's ca.crt verifies it under the Service name,
    // and a token of the node plugin's account is reviewed (TokenReview under the controller's own
    // identity) — refused here only because it is not bound to a pod on a node.
    const running = controller;
    const address = await eventually('broker listening', () => Promise.resolve(/[^\n]*"message":"broker listening"[^\n]*/.exec(running.log())?.[0]));
    const port = Number(/"address":"127\.0\.0\.1:(\d+)"/.exec(address)?.[1]);
    const nodeToken = await core.createNamespacedServiceAccountToken({ name: `${fullname}-node`, namespace: releaseNs, body: { spec: { audiences: ['secretbinder.dev'], expirationSeconds: 600 } } });
    const ask = (ca: string | undefined): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port, path: '/v1/changes', method: 'POST', servername: `${fullname}-broker.${releaseNs}.svc`, ...(ca === undefined ? {} : { ca }), headers: { authorization: `Bearer ${nodeToken.status?.token ?? ''}`, 'content-type': 'application/json' } },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }); });
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ node: 'node-1', volumes: [], waitSeconds: 1 }));
      });
    const answer = await ask(readFileSync(caPath, 'utf8'));
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('Unauthenticated');
    await expect(ask(undefined)).rejects.toThrow(/self-signed|unable to verify|certificate/i);

    // The webhook configurations trust exactly the CA bundle of the webhook Secret.
    const webhookTls = await core.readNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace: releaseNs });
    await eventually('caBundle of both webhook configurations', async () => {
      const admission = admin.makeApiClient(AdmissionregistrationV1Api);
      const bundles = [
        ...((await admission.readMutatingWebhookConfiguration({ name: chart.webhookConfigurationName })).webhooks ?? []),
        ...((await admission.readValidatingWebhookConfiguration({ name: chart.webhookConfigurationName })).webhooks ?? []),
      ].map((w) => w.clientConfig.caBundle);
      return bundles.every((b) => b === webhookTls.data?.['ca.crt']) ? true : undefined;
    });

    // No request of the controller was refused.
    expect(controller.log()).not.toMatch(refusedRequest);
  });
});

describe('GitOps (ADR 0155)', () => {
  const kept = [`${fullname}-content-hmac`, `${fullname}-broker-tls`, `${fullname}-webhook-tls`];
  const contentHmac = async (): Promise<string | undefined> => {
    const b = (await admin.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group, version, plural: 'secretbindings', namespace: tenantNs, name: 'shop-credentials' })) as {
      status?: { contentHmac?: string };
    };
    return b.status?.contentHmac;
  };

  it('applying the render again (helm upgrade, then a server-side apply of helm template) and restarting the controller change no key and no content hash', async () => {
    const hmacBefore = await contentHmac();
    expect(hmacBefore).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    const before = await Promise.all(kept.map((name) => core.readNamespacedSecret({ name, namespace: releaseNs })));

    const upgraded = await helm(['upgrade', release, chartDir, '--namespace', releaseNs, '--kubeconfig', currentWorld().kube.kubeconfigPath, '-f', valuesFile(values)]);
    expect(upgraded.stderr).toBe('');
    expect(upgraded.code).toBe(0);
    // What Argo CD or Flux does: apply the rendered manifests as they are.
    const rendered = await template({ release, namespace: releaseNs, values });
    expect(rendered.result.code).toBe(0);
    const applied = await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=gitops-test', '-f', '-'], rendered.text);
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    // The render carries no caBundle, so applying it leaves the controller's in place.
    const admission = admin.makeApiClient(AdmissionregistrationV1Api);
    const bundle = (await admission.readValidatingWebhookConfiguration({ name: chart.webhookConfigurationName })).webhooks?.[0]?.clientConfig.caBundle;
    expect(bundle).toBe(before[2]?.data?.['ca.crt']);

    await controller?.stop();
    controller = startChartController(`pkg-${suffix}-1`);
    await controller.healthPort();
    const running = controller;
    await eventually('restarted controller serving the broker', () => Promise.resolve(/"message":"broker listening"/.test(running.log()) ? true : undefined), 60_000);

    const after = await Promise.all(kept.map((name) => core.readNamespacedSecret({ name, namespace: releaseNs })));
    expect(after.map((s) => s.data)).toEqual(before.map((s) => s.data));
    expect(after.map((s) => s.metadata?.resourceVersion)).toEqual(before.map((s) => s.metadata?.resourceVersion));
    expect(await contentHmac()).toBe(hmacBefore);
    expect(running.log()).not.toMatch(refusedRequest);
  });
});

/** The controller as the chart's Deployment runs it, under the chart's service account, on loopback ports. */
function startChartController(identity: string): ControllerProcess {
  const broker = chartBrokerFlags(chart);
  caPath = broker.caPath;
  return startController(currentWorld(), {
    identity,
    watchNamespaces: [tenantNs],
    // The chart's Role allows get/update of this Lease name only.
    leaseName: chart.leaseName,
    kubeconfigPath: saConfigPath,
    namespace: releaseNs,
    logLevel: 'info',
    hmacKeySecret: `${fullname}-content-hmac`,
    extraArgs: [
      ...broker.flags,
      '--webhook-address=127.0.0.1:0',
      `--webhook-tls-secret=${fullname}-webhook-tls`,
      `--webhook-dns-names=${fullname}-webhook.${releaseNs}.svc`,
      `--webhook-configuration-name=${chart.webhookConfigurationName}`,
    ],
  });
}
