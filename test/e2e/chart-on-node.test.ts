import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AdmissionregistrationV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, type KubeConfig, StorageV1Api, type V1Pod } from '@kubernetes/client-node';
import { freePort } from '../harness/control-plane.ts';
import { buildProjectImage, projectImageReference } from '../harness/node/project-image.ts';
import { realNodeTaint, realNodeUnavailable, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, eventually } from '../integration/support/cluster.ts';
import { chartRelease, installChart, uninstallChart } from '../integration/packaging/chart-release.support.ts';
import { command, helmPath } from '../integration/packaging/helm.support.ts';

/**
 * The chart on the real node (ADR 0141): `helm install` with the project image assembled on this
 * host (no registry, no Docker engine) runs the controller Deployment and the node-plugin
 * DaemonSet as real containers; both become Ready, the controller leads and serves /readyz to the
 * kubelet's probe, the containerized plugin registers with the kubelet and passes its own probes
 * (registered, broker reachable), and `helm test` passes (ADR 0162).
 */

const unavailable = realNodeUnavailable();
if (unavailable !== undefined) process.stderr.write(`real-node e2e tier (chart) SKIPPED: ${unavailable}\n`);
const describeNode = unavailable === undefined ? describe : describe.skip;

const release = chartRelease('sb-e2e', `sb-e2e-${String(process.pid)}`);
let node: RealNode;
let kc: KubeConfig;
let core: CoreV1Api;

const readyPods = async (selector: string): Promise<V1Pod[]> =>
  (await core.listNamespacedPod({ namespace: release.namespace, labelSelector: selector })).items.filter(
    (p) => p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
  );

describeNode('the chart on a real node, from a locally assembled image', () => {
  beforeAll(async () => {
    const world = currentWorld();
    const t0 = Date.now();
    node = await startRealNode(world, { log: (line) => process.stdout.write(`${line}\n`) });
    const image = buildProjectImage();
    const built = Date.now();
    node.ctr(['images', 'import', image.archivePath]);
    process.stdout.write(`chart e2e: project image ${image.manifestDigest.slice(0, 19)} built or reused in ${String(built - t0)} ms, imported in ${String(Date.now() - built)} ms\n`);
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    const toleration = { key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect };
    const [http, broker, webhook, pluginHealth] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const [repository, tag] = projectImageReference.split(/:(?=[^:]+$)/);
    await installChart(release, {
      image: { repository, tag, pullPolicy: 'Never' },
      controller: {
        replicas: 1,
        tolerations: [toleration],
        // This world's API server listens on 127.0.0.1 only and has no kube-proxy: the controller
        // shares the node's network namespace and is told where the API server is.
        hostNetwork: true,
        ports: { http, broker, webhook },
        extraEnv: [
          { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
          { name: 'KUBERNETES_SERVICE_PORT', value: new URL(world.kube.server).port },
        ],
      },
      // No Service routing here either: the plugin shares the node's network namespace and reaches
      // the broker on the node's loopback, under a name of the broker's certificate.
      nodePlugin: { kubeletDir: node.kubeletRootDir, hostNetwork: true, healthPort: pluginHealth, brokerUrl: `https://localhost:${String(broker)}` },
      broker: { extraDnsNames: ['localhost'] },
      // The webhook runs and serves (helm test calls every replica); the API server reaches webhooks
      // through Services, which this world cannot route, but only opted-in pods are sent to it
      // (ADR 0094) and this suite creates none.
    });
  }, 300_000);

  afterAll(async () => {
    await uninstallChart(release);
    // Should the uninstall not run to the end, no webhook of this release (failurePolicy Fail for
    // opted-in pods, unreachable in this world) outlives the suite and refuses another suite's pods.
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: release.webhookConfigurationName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: release.webhookConfigurationName }).catch(() => undefined);
    await core.deleteNamespace({ name: release.namespace }).catch(() => undefined);
    await eventually('release pods gone', async () => ((await core.listNamespacedPod({ namespace: release.namespace })).items.length === 0 ? true : undefined), 60_000).catch(() => undefined);
    await node.stop();
  }, 180_000);

  it('runs the controller Deployment to Ready (kubelet readiness probe on /readyz) and it takes the lease', async () => {
    const [pod] = await eventually('controller pod Ready', async () => {
      const pods = await readyPods('app.kubernetes.io/component=controller');
      return pods.length === 1 ? pods : undefined;
    }, 180_000);
    expect(pod?.spec?.containers[0]?.image).toBe(projectImageReference);
    expect(pod?.spec?.nodeName).toBe(node.name);
    expect(pod?.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    // The Deployment's status follows the pod's readiness a moment later (the deployment controller).
    const deployment = await eventually('Deployment counts the ready replica', async () => {
      const d = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ namespace: release.namespace, name: `${release.fullname}-controller` });
      return d.status?.readyReplicas === 1 ? d : undefined;
    }, 60_000);
    expect(deployment.status?.readyReplicas).toBe(1);
    const lease = await eventually('lease held', async () => {
      const l = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: release.namespace, name: release.leaseName }).catch(() => undefined);
      return l?.spec?.holderIdentity === pod?.metadata?.name ? l : undefined;
    }, 60_000);
    expect(lease.spec?.holderIdentity).toBe(pod?.metadata?.name);
  }, 240_000);

  it('runs the node-plugin DaemonSet to Ready and the containerized plugin registers with the kubelet', async () => {
    const [pod] = await eventually('node-plugin pod Ready', async () => {
      const pods = await readyPods('app.kubernetes.io/component=node-plugin');
      return pods.length === 1 ? pods : undefined;
    }, 180_000);
    expect(pod?.spec?.nodeName).toBe(node.name);
    const drivers = await eventually('CSINode lists secretbinder.dev', async () => {
      const csiNode = await kc.makeApiClient(StorageV1Api).readCSINode({ name: node.name }).catch(() => undefined);
      const names = (csiNode?.spec.drivers ?? []).map((d) => d.name);
      return names.includes('secretbinder.dev') ? names : undefined;
    }, 60_000);
    expect(drivers).toContain('secretbinder.dev');
    expect(pod?.status?.containerStatuses?.every((c) => c.restartCount === 0)).toBe(true);
    // Ready means the kubelet's readiness probe passed: registered and the broker reachable.
    expect(pod?.spec?.containers[0]?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(pod?.spec?.containers[0]?.livenessProbe?.httpGet?.path).toBe('/healthz');
  }, 240_000);

  it('passes helm test: CRDs served, broker reachable over TLS, every controller replica answers the webhook', async () => {
    // The controller's webhook answers only once its binding cache synced and its CA is published.
    await eventually('controller Ready', async () => ((await readyPods('app.kubernetes.io/component=controller')).length === 1 ? true : undefined), 180_000);
    const result = await command(helmPath, ['test', release.release, '--namespace', release.namespace, '--kubeconfig', currentWorld().kube.kubeconfigPath, '--logs', '--timeout', '3m'], undefined, { timeoutMs: 200_000 });
    process.stdout.write(`helm test:\n${result.stdout}${result.stderr}\n`);
    expect(result.stdout).toMatch(/PASS crds: /);
    expect(result.stdout).toMatch(/PASS broker: broker localhost:\d+ answered over TLS and refused an anonymous caller/);
    expect(result.stdout).toMatch(/PASS webhook: 1 controller replica\(s\) answered \/validate over TLS/);
    expect(result.stdout).toMatch(/Phase:\s+Succeeded/);
    expect(result.code).toBe(0);
  }, 240_000);
});
