import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig, type V1Pod, type V1SecurityContext } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { webhookConfigurations } from '../../src/webhook/webhook-configurations.ts';
import { binaryPaths, freePort } from '../harness/control-plane.ts';
import { startController, type ControllerProcess } from '../harness/controller-process.ts';
import { startHostForward, type HostForward } from '../harness/node/host-forward.ts';
import { buildProjectImage, projectImageReference } from '../harness/node/project-image.ts';
import { busyboxImage, realNodeTaint, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { exposeHostService } from '../harness/node/service-network.ts';
import type { WorldState } from '../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from '../integration/support/cluster.ts';

/**
 * The agent's world on the real node (ADR 0250), shared by the e2e suite and the bench: the project
 * image in the node's containerd, a namespace enforcing Pod Security `restricted`, an OpenBao
 * SecretBackend, and the controller out of cluster with its webhook (called by the API server
 * through its Service) and its broker (reached by pods through its Service: a forward on the
 * bridge address is the endpoint, ADR 0180/0192), injecting agents from the project image.
 */

export const agentMountPath = '/secrets';
export const brokerService = 'secret-binder-broker';
const webhookService = 'secret-binder-webhook';
export const tolerations = [{ key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect }];
/** What `restricted` asks of every container (the agent's own is the webhook's business). */
export const restrictedContainer: V1SecurityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };

export interface AgentWorldOptions {
  readonly suffix: string;
  readonly refreshSeconds: number;
  readonly startTimeoutSeconds: number;
  readonly log: (line: string) => void;
}

export interface AgentWorld {
  readonly node: RealNode;
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly appNs: string;
  readonly sysNs: string;
  kubectl(args: readonly string[]): Promise<string>;
  exec(pod: string, container: string, command: readonly string[]): Promise<string>;
  createBinding(name: string, app: string, strategy: 'Refresh' | 'RollingRestart' | 'None', secretPath: string): Promise<void>;
  /** Takes the broker's Service endpoint away (pods get connection refused) or gives it back. */
  brokerReachable(reachable: boolean): Promise<void>;
  runningPods(selector: string, count: number, timeoutMs?: number): Promise<V1Pod[]>;
  stop(): Promise<void>;
}

/** An opted-in pod template that passes `restricted`: container `app` is listed, `proxy` is not. */
export function agentPodTemplate(app: string, binding: string, appCommand: string, inject = true): { metadata: NonNullable<V1Pod['metadata']>; spec: NonNullable<V1Pod['spec']> } {
  return {
    metadata: {
      labels: { app, ...(inject ? { 'secretbinder.dev/inject': 'true' } : {}) },
      annotations: inject ? { 'secretbinder.dev/bindings': binding, 'secretbinder.dev/mount-path': agentMountPath } : {},
    },
    spec: {
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      tolerations,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        { name: 'app', image: busyboxImage, imagePullPolicy: 'Never', command: ['sh', '-c', appCommand], securityContext: restrictedContainer },
        { name: 'proxy', image: busyboxImage, imagePullPolicy: 'Never', command: ['sleep', '3600'], securityContext: restrictedContainer },
      ],
    },
  };
}

/** Every running agent process on this host: its RSS figures and its cgroup's memory.current. */
export function agentProcesses(): { pid: number; rssKib: number; anonKib: number; cgroupBytes: number | undefined }[] {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('delivery/agent/agent.main.js')) continue;
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
      const cgroup = /^0::(.*)$/m.exec(readFileSync(`/proc/${entry}/cgroup`, 'utf8'))?.[1];
      let cgroupBytes: number | undefined;
      try {
        cgroupBytes = cgroup === undefined ? undefined : Number(readFileSync(join('/sys/fs/cgroup', cgroup, 'memory.current'), 'utf8'));
      } catch {
        cgroupBytes = undefined;
      }
      out.push({ pid: Number(entry), rssKib: field('VmRSS'), anonKib: field('RssAnon'), cgroupBytes });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

export async function startAgentWorld(world: WorldState, options: AgentWorldOptions): Promise<AgentWorld> {
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const { suffix } = options;
  const appNs = `e2e-agent-${suffix}`;
  const sysNs = `e2e-agent-sys-${suffix}`;
  const scope = { 'secretbinder.dev/e2e-suite': `agent-${suffix}` };
  const webhookName = `secret-binder-agent-e2e-${suffix}`;
  const image = buildProjectImage();
  const node = await startRealNode(world, { log: options.log });
  node.ctr(['images', 'import', image.archivePath]);
  const kc = adminKubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  let controller: ControllerProcess | undefined;
  let forward: HostForward | undefined;
  const stop = async (): Promise<void> => {
    await core.deleteNamespace({ name: appNs }).catch(() => undefined);
    await eventually('agent pods gone', async () => ((await core.listNamespacedPod({ namespace: appNs })).items.length === 0 ? true : undefined), 60_000).catch(() => undefined);
    await controller?.stop();
    await forward?.stop();
    await admission.deleteMutatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
    await core.deleteNamespace({ name: sysNs }).catch(() => undefined);
    await node.stop();
  };
  try {
    await installCrds(kc);
    await core.createNamespace({ body: { metadata: { name: sysNs } } });
    await core.createNamespace({ body: { metadata: { name: appNs, labels: { ...scope, 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
    await core.createNamespacedSecret({ namespace: appNs, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBackend.plural, namespace: appNs,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'openbao' },
        spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } } },
      },
    });
    const brokerPort = await freePort();
    const webhookPort = await freePort();
    const brokerCa = join(node.dir, `agent-broker-ca-${suffix}.pem`);
    forward = await startHostForward({ address: node.bridgeAddress, targetPort: brokerPort, maxLifetimeMs: 1_800_000 });
    const brokerPorts = [{ name: 'https', protocol: 'TCP' as const, port: 443, hostPort: forward.port }];
    await exposeHostService(kc, { namespace: sysNs, name: brokerService, address: node.bridgeAddress, ports: brokerPorts });
    await exposeHostService(kc, { namespace: sysNs, name: webhookService, address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: webhookPort }] });
    const { mutating, validating } = webhookConfigurations({
      names: { mutating: webhookName, validating: webhookName },
      clientConfig: (path) => ({ service: { name: webhookService, namespace: sysNs, path, port: 443 } }),
      excludedNamespaces: ['kube-system', sysNs],
      namespaceMatchLabels: scope,
    });
    await admission.createMutatingWebhookConfiguration({ body: mutating });
    await admission.createValidatingWebhookConfiguration({ body: validating });
    controller = startController(world, {
      identity: `e2e-agent-${suffix}`,
      watchNamespaces: [appNs],
      leaseName: `e2e-agent-${suffix}`,
      leaderElect: false,
      logLevel: 'info',
      namespace: sysNs,
      extraArgs: [
        '--broker-address', `127.0.0.1:${String(brokerPort)}`,
        '--broker-ca-out', brokerCa,
        '--broker-dns-names', `${brokerService}.${sysNs}.svc,localhost`,
        '--webhook-address', `${node.bridgeAddress}:${String(webhookPort)}`,
        '--webhook-dns-names', `${webhookService}.${sysNs}.svc`,
        '--webhook-configuration-name', webhookName,
        '--agent-image', projectImageReference,
        '--agent-image-pull-policy', 'Never',
        '--agent-broker-url', `https://${brokerService}.${sysNs}.svc:443`,
        '--agent-broker-ca-file', brokerCa,
        '--agent-start-timeout', String(options.startTimeoutSeconds),
      ],
    });
    await controller.healthPort();
    await eventually('broker CA written', () => Promise.resolve(existsSync(brokerCa) ? true : undefined), 30_000);

    const execFileAsync = promisify(execFile);
    const kubectl = async (args: readonly string[]): Promise<string> =>
      (await execFileAsync(join(binaryPaths().kubernetes, 'kubectl'), ['--kubeconfig', world.kube.kubeconfigPath, '-n', appNs, ...args], { timeout: 20_000 })).stdout;
    return {
      node, kc, core, apps, custom, appNs, sysNs,
      kubectl,
      exec: (pod, container, command) => kubectl(['exec', pod, '-c', container, '--', ...command]),
      createBinding: async (name, app, strategy, secretPath) => {
        await custom.createNamespacedCustomObject({
          group, version, plural: resources.SecretBinding.plural, namespace: appNs,
          body: {
            apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name },
            spec: {
              backendRef: { kind: 'SecretBackend', name: 'openbao' },
              podSelector: { matchLabels: { app } },
              containers: ['app'],
              refreshInterval: `${String(options.refreshSeconds)}s`,
              rotation: { strategy, ...(strategy === 'RollingRestart' ? { debounce: '1s' } : {}) },
              delivery: { mode: 'agent', sizeLimit: '512Ki' },
              files: [{ path: 'db/password', key: secretPath, property: 'password' }],
            },
          },
        });
      },
      brokerReachable: async (reachable) => {
        if (reachable) await exposeHostService(kc, { namespace: sysNs, name: brokerService, address: node.bridgeAddress, ports: brokerPorts });
        else await kc.makeApiClient(DiscoveryV1Api).deleteNamespacedEndpointSlice({ namespace: sysNs, name: `${brokerService}-host` });
      },
      runningPods: (selector, count, timeoutMs = 120_000) =>
        eventually(
          `${String(count)} pods ${selector} Running and Ready`,
          async () => {
            const pods = (await core.listNamespacedPod({ namespace: appNs, labelSelector: selector })).items.filter((p) => p.metadata?.deletionTimestamp === undefined);
            const ready = pods.filter((p) => p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
            return ready.length === count && pods.length === count ? ready : undefined;
          },
          timeoutMs,
        ),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
