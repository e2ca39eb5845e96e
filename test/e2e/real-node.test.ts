import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  StorageV1Api,
  type V1CSIDriver,
  type V1Pod,
} from '@kubernetes/client-node';
import { parse } from 'yaml';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { webhookConfigurations } from '../../src/webhook/webhook-configurations.ts';
import { binaryPaths, freePort } from '../harness/control-plane.ts';
import { startController, type ControllerProcess } from '../harness/controller-process.ts';
import { busyboxImage, mountsUnder, realNodeTaint, realNodeUnavailable, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { exposeHostService } from '../harness/node/service-network.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { startProcess, stopProcess, type ProcessRecord } from '../harness/process.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds, root } from '../integration/support/cluster.ts';

/**
 * Tier 2, end to end on a real node (ADR 0140): kubelet + containerd + runc run real busybox pods;
 * the webhook, which the API server calls through its Service's ClusterIP (kube-proxy, ADR 0180),
 * injects the CSI volume into an opted-in Deployment; the kubelet asks our node plugin
 * (a host process, registered through the kubelet's plugin registration socket, as the DaemonSet
 * would be) to publish it; the plugin gets the files from the controller's broker; the containers
 * read them from a tmpfs. Rotation, and what a deleted pod leaves on the host, are checked the same way.
 */

const unavailable = realNodeUnavailable();
if (unavailable !== undefined) process.stderr.write(`real-node e2e tier SKIPPED: ${unavailable}\n`);
const describeNode = unavailable === undefined ? describe : describe.skip;

const execFileAsync = promisify(execFile);
const suffix = randomBytes(3).toString('hex');
const appNs = `e2e-app-${suffix}`;
const sysNs = `e2e-sys-${suffix}`;
const scope = { 'secretbinder.dev/e2e-suite': suffix };
const webhookName = `secret-binder-e2e-${suffix}`;
const webhookService = 'secret-binder-e2e-webhook';
const refreshSeconds = 10;
const mountPath = '/secrets';
const secretPath = `e2e-${suffix}/db`;
const marker = (): string => `e2e-${randomBytes(12).toString('hex')}`;

let node: RealNode;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;
let controller: ControllerProcess | undefined;
let plugin: ProcessRecord | undefined;
let createdCsiDriver = false;
let value = marker();
let webhookPort = 0;

/** `kubectl exec` into a container, as a user would: stdout. */
async function kubectlExec(pod: string, container: string, command: readonly string[], namespace = appNs): Promise<string> {
  const kubectl = join(binaryPaths().kubernetes, 'kubectl');
  const { stdout } = await execFileAsync(kubectl, ['--kubeconfig', currentWorld().kube.kubeconfigPath, '-n', namespace, 'exec', pod, '-c', container, '--', ...command], {
    timeout: 20_000,
  });
  return stdout;
}

async function runningPods(selector: string, count: number): Promise<V1Pod[]> {
  return eventually(
    `${String(count)} pods ${selector} Running and Ready`,
    async () => {
      const pods = (await core.listNamespacedPod({ namespace: appNs, labelSelector: selector })).items.filter((p) => p.metadata?.deletionTimestamp === undefined);
      const ready = pods.filter((p) => p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return ready.length === count && pods.length === count ? ready : undefined;
    },
    120_000,
  );
}

async function createBinding(name: string, selector: Record<string, string>, strategy: 'Refresh' | 'RollingRestart'): Promise<void> {
  await custom.createNamespacedCustomObject({
    group, version, plural: resources.SecretBinding.plural, namespace: appNs,
    body: {
      apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name },
      spec: {
        backendRef: { kind: 'SecretBackend', name: 'openbao' },
        podSelector: { matchLabels: selector },
        containers: ['app'],
        refreshInterval: `${String(refreshSeconds)}s`,
        rotation: { strategy, ...(strategy === 'RollingRestart' ? { debounce: '1s' } : {}) },
        files: [{ path: 'db/password', key: secretPath, property: 'password' }],
      },
    },
  });
}

/** A Deployment of busybox pods opted in to `binding`: container `app` listed, `sidecar` not. */
async function createDeployment(name: string, binding: string, replicas: number): Promise<void> {
  const labels = { app: name };
  await apps.createNamespacedDeployment({
    namespace: appNs,
    body: {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: labels },
        template: {
          metadata: {
            labels: { ...labels, 'secretbinder.dev/inject': 'true' },
            annotations: { 'secretbinder.dev/bindings': binding, 'secretbinder.dev/mount-path': mountPath },
          },
          spec: {
            automountServiceAccountToken: false,
            terminationGracePeriodSeconds: 1,
            tolerations: [{ key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect }],
            containers: ['app', 'sidecar'].map((c) => ({ name: c, image: busyboxImage, imagePullPolicy: 'Never', command: ['sleep', '3600'] })),
          },
        },
      },
    },
  });
}

/**
 * Every regular file under `dir` that lives on the disk below it: files inside a mount (another
 * pod's live tmpfs) are not on the disk and are skipped.
 */
function diskFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const mounts = mountsUnder(dir);
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((file) => !mounts.some((m) => file.startsWith(`${m}/`)));
}

const mountedAt = (path: string): boolean => mountsUnder(path).includes(path);

describeNode('real node: pods read their secrets from tmpfs', () => {
  beforeAll(async () => {
    const world = currentWorld();
    const bao = world.openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const t0 = Date.now();
    node = await startRealNode(world, { log: (line) => process.stdout.write(`${line}\n`) });
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await installCrds(kc);
    const storage = kc.makeApiClient(StorageV1Api);
    if ((await storage.readCSIDriver({ name: 'secretbinder.dev' }).catch(() => undefined)) === undefined) {
      await storage.createCSIDriver({ body: parse(readFileSync(join(root, 'deploy', 'csidriver.yaml'), 'utf8')) as V1CSIDriver });
      createdCsiDriver = true;
    }
    await core.createNamespace({ body: { metadata: { name: sysNs } } });
    await core.createNamespace({ body: { metadata: { name: appNs, labels: scope } } });
    await core.createNamespacedServiceAccount({ namespace: sysNs, body: { metadata: { name: 'node-plugin' } } });
    await core.createNamespacedSecret({ namespace: appNs, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: appNs,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'openbao' },
        spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } } },
      },
    });
    await writeKvSecret(bao, secretPath, { password: value });

    // The controller out of cluster, with its broker and webhook. The webhook listens on the node's
    // bridge address, the endpoint of its Service: the API server calls the Service's ClusterIP,
    // which kube-proxy translates, as on a cluster (ADR 0180).
    const brokerPort = await freePort();
    webhookPort = await freePort();
    const brokerCa = join(node.dir, 'broker-ca.pem');
    await exposeHostService(kc, { namespace: sysNs, name: webhookService, address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: webhookPort }] });
    const { mutating, validating } = webhookConfigurations({
      names: { mutating: webhookName, validating: webhookName },
      clientConfig: (path) => ({ service: { name: webhookService, namespace: sysNs, path, port: 443 } }),
      excludedNamespaces: ['kube-system', sysNs],
      namespaceMatchLabels: scope,
    });
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.createMutatingWebhookConfiguration({ body: mutating });
    await admission.createValidatingWebhookConfiguration({ body: validating });
    controller = startController(world, {
      identity: `e2e-${suffix}`,
      watchNamespaces: [appNs],
      leaseName: `e2e-${suffix}`,
      leaderElect: false,
      logLevel: 'info',
      namespace: sysNs,
      extraArgs: [
        '--broker-address', `127.0.0.1:${String(brokerPort)}`,
        '--broker-ca-out', brokerCa,
        '--node-plugin-service-account', `${sysNs}:node-plugin`,
        '--webhook-address', `${node.bridgeAddress}:${String(webhookPort)}`,
        '--webhook-dns-names', `${webhookService}.${sysNs}.svc`,
        '--webhook-configuration-name', webhookName,
      ],
    });
    await controller.healthPort();
    await eventually('broker CA written', () => Promise.resolve(existsSync(brokerCa) ? true : undefined), 30_000);

    // The node plugin on the host, as its DaemonSet pod would run: its identity is a token bound to
    // a pod of its service account on this node (a real pod, here a busybox standing in for it).
    await core.createNamespacedPod({
      namespace: sysNs,
      body: {
        metadata: { name: 'node-plugin' },
        spec: {
          nodeName: node.name,
          serviceAccountName: 'node-plugin',
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 1,
          tolerations: [{ key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect }],
          containers: [{ name: 'plugin', image: busyboxImage, imagePullPolicy: 'Never', command: ['sleep', '3600'] }],
        },
      },
    });
    const pluginPod = await eventually('node-plugin pod Running', async () => {
      const p = await core.readNamespacedPod({ namespace: sysNs, name: 'node-plugin' });
      return p.status?.phase === 'Running' ? p : undefined;
    }, 60_000);
    const token = await core.createNamespacedServiceAccountToken({
      namespace: sysNs,
      name: 'node-plugin',
      body: { spec: { audiences: ['secretbinder.dev'], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'node-plugin', uid: pluginPod.metadata?.uid ?? '' } } },
    });
    const tokenFile = join(node.dir, 'node-plugin.token');
    writeFileSync(tokenFile, token.status?.token ?? '', { mode: 0o600 });
    const csiSocket = join(node.kubeletRootDir, 'plugins', 'secretbinder.dev', 'csi.sock');
    plugin = startProcess({
      name: `node-plugin-e2e-${suffix}`,
      command: process.execPath,
      args: [
        join(root, 'src/delivery/node-plugin.main.ts'),
        '--node-name', node.name,
        '--csi-socket', csiSocket,
        '--registration-socket', join(node.kubeletRootDir, 'plugins_registry', 'secretbinder.dev-reg.sock'),
        '--kubelet-csi-socket', csiSocket,
        '--broker-url', `https://127.0.0.1:${String(brokerPort)}`,
        '--broker-ca-file', brokerCa,
        '--token-file', tokenFile,
        '--tmpfs-size', '1Mi',
      ],
      logDir: world.logDir,
      maxLifetimeSeconds: 1800,
    });
    // Registered: the kubelet lists the driver in the node's CSINode.
    await eventually('CSINode lists secretbinder.dev', async () => {
      const csiNode = await storage.readCSINode({ name: node.name }).catch(() => undefined);
      return (csiNode?.spec.drivers ?? []).some((d) => d.name === 'secretbinder.dev') ? true : undefined;
    }, 60_000);
    process.stdout.write(`real-node e2e: node, controller and registered plugin ready in ${String(Date.now() - t0)} ms\n`);
  }, 240_000);

  afterAll(async () => {
    // Pods go first, while the plugin can still unpublish their volumes; then the rest.
    await core.deleteNamespace({ name: appNs }).catch(() => undefined);
    await eventually('app pods gone', async () => ((await core.listNamespacedPod({ namespace: appNs })).items.length === 0 ? true : undefined), 60_000).catch(() => undefined);
    if (plugin !== undefined) await stopProcess(plugin, 15_000);
    await controller?.stop();
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
    await core.deleteNamespace({ name: sysNs }).catch(() => undefined);
    if (createdCsiDriver) await kc.makeApiClient(StorageV1Api).deleteCSIDriver({ name: 'secretbinder.dev' }).catch(() => undefined);
    await node.stop();
  }, 180_000);

  it('runs 3 opted-in replicas; the listed container reads the secret from a tmpfs, the other has no mount', async () => {
    await createBinding('db', { app: 'web' }, 'Refresh');
    await createDeployment('web', 'db', 3);
    const pods = await runningPods('app=web', 3);
    for (const pod of pods) {
      const name = pod.metadata?.name ?? '';
      expect(pod.spec?.nodeName).toBe(node.name);
      expect(await kubectlExec(name, 'app', ['cat', `${mountPath}/db/password`])).toBe(value);
      const appMounts = (await kubectlExec(name, 'app', ['cat', '/proc/mounts'])).split('\n').map((l) => l.split(' '));
      const secretMount = appMounts.find((m) => m[1] === mountPath);
      expect(secretMount?.[2]).toBe('tmpfs');
      expect(secretMount?.[3]).toMatch(/(^|,)size=1024k(,|$)/);
      expect(secretMount?.[3]).toMatch(/(^|,)ro(,|$)/);
      const sidecarMounts = (await kubectlExec(name, 'sidecar', ['cat', '/proc/mounts'])).split('\n').map((l) => l.split(' ')[1]);
      expect(sidecarMounts).not.toContain(mountPath);
      expect(sidecarMounts.length).toBeGreaterThan(3);
      await expect(kubectlExec(name, 'sidecar', ['cat', `${mountPath}/db/password`])).rejects.toThrow(/No such file or directory/);
    }
  }, 240_000);

  it(`refreshes all 3 pods in place within refreshInterval + 2 s of a write to OpenBao`, async () => {
    const pods = (await runningPods('app=web', 3)).map((p) => p.metadata?.name ?? '');
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const next = marker();
    const written = Date.now();
    await writeKvSecret(bao, secretPath, { password: next });
    value = next;
    const arrivals = await Promise.all(
      pods.map(async (pod) =>
        eventually(`${pod} reads the new value`, async () => ((await kubectlExec(pod, 'app', ['cat', `${mountPath}/db/password`])) === next ? Date.now() - written : undefined), 3 * refreshSeconds * 1000),
      ),
    );
    const sorted = [...arrivals].sort((a, b) => a - b);
    process.stdout.write(`real-node e2e: Refresh reached 3 pods in ${sorted.map((t) => `${String(t)} ms`).join(', ')} after the write (refreshInterval ${String(refreshSeconds)} s)\n`);
    expect(sorted.at(-1)).toBeLessThanOrEqual(refreshSeconds * 1000 + 2000);
    // In place: same pods, no restart.
    const after = await runningPods('app=web', 3);
    expect(after.map((p) => p.metadata?.name).sort()).toEqual([...pods].sort());
    expect(after.every((p) => p.status?.containerStatuses?.every((c) => c.restartCount === 0) === true)).toBe(true);
  }, 120_000);

  it('rolls a RollingRestart Deployment exactly once for one rotation', async () => {
    await createBinding('db-rolling', { app: 'rolling' }, 'RollingRestart');
    await createDeployment('rolling', 'db-rolling', 2);
    await runningPods('app=rolling', 2);
    const replicaSets = async (): Promise<string[]> =>
      (await apps.listNamespacedReplicaSet({ namespace: appNs, labelSelector: 'app=rolling' })).items.map((r) => r.metadata?.name ?? '').sort();
    const before = await replicaSets();
    expect(before).toHaveLength(1);
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const next = marker();
    await writeKvSecret(bao, secretPath, { password: next });
    value = next;
    const rolled = await eventually('a second ReplicaSet', async () => ((await replicaSets()).length >= 2 ? await replicaSets() : undefined), 6 * refreshSeconds * 1000);
    const pods = await runningPods('app=rolling', 2);
    for (const pod of pods) expect(await kubectlExec(pod.metadata?.name ?? '', 'app', ['cat', `${mountPath}/db/password`])).toBe(next);
    // Two more intervals: no further rollout for the same content.
    await new Promise((resolve) => setTimeout(resolve, 2 * refreshSeconds * 1000));
    expect(await replicaSets()).toEqual(rolled);
    expect(rolled).toHaveLength(2);
    const deployment = await apps.readNamespacedDeployment({ namespace: appNs, name: 'rolling' });
    expect(deployment.spec?.template.metadata?.annotations?.['secretbinder.dev/content-hash']).toMatch(/\S/);
  }, 240_000);

  it('unmounts a deleted pod’s tmpfs on the host and leaves no secret bytes under the kubelet’s pods directory', async () => {
    const [pod] = await runningPods('app=web', 3);
    const uid = pod?.metadata?.uid ?? '';
    const podDir = join(node.kubeletRootDir, 'pods', uid);
    const volumes = join(podDir, 'volumes', 'kubernetes.io~csi');
    const [volume] = readdirSync(volumes);
    const target = join(volumes, volume ?? '', 'mount');
    expect(mountedAt(target)).toBe(true);
    expect(readFileSync(join(target, 'db', 'password'), 'utf8')).toBe(value);
    expect(statSync(target).isDirectory()).toBe(true);

    await core.deleteNamespacedPod({ namespace: appNs, name: pod?.metadata?.name ?? '' });
    await eventually('pod object gone', async () => ((await core.listNamespacedPod({ namespace: appNs, fieldSelector: `metadata.name=${pod?.metadata?.name ?? ''}` })).items.length === 0 ? true : undefined), 60_000);
    await eventually('volume unmounted', () => Promise.resolve(mountedAt(target) ? undefined : true), 30_000);
    const secretBytes = Buffer.from(value);
    // The deleted pod's directory, and anything else on the disk under the pods directory.
    expect(mountsUnder(podDir)).toEqual([]);
    const leaking = diskFilesUnder(join(node.kubeletRootDir, 'pods')).filter((file) => {
      try {
        return readFileSync(file).includes(secretBytes);
      } catch {
        return false;
      }
    });
    expect(leaking).toEqual([]);
    // The other pods still have theirs, in tmpfs.
    expect(mountsUnder(join(node.kubeletRootDir, 'pods')).length).toBeGreaterThanOrEqual(2);
  }, 120_000);
  it('pods resolve Services by their cluster DNS names (CoreDNS behind kube-system/kube-dns) and reach a Service ClusterIP', async () => {
    const world = currentWorld();
    const tolerations = [{ key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect }];
    const greeting = marker();
    const pod = (name: string, command: string[]): V1Pod => ({
      metadata: { name, labels: { app: name } },
      spec: { automountServiceAccountToken: false, terminationGracePeriodSeconds: 1, tolerations, containers: [{ name, image: busyboxImage, imagePullPolicy: 'Never', command }] },
    });
    await core.createNamespacedPod({ namespace: appNs, body: pod('httpd', ['sh', '-c', `mkdir -p /www && echo ${greeting} > /www/index.html && exec httpd -f -p 8080 -h /www`]) });
    await core.createNamespacedPod({ namespace: appNs, body: pod('dns-client', ['sleep', '3600']) });
    const service = await core.createNamespacedService({ namespace: appNs, body: { metadata: { name: 'httpd' }, spec: { selector: { app: 'httpd' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } } });
    await runningPods('app=httpd', 1);
    await runningPods('app=dns-client', 1);
    const nslookup = async (name: string): Promise<string> => kubectlExec('dns-client', 'dns-client', ['nslookup', '-type=a', name]);

    const kubernetesAnswer = await nslookup('kubernetes.default.svc.cluster.local');
    expect(kubernetesAnswer).toContain(`Server:\t\t${node.clusterDnsIp}`);
    expect(kubernetesAnswer).toMatch(new RegExp(`Address: ${(world.network?.kubernetesServiceIp ?? '?').replace(/\./g, '\\.')}$`, 'm'));
    const clusterIp = service.spec?.clusterIP ?? '';
    expect(clusterIp).not.toBe('');
    expect(await nslookup(`httpd.${appNs}.svc.cluster.local`)).toMatch(new RegExp(`Address: ${clusterIp.replace(/\./g, '\\.')}$`, 'm'));
    // A name outside the cluster gets no answer: nothing is asked of a resolver off this host.
    await expect(nslookup('example.com')).rejects.toThrow();

    // Through kube-proxy's DNAT to the httpd pod, by the Service's short name (the pod's search
    // path) and by its ClusterIP. (busybox-static's wget crashes in this image; nc speaks HTTP/1.0.)
    const httpGet = async (host: string): Promise<string> => kubectlExec('dns-client', 'dns-client', ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${host} 80`]);
    const body = await eventually('the Service answers', () => httpGet('httpd').catch(() => undefined), 30_000);
    expect(body).toMatch(/^HTTP\/1\.[01] 200 OK/);
    expect(body.trim().split('\n').at(-1)).toBe(greeting);
    expect((await httpGet(clusterIp)).trim().split('\n').at(-1)).toBe(greeting);
  }, 120_000);

  it('the API server calls the webhook through its Service ClusterIP: with its endpoint gone, an opted-in pod is refused', async () => {
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    const config = await admission.readMutatingWebhookConfiguration({ name: webhookName });
    expect(config.webhooks?.[0]?.clientConfig.url).toBeUndefined();
    expect(config.webhooks?.[0]?.clientConfig.service).toMatchObject({ name: webhookService, namespace: sysNs });
    const clusterIp = (await core.readNamespacedService({ namespace: sysNs, name: webhookService })).spec?.clusterIP ?? '';
    const optedIn: V1Pod = {
      metadata: { generateName: 'opted-in-', labels: { app: 'web', 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': 'db', 'secretbinder.dev/mount-path': mountPath } },
      spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image: busyboxImage, imagePullPolicy: 'Never', command: ['sleep', '1'] }] },
    };
    // Admission webhooks without side effects see dry-run requests: nothing is created.
    const admit = async (): Promise<V1Pod> => core.createNamespacedPod({ namespace: appNs, body: optedIn, dryRun: 'All' });
    expect((await admit()).spec?.volumes?.some((v) => v.csi?.driver === 'secretbinder.dev')).toBe(true);

    const discovery = kc.makeApiClient(DiscoveryV1Api);
    await discovery.deleteNamespacedEndpointSlice({ namespace: sysNs, name: `${webhookService}-host` });
    try {
      // Each try after the webhook server closed the API server's idle connection (5 s), so the
      // call dials the ClusterIP again and kube-proxy rejects it.
      const refusal = await eventually('an opted-in pod refused', async () => {
        await new Promise((resolve) => setTimeout(resolve, 6_000));
        return admit().then(
          () => undefined,
          (error: unknown) => String(error),
        );
      }, 60_000);
      expect(refusal).toContain('failed calling webhook');
      expect(refusal).toContain(`${clusterIp}:443`);
    } finally {
      await exposeHostService(kc, { namespace: sysNs, name: webhookService, address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: webhookPort }] });
    }
    await eventually('admitted again', () => admit().catch(() => undefined), 30_000);
  }, 120_000);
});
