/**
 * The scale tier's webhook row (ADR 0270): the leader's admission webhook registered with the API
 * server (the configurations the chart installs, with a URL instead of a Service, scoped to one
 * bench namespace), then `admissions` dry-run creates of a pod that asks for injection. Timed at
 * the webhook (its own histogram, before and after) and at the client (the create through the API
 * server, which calls both the mutating and the validating webhook).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AdmissionregistrationV1Api, type V1Pod } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { bindingsAnnotation, injectLabel } from '../../src/webhook/inject.annotations.ts';
import { webhookConfigurations } from '../../src/webhook/webhook-configurations.ts';
import { processLog } from '../harness/controller-process.ts';
import { benchBackend, type BenchWorld, type ControllerUnderBench } from './scale-world.ts';
import { median, quantile, row, scaleFigures, type Row } from './scale-report.ts';
import { boundText, fetchMetrics, histogramBuckets, quantileBetween } from './scale-metrics.ts';

async function webhookPort(controller: ControllerUnderBench): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const log = processLog(controller.record);
    const match = /"message":"webhook listening"[^\n]*"port":(\d+)/.exec(log) ?? /"port":(\d+)[^\n]*"message":"webhook listening"/.exec(log);
    if (match?.[1] !== undefined) return Number(match[1]);
    await sleep(100);
  }
  throw new Error(`controller ${controller.identity}: no "webhook listening" line in its log`);
}

export async function webhookRow(bench: BenchWorld, leader: ControllerUnderBench, admissions: number, log: (line: string) => void): Promise<Row> {
  const { core, custom } = bench;
  const ns = bench.namespaces[0] as string;
  // The name the controller was started with (--webhook-configuration-name): it publishes its CA there.
  const name = `bench-${bench.systemNamespace}`;
  const admission = bench.kc.makeApiClient(AdmissionregistrationV1Api);
  const binding = `admit-${randomBytes(3).toString('hex')}`;
  const port = await webhookPort(leader);
  const { mutating, validating } = webhookConfigurations({
    names: { mutating: name, validating: name },
    clientConfig: (path) => ({ url: `https://localhost:${String(port)}${path}` }),
    excludedNamespaces: ['kube-system', bench.systemNamespace],
    namespaceMatchLabels: { 'kubernetes.io/metadata.name': ns },
  });
  try {
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBinding.plural, namespace: ns,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name: binding },
        spec: { backendRef: { kind: 'SecretBackend', name: benchBackend }, podSelector: { matchLabels: { admit: binding } }, containers: ['app'], files: [{ path: 'password', key: `bench/${bench.systemNamespace}/key-0`, property: 'password' }] },
      },
    });
    // The controller publishes its CA into these on its next round (minutes apart); the bench does
    // not wait for it: the trust bundle is the `ca.crt` of the webhook's TLS Secret.
    const tls = await core.readNamespacedSecret({ namespace: bench.systemNamespace, name: 'secret-binder-webhook-tls' });
    const caBundle = tls.data?.['ca.crt'] ?? '';
    for (const hook of [...(mutating.webhooks ?? []), ...(validating.webhooks ?? [])]) hook.clientConfig.caBundle = caBundle;
    await admission.createMutatingWebhookConfiguration({ body: mutating });
    await admission.createValidatingWebhookConfiguration({ body: validating });
    const body: V1Pod = {
      apiVersion: 'v1', kind: 'Pod',
      metadata: { generateName: 'admit-', labels: { [injectLabel]: 'true', admit: binding }, annotations: { [bindingsAnnotation]: binding } },
      spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image: 'busybox' }] },
    };
    const injected = (pod: V1Pod): boolean => (pod.spec?.volumes ?? []).some((v) => v.csi?.driver === 'secretbinder.dev');
    // Until the controller has published its CA and its binding cache has the binding, creates are refused or not patched.
    let last = '';
    for (let i = 0; ; i++) {
      const ok = await core.createNamespacedPod({ namespace: ns, body, dryRun: 'All' }).then(injected, (error: unknown) => {
        last = error instanceof Error ? error.message : String(error);
        return false;
      });
      if (ok) break;
      if (i > 300) throw new Error(`the webhook did not inject within 60 s (last answer: ${last.slice(0, 500)})`);
      await sleep(200);
    }
    for (let i = 0; i < 10; i++) await core.createNamespacedPod({ namespace: ns, body, dryRun: 'All' });
    const healthPort = await leader.healthPort();
    const histogram = 'secretbinder_webhook_admission_duration_seconds';
    const text = await fetchMetrics(healthPort);
    const before = { mutate: histogramBuckets(text, histogram, 'webhook="mutate"'), validate: histogramBuckets(text, histogram, 'webhook="validate"') };
    const times: number[] = [];
    for (let i = 0; i < admissions; i++) {
      const t = performance.now();
      const pod = await core.createNamespacedPod({ namespace: ns, body, dryRun: 'All' });
      times.push(performance.now() - t);
      if (!injected(pod)) throw new Error('an admission was not patched');
    }
    const after = await fetchMetrics(healthPort);
    const mutate = quantileBetween(before.mutate, histogramBuckets(after, histogram, 'webhook="mutate"'), 0.99);
    const validate = quantileBetween(before.validate, histogramBuckets(after, histogram, 'webhook="validate"'), 0.99);
    const p99 = quantile(times, 0.99);
    log(`webhook: mutate p99 ${boundText(mutate.upperBoundSeconds, 1)}, validate p99 ${boundText(validate.upperBoundSeconds, 1)}; client p99 ${p99.toFixed(1)} ms`);
    const worst = Math.max(mutate.upperBoundSeconds, validate.upperBoundSeconds);
    return row(
      scaleFigures[10], '≤ 5 ms',
      `at the webhook: mutate p99 ${boundText(mutate.upperBoundSeconds, 1)} (${String(mutate.count)} admissions), validate p99 ${boundText(validate.upperBoundSeconds, 1)} (${String(validate.count)}), its histogram's buckets; ` +
        `at the client (dry-run pod create through the API server, both webhooks called): p99 ${p99.toFixed(1)} ms, median ${median(times).toFixed(1)} ms over ${String(admissions)}`,
      worst <= 0.005 ? 'pass' : 'FAIL',
      { mutateP99UpperBoundMs: mutate.upperBoundSeconds * 1000, validateP99UpperBoundMs: validate.upperBoundSeconds * 1000, clientP99Ms: p99, clientMedianMs: median(times), admissions },
    );
  } finally {
    await admission.deleteMutatingWebhookConfiguration({ name }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name }).catch(() => undefined);
  }
}
