import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, StorageV1Api, type KubeConfig, type V1CSIDriver, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { binaryPaths, freePort } from '../harness/control-plane.ts';
import { startController, type ControllerProcess } from '../harness/controller-process.ts';
import { buildProjectImage } from '../harness/node/project-image.ts';
import { busyboxImage, realNodeTaint, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { startProcess, stopProcess, type ProcessRecord } from '../harness/process.ts';
import type { WorldState } from '../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds, root } from '../integration/support/cluster.ts';

/**
 * The dynamic-secrets world on the real node (issue 21): the node plugin on the host registered
 * with the kubelet (as in real-node.test.ts), the controller and its broker as a separate process
 * that can be SIGKILLed and started again on the same broker port, an OpenBao SecretBackend, and
 * the project image in containerd (its `node` runs the TLS pods). Pods carry the CSI volume
 * themselves (no webhook: the webhook's injection is real-node.test.ts's subject).
 */

export const tolerations = [{ key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect }];
export const mountPath = '/secrets';

export interface DynamicNodeWorld {
  readonly node: RealNode;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly ns: string;
  controller(): ControllerProcess;
  kubectl(args: readonly string[]): Promise<string>;
  exec(pod: string, container: string, command: readonly string[]): Promise<string>;
  createBinding(name: string, spec: Record<string, unknown>): Promise<void>;
  deleteBinding(name: string): Promise<void>;
  /** A Deployment whose container `app` (image busybox, or the project image for `node`) mounts `binding` at /secrets. */
  createDeployment(name: string, binding: string, replicas: number, app?: Partial<V1Container>): Promise<void>;
  runningPods(selector: string, count: number, timeoutMs?: number): Promise<V1Pod[]>;
  /** SIGKILL of the controller process; `whileDown` runs; a new controller starts on the same broker port. */
  killController(whileDown: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

export async function startDynamicNodeWorld(world: WorldState, options: { readonly suffix: string; readonly log: (line: string) => void }): Promise<DynamicNodeWorld> {
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const { suffix } = options;
  const ns = `e2e-dyn-${suffix}`;
  const sysNs = `e2e-dyn-sys-${suffix}`;
  const image = buildProjectImage();
  options.log('[dynamic] project image built (or cached)');
  const node = await startRealNode(world, { log: options.log });
  node.ctr(['images', 'import', image.archivePath]);
  options.log('[dynamic] project image imported');
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const storage = kc.makeApiClient(StorageV1Api);
  let controller: ControllerProcess | undefined;
  let plugin: ProcessRecord | undefined;
  let createdCsiDriver = false;
  let generation = 0;
  const brokerPort = await freePort();
  const brokerCa = join(node.dir, `dyn-broker-ca-${suffix}.pem`);

  const launch = async (): Promise<ControllerProcess> => {
    generation += 1;
    const started = startController(world, {
      identity: `e2e-dyn-${suffix}-${String(generation)}`,
      watchNamespaces: [ns],
      leaseName: `e2e-dyn-${suffix}`,
      leaderElect: false,
      logLevel: 'info',
      namespace: sysNs,
      extraArgs: ['--broker-address', `127.0.0.1:${String(brokerPort)}`, '--broker-ca-out', brokerCa, '--node-plugin-service-account', `${sysNs}:node-plugin`],
    });
    await started.healthPort();
    return started;
  };

  const stop = async (): Promise<void> => {
    // Pods go first, while the plugin can still unpublish their volumes; then the rest.
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    await eventually('dynamic e2e pods gone', async () => ((await core.listNamespacedPod({ namespace: ns })).items.length === 0 ? true : undefined), 60_000).catch(() => undefined);
    if (plugin !== undefined) await stopProcess(plugin, 15_000);
    await controller?.stop();
    await core.deleteNamespace({ name: sysNs }).catch(() => undefined);
    if (createdCsiDriver) await storage.deleteCSIDriver({ name: 'secretbinder.dev' }).catch(() => undefined);
    await node.stop();
  };

  try {
    await installCrds(kc);
    if ((await storage.readCSIDriver({ name: 'secretbinder.dev' }).catch(() => undefined)) === undefined) {
      await storage.createCSIDriver({ body: parse(readFileSync(join(root, 'deploy', 'csidriver.yaml'), 'utf8')) as V1CSIDriver });
      createdCsiDriver = true;
    }
    await core.createNamespace({ body: { metadata: { name: sysNs } } });
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: sysNs, body: { metadata: { name: 'node-plugin' } } });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: ns,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'openbao' },
        spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } } },
      },
    });
    controller = await launch();
    options.log('[dynamic] controller listening');
    await eventually('broker CA written', () => Promise.resolve(existsSync(brokerCa) ? true : undefined), 30_000);

    // The node plugin's identity: a token bound to a pod of its service account on this node.
    await core.createNamespacedPod({
      namespace: sysNs,
      body: {
        metadata: { name: 'node-plugin' },
        spec: {
          nodeName: node.name, serviceAccountName: 'node-plugin', automountServiceAccountToken: false, terminationGracePeriodSeconds: 1, tolerations,
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
    options.log('[dynamic] node-plugin identity pod running');
    const tokenFile = join(node.dir, `dyn-node-plugin-${suffix}.token`);
    writeFileSync(tokenFile, token.status?.token ?? '', { mode: 0o600 });
    const csiSocket = join(node.kubeletRootDir, 'plugins', 'secretbinder.dev', 'csi.sock');
    plugin = startProcess({
      name: `node-plugin-dyn-${suffix}`,
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
    await eventually('CSINode lists secretbinder.dev', async () => {
      const csiNode = await storage.readCSINode({ name: node.name }).catch(() => undefined);
      return (csiNode?.spec.drivers ?? []).some((d) => d.name === 'secretbinder.dev') ? true : undefined;
    }, 60_000);
    options.log('[dynamic] node plugin registered');

    const execFileAsync = promisify(execFile);
    const kubectl = async (args: readonly string[]): Promise<string> =>
      (await execFileAsync(join(binaryPaths().kubernetes, 'kubectl'), ['--kubeconfig', world.kube.kubeconfigPath, '-n', ns, ...args], { timeout: 20_000 })).stdout;
    return {
      node, kc, core, apps, custom, ns,
      controller: () => {
        if (controller === undefined) throw new Error('no controller');
        return controller;
      },
      kubectl,
      exec: (pod, container, command) => kubectl(['exec', pod, '-c', container, '--', ...command]),
      createBinding: async (name, spec) => {
        await custom.createNamespacedCustomObject({
          group, version, plural: resources.SecretBinding.plural, namespace: ns,
          body: { apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name }, spec: { backendRef: { kind: 'SecretBackend', name: 'openbao' }, containers: ['app'], ...spec } },
        });
      },
      deleteBinding: async (name) => {
        await custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name });
      },
      createDeployment: async (name, binding, replicas, app = {}) => {
        const labels = { app: name };
        await apps.createNamespacedDeployment({
          namespace: ns,
          body: {
            metadata: { name },
            spec: {
              replicas,
              selector: { matchLabels: labels },
              template: {
                metadata: { labels },
                spec: {
                  automountServiceAccountToken: false,
                  terminationGracePeriodSeconds: 1,
                  tolerations,
                  volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding } } }],
                  containers: [{ name: 'app', image: busyboxImage, imagePullPolicy: 'Never', command: ['sleep', '3600'], ...app, volumeMounts: [{ name: 'secrets', mountPath, readOnly: true }] }],
                },
              },
            },
          },
        });
      },
      runningPods: (selector, count, timeoutMs = 90_000) =>
        eventually(
          `${String(count)} pods ${selector} Running and Ready`,
          async () => {
            const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: selector })).items.filter((p) => p.metadata?.deletionTimestamp === undefined);
            const ready = pods.filter((p) => p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
            return ready.length === count && pods.length === count ? ready : undefined;
          },
          timeoutMs,
        ),
      killController: async (whileDown) => {
        await controller?.kill();
        controller = undefined;
        await whileDown();
        controller = await launch();
      },
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
