import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig, type V1Pod, type V1SecurityContext } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { webhookConfigurations } from '../../src/webhook/webhook-configurations.ts';
import { binaryPaths, freePort } from '../harness/control-plane.ts';
import { startController, type ControllerProcess } from '../harness/controller-process.ts';
import { startHostForward, type HostForward } from '../harness/node/host-forward.ts';
import { buildProjectImage, projectImageReference } from '../harness/node/project-image.ts';
import { busyboxImage, realNodeTaint, realNodeUnavailable, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { exposeHostService } from '../harness/node/service-network.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from '../integration/support/cluster.ts';

/**
 * Agent mode on the real node (ADR 0250): a namespace that enforces Pod Security `restricted` (no
 * privileged node plugin could serve it; none runs here), the webhook injecting the agent from
 * the project image, the agent fetching from the controller's broker through its Service with the
 * pod's own token. Sidecar (Refresh) and init (RollingRestart) pods, a refused pod and an
 * unreachable broker, all in one world; pods start in parallel.
 */

const unavailable = realNodeUnavailable();
if (unavailable !== undefined) process.stderr.write(`agent e2e tier SKIPPED: ${unavailable}\n`);
const describeNode = unavailable === undefined ? describe : describe.skip;

const execFileAsync = promisify(execFile);
const suffix = randomBytes(3).toString('hex');
const appNs = `e2e-agent-${suffix}`;
const sysNs = `e2e-agent-sys-${suffix}`;
const scope = { 'secretbinder.dev/e2e-suite': `agent-${suffix}` };
const webhookName = `secret-binder-agent-e2e-${suffix}`;
const webhookService = 'secret-binder-webhook';
const brokerService = 'secret-binder-broker';
const refreshSeconds = 10;
const mountPath = '/secrets';
const secretPath = `e2e-agent-${suffix}/db`;
const marker = (): string => `agent-${randomBytes(12).toString('hex')}`;
const tolerations = [{ key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect }];
/** What `restricted` asks of every container (the agent's own is the webhook's business). */
const restrictedContainer: V1SecurityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };

let node: RealNode;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;
let controller: ControllerProcess | undefined;
let brokerForward: HostForward | undefined;
let value = marker();

async function kubectl(args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync(join(binaryPaths().kubernetes, 'kubectl'), ['--kubeconfig', currentWorld().kube.kubeconfigPath, '-n', appNs, ...args], { timeout: 20_000 });
  return stdout;
}
const exec = (pod: string, container: string, command: readonly string[]): Promise<string> => kubectl(['exec', pod, '-c', container, '--', ...command]);

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

async function createBinding(name: string, app: string, strategy: 'Refresh' | 'RollingRestart' | 'None'): Promise<void> {
  await custom.createNamespacedCustomObject({
    group, version, plural: resources.SecretBinding.plural, namespace: appNs,
    body: {
      apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name },
      spec: {
        backendRef: { kind: 'SecretBackend', name: 'openbao' },
        podSelector: { matchLabels: { app } },
        containers: ['app'],
        refreshInterval: `${String(refreshSeconds)}s`,
        rotation: { strategy, ...(strategy === 'RollingRestart' ? { debounce: '1s' } : {}) },
        delivery: { mode: 'agent', sizeLimit: '512Ki' },
        files: [{ path: 'db/password', key: secretPath, property: 'password' }],
      },
    },
  });
}

/** An opted-in pod template that passes `restricted`: container `app` is listed, `proxy` is not. */
function template(app: string, binding: string, appCommand: string): { metadata: V1Pod['metadata']; spec: NonNullable<V1Pod['spec']> } {
  return {
    metadata: { labels: { app, 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': binding, 'secretbinder.dev/mount-path': mountPath } },
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

async function createDeployment(name: string, binding: string, replicas: number, appCommand = 'exec sleep 3600'): Promise<void> {
  await apps.createNamespacedDeployment({
    namespace: appNs,
    body: { metadata: { name }, spec: { replicas, selector: { matchLabels: { app: name } }, template: template(name, binding, appCommand) } },
  });
}

const agentStatus = (pod: V1Pod): NonNullable<NonNullable<V1Pod['status']>['initContainerStatuses']>[number] | undefined =>
  pod.status?.initContainerStatuses?.find((s) => s.name === 'secretbinder-agent');

async function agentEvents(pod: string): Promise<string[]> {
  const events = await core.listNamespacedEvent({ namespace: appNs, fieldSelector: `involvedObject.name=${pod},reason=AgentFailed` });
  return events.items.map((e) => e.message ?? '');
}

describeNode('agent mode on the real node: restricted namespace, sidecar and init agents', () => {
  beforeAll(async () => {
    const world = currentWorld();
    const bao = world.openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const t0 = Date.now();
    const image = buildProjectImage();
    node = await startRealNode(world, { log: (line) => process.stdout.write(`${line}\n`) });
    node.ctr(['images', 'import', image.archivePath]);
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
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
    await writeKvSecret(bao, secretPath, { password: value });

    // The broker on loopback, reached by pods through its Service: a forward on the bridge address
    // is the Service's endpoint (ADR 0180, 0192); its certificate names the Service.
    const brokerPort = await freePort();
    const webhookPort = await freePort();
    const brokerCa = join(node.dir, `agent-broker-ca-${suffix}.pem`);
    brokerForward = await startHostForward({ address: node.bridgeAddress, targetPort: brokerPort, maxLifetimeMs: 900_000 });
    await exposeHostService(kc, { namespace: sysNs, name: brokerService, address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: brokerForward.port }] });
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
        '--agent-start-timeout', '8',
      ],
    });
    await controller.healthPort();
    await eventually('broker CA written', () => Promise.resolve(existsSync(brokerCa) ? true : undefined), 30_000);
    process.stdout.write(`agent e2e: image, node and controller ready in ${String(Date.now() - t0)} ms\n`);
  }, 300_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: appNs }).catch(() => undefined);
    await eventually('agent pods gone', async () => ((await core.listNamespacedPod({ namespace: appNs })).items.length === 0 ? true : undefined), 60_000).catch(() => undefined);
    await controller?.stop();
    await brokerForward?.stop();
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: webhookName }).catch(() => undefined);
    await core.deleteNamespace({ name: sysNs }).catch(() => undefined);
    await node.stop();
  }, 180_000);

  it('a restricted-namespace Deployment gets its files from the sidecar: memory mount, read-only, mode 0440, no mount in the unlisted container', async () => {
    // The namespace really enforces restricted: a privileged pod is refused.
    const privileged = core.createNamespacedPod({ namespace: appNs, dryRun: 'All', body: { metadata: { name: 'privileged' }, spec: { tolerations, containers: [{ name: 'c', image: busyboxImage, securityContext: { privileged: true } }] } } });
    await expect(privileged).rejects.toThrow(/violates PodSecurity .{0,2}restricted:latest/);

    // Both workloads start together; the init-mode one prints its file when its app starts.
    await Promise.all([
      createBinding('db', 'web', 'Refresh'),
      createBinding('db-init', 'init', 'RollingRestart'),
      createBinding('db-denied', 'denied', 'RollingRestart'),
      createBinding('db-down', 'down', 'None'),
    ]);
    await Promise.all([createDeployment('web', 'db', 2), createDeployment('init', 'db-init', 1, `echo "at-start:$(cat ${mountPath}/db/password)"; exec sleep 3600`)]);
    const pods = await runningPods('app=web', 2);
    for (const pod of pods) {
      const name = pod.metadata?.name ?? '';
      const agent = pod.spec?.initContainers?.find((c) => c.name === 'secretbinder-agent');
      expect(agent?.restartPolicy).toBe('Always');
      expect(agent?.image).toBe(projectImageReference);
      expect(pod.spec?.volumes?.find((v) => v.name === 'secretbinder-db')?.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '512Ki' });
      expect(await exec(name, 'app', ['cat', `${mountPath}/db/password`])).toBe(value);
      const mount = (await exec(name, 'app', ['cat', '/proc/mounts'])).split('\n').map((l) => l.split(' ')).find((m) => m[1] === mountPath);
      expect(mount?.[2]).toBe('tmpfs');
      expect(mount?.[3]).toMatch(/(^|,)ro(,|$)/);
      expect((await exec(name, 'app', ['stat', '-L', '-c', '%a %g', `${mountPath}/db/password`])).trim()).toBe('440 2000');
      expect((await exec(name, 'app', ['id', '-u'])).trim()).toBe('1000');
      const proxyMounts = (await exec(name, 'proxy', ['cat', '/proc/mounts'])).split('\n').map((l) => l.split(' ')[1]);
      expect(proxyMounts).not.toContain(mountPath);
      await expect(exec(name, 'proxy', ['cat', `${mountPath}/db/password`])).rejects.toThrow(/No such file or directory/);
      // The pod's own token is in the agent only; the app has no service-account token at all.
      await expect(exec(name, 'app', ['ls', '/var/run/secrets/secretbinder.dev/agent'])).rejects.toThrow(/No such file or directory/);
    }
  }, 240_000);

  it('init agent: the files exist before the app starts', async () => {
    const [pod] = await runningPods('app=init', 1);
    const name = pod?.metadata?.name ?? '';
    const agent = pod?.spec?.initContainers?.find((c) => c.name === 'secretbinder-agent');
    expect(agent?.restartPolicy).toBeUndefined();
    expect(agentStatus(pod ?? {})?.state?.terminated?.exitCode).toBe(0);
    expect((await kubectl(['logs', name, '-c', 'app'])).trim()).toBe(`at-start:${value}`);
  }, 120_000);

  it(`Refresh: an OpenBao write reaches the sidecar pods within refreshInterval + 1 s; a rotation rolls the init-mode Deployment`, async () => {
    const pods = (await runningPods('app=web', 2)).map((p) => p.metadata?.name ?? '');
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const before = (await runningPods('app=init', 1)).map((p) => p.metadata?.name ?? '');
    const next = marker();
    const written = Date.now();
    await writeKvSecret(bao, secretPath, { password: next });
    value = next;
    const arrivals = await Promise.all(
      pods.map(async (pod) =>
        eventually(`${pod} reads the new value`, async () => ((await exec(pod, 'app', ['cat', `${mountPath}/db/password`])) === next ? Date.now() - written : undefined), 3 * refreshSeconds * 1000),
      ),
    );
    process.stdout.write(`agent e2e: Refresh reached 2 sidecar pods in ${arrivals.map((t) => `${String(t)} ms`).join(', ')} after the write (refreshInterval ${String(refreshSeconds)} s)\n`);
    expect(Math.max(...arrivals)).toBeLessThanOrEqual(refreshSeconds * 1000 + 1000);
    const after = await runningPods('app=web', 2);
    expect(after.map((p) => p.metadata?.name).sort()).toEqual([...pods].sort());

    // RollingRestart: a new pod whose app saw the new value at its start.
    const rolled = await eventually(
      'the init-mode Deployment rolled',
      async () => {
        const now = (await core.listNamespacedPod({ namespace: appNs, labelSelector: 'app=init' })).items;
        const [fresh] = now.filter((p) => !before.includes(p.metadata?.name ?? '') && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);
        return fresh;
      },
      6 * refreshSeconds * 1000,
    );
    expect((await kubectl(['logs', rolled.metadata?.name ?? '', '-c', 'app'])).trim()).toBe(`at-start:${next}`);
  }, 180_000);

  it('a pod whose other container holds the secretbinder.dev token is refused: the agent names binding and container, the app never starts, an Event says why', async () => {
    // The webhook's own output for an opted-in pod, then edited by hand: `proxy` also mounts the
    // agent's token (the validating webhook judges volume mounts, not tokens; the broker does).
    const opted = template('denied', 'db-denied', 'exec sleep 3600');
    const dry = await core.createNamespacedPod({ namespace: appNs, dryRun: 'All', body: { metadata: { name: 'denied', labels: opted.metadata?.labels ?? {}, annotations: opted.metadata?.annotations ?? {} }, spec: opted.spec } });
    const spec = dry.spec;
    if (spec === undefined) throw new Error('no spec');
    const proxy = spec.containers.find((c) => c.name === 'proxy');
    if (proxy !== undefined) proxy.volumeMounts = [...(proxy.volumeMounts ?? []), { name: 'secretbinder-agent-token', mountPath: '/t', readOnly: true }];
    // Still carrying the webhook's "injected" marker: the mutating webhook lets it through unchanged.
    await core.createNamespacedPod({ namespace: appNs, body: { metadata: { name: 'denied', labels: dry.metadata?.labels ?? {}, annotations: dry.metadata?.annotations ?? {} }, spec } });
    const failed = await eventually('the agent of pod denied failed', async () => {
      const pod = await core.readNamespacedPod({ namespace: appNs, name: 'denied' });
      const terminated = agentStatus(pod)?.state?.terminated ?? agentStatus(pod)?.lastState?.terminated;
      return terminated?.message !== undefined && terminated.exitCode !== 0 ? { pod, message: terminated.message } : undefined;
    }, 60_000);
    process.stdout.write(`agent e2e: refused agent's termination message: ${failed.message}\n`);
    expect(failed.message).toContain('binding db-denied (for container app) was refused');
    expect(failed.message).toContain('NotEntitled');
    expect(failed.message).toContain('proxy mount a secretbinder.dev token');
    expect(failed.pod.status?.phase).toBe('Pending');
    expect(failed.pod.status?.containerStatuses?.every((c) => c.state?.running === undefined) ?? true).toBe(true);
    const events = await eventually('an AgentFailed Event on pod denied', async () => ((await agentEvents('denied')).length > 0 ? agentEvents('denied') : undefined), 30_000);
    expect(events[0]).toContain('binding db-denied (for container app) was refused');
  }, 120_000);

  it('broker unreachable at start: the init agent retries with backoff, the pod shows an Event naming the cause, and starts once the broker is back', async () => {
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    await discovery.deleteNamespacedEndpointSlice({ namespace: sysNs, name: `${brokerService}-host` });
    let restored = false;
    try {
      const down = template('down', 'db-down', 'exec sleep 3600');
      await core.createNamespacedPod({ namespace: appNs, body: { metadata: { name: 'unreachable', labels: down.metadata?.labels ?? {}, annotations: down.metadata?.annotations ?? {} }, spec: down.spec } });
      const events = await eventually('an AgentFailed Event on pod unreachable', async () => ((await agentEvents('unreachable')).length > 0 ? agentEvents('unreachable') : undefined), 60_000);
      process.stdout.write(`agent e2e: unreachable broker Event: ${events[0] ?? ''}\n`);
      expect(events[0]).toContain('binding db-down (for container app) not fetched within 8 s');
      expect(events[0]).toContain(`${brokerService}.${sysNs}.svc`);
      const pod = await core.readNamespacedPod({ namespace: appNs, name: 'unreachable' });
      expect(pod.status?.phase).toBe('Pending');
      const logs = await kubectl(['logs', 'unreachable', '-c', 'secretbinder-agent', '--previous']).catch(() => kubectl(['logs', 'unreachable', '-c', 'secretbinder-agent']));
      expect(logs).toContain('broker not reachable yet; retrying');
      await exposeHostService(kc, { namespace: sysNs, name: brokerService, address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: brokerForward?.port ?? 0 }] });
      restored = true;
      // The kubelet restarts the agent after its backoff (10 s, then 20 s): the pod then starts.
      await eventually('pod unreachable Running', async () => ((await core.readNamespacedPod({ namespace: appNs, name: 'unreachable' })).status?.phase === 'Running' ? true : undefined), 90_000);
      expect(await exec('unreachable', 'app', ['cat', `${mountPath}/db/password`])).toBe(value);
    } finally {
      if (!restored) await exposeHostService(kc, { namespace: sysNs, name: brokerService, address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: brokerForward?.port ?? 0 }] });
    }
  }, 180_000);

  it('unbinding removes the files from the running sidecar pods', async () => {
    const pods = (await runningPods('app=web', 2)).map((p) => p.metadata?.name ?? '');
    await custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: appNs, name: 'db' });
    for (const pod of pods) {
      await eventually(`${pod}: files removed`, async () => ((await exec(pod, 'app', ['ls', '-A', mountPath])).trim() === '' ? true : undefined), 60_000);
    }
  }, 120_000);
});
