import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { adminKubeConfig, errorText, eventually } from '../support/cluster.ts';
import { chartRelease, installChart, uninstallChart } from './chart-release.support.ts';

/**
 * A controller outage is no cluster outage (ADR 0094): the chart's webhooks, as installed by
 * `helm install` with their default `failurePolicy: Fail`, with the controller scaled to 0. The real
 * API server evaluates the webhooks' matchConditions: an ordinary pod in `default` is admitted
 * without calling the webhook; a pod that opts in (the inject label, or a secretbinder.dev CSI
 * volume) is refused, and the refusal names the webhook Service that does not answer.
 */

const suffix = randomBytes(3).toString('hex');
const fullname = `sbout-${suffix}`;
const chart = chartRelease(`out-${suffix}`, `out-rel-${suffix}`, fullname);
const serviceHost = `${fullname}-webhook.${chart.namespace}.svc`;

let kc: KubeConfig;
let core: CoreV1Api;
const created: string[] = [];

const pod = (
  name: string,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string>; csiVolume?: boolean; otherVolumes?: boolean } = {},
): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { 'secretbinder.dev/outage-suite': suffix, ...extra.labels }, ...(extra.annotations === undefined ? {} : { annotations: extra.annotations }) },
  spec: {
    containers: [
      {
        name: 'app',
        image: 'registry.invalid/none:1',
        ...(extra.csiVolume === true ? { volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] } : {}),
      },
    ],
    ...(extra.csiVolume === true ? { volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } } }] } : {}),
    ...(extra.otherVolumes === true ? { volumes: [{ name: 'scratch', emptyDir: { medium: 'Memory' } }, { name: 'other-csi', csi: { driver: 'other.example.com' } }] } : {}),
  },
});

/** The API server's refusal text, or undefined when it admitted the pod. */
async function refusal(body: V1Pod): Promise<string | undefined> {
  try {
    await core.createNamespacedPod({ namespace: 'default', body, dryRun: 'All' });
    return undefined;
  } catch (error) {
    return errorText(error);
  }
}

describe('webhooks while the controller is down', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    // Cluster mode and the default failurePolicy Fail: the webhooks see `default`. The node plugin
    // and the cluster-wide CSIDriver are not what this suite is about.
    await installChart(chart, {
      fullnameOverride: fullname,
      controller: { replicas: 1 },
      webhook: { timeoutSeconds: 2 },
      nodePlugin: { enabled: false },
      csiDriver: { create: false },
    });
    // The outage: no controller replica at all.
    const controller = { name: `${fullname}-controller`, namespace: chart.namespace };
    await kc.makeApiClient(AppsV1Api).replaceNamespacedDeploymentScale({ ...controller, body: { metadata: controller, spec: { replicas: 0 } } });
    await eventually('default service account in default', async () => (await core.listNamespacedServiceAccount({ namespace: 'default' })).items.find((s) => s.metadata?.name === 'default'));
  }, 120_000);

  afterAll(async () => {
    for (const name of created) await core.deleteNamespacedPod({ name, namespace: 'default', gracePeriodSeconds: 0 }).catch(() => undefined);
    await uninstallChart(chart);
    // Should the uninstall not run to the end, no Fail-closed webhook of this suite outlives it.
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: chart.webhookConfigurationName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: chart.webhookConfigurationName }).catch(() => undefined);
    await core.deleteNamespace({ name: chart.namespace }).catch(() => undefined);
  }, 120_000);

  it('installs fail-closed webhooks for a controller that has no replica', async () => {
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    const validating = await admission.readValidatingWebhookConfiguration({ name: chart.webhookConfigurationName });
    const mutating = await admission.readMutatingWebhookConfiguration({ name: chart.webhookConfigurationName });
    for (const webhook of [...(validating.webhooks ?? []), ...(mutating.webhooks ?? [])]) {
      expect(webhook.failurePolicy).toBe('Fail');
      expect(webhook.matchConditions?.map((c) => c.name)).toEqual(['pod-uses-secretbinder']);
    }
    const deployment = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: `${fullname}-controller`, namespace: chart.namespace });
    expect(deployment.spec?.replicas).toBe(0);
  });

  it('admits an ordinary pod in default without the webhook', async () => {
    const name = `ordinary-${suffix}`;
    const admitted = await core.createNamespacedPod({ namespace: 'default', body: pod(name) });
    created.push(name);
    expect(admitted.metadata?.uid).toBeDefined();
    // A pod with other labels, annotations and volumes of other kinds is as ordinary.
    expect(
      await refusal(pod(`other-${suffix}`, { labels: { 'secretbinder.dev/inject': 'false' }, annotations: { 'secretbinder.dev/bindings': 'db' }, otherVolumes: true })),
    ).toBeUndefined();
  });

  it('refuses a pod labelled for injection, naming the webhook Service that does not answer', async () => {
    const message = await refusal(pod(`injected-${suffix}`, { labels: { 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': 'db' } }));
    expect(message).toContain('failed calling webhook "inject.secretbinder.dev"');
    expect(message).toContain(serviceHost);
  });

  it('refuses a pod that declares a secretbinder.dev CSI volume, naming the webhook Service that does not answer', async () => {
    const message = await refusal(pod(`declared-${suffix}`, { csiVolume: true }));
    expect(message).toContain('failed calling webhook "mounts.secretbinder.dev"');
    expect(message).toContain(serviceHost);
  });
});
