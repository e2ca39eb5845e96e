import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { projectImageReference } from '../harness/node/project-image.ts';
import { busyboxImage, realNodeUnavailable } from '../harness/node/real-node.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { currentWorld } from '../harness/world-state.ts';
import { eventually } from '../integration/support/cluster.ts';
import { agentMountPath as mountPath, agentPodTemplate as template, agentProcesses, brokerService, startAgentWorld, tolerations, type AgentWorld } from './agent-world.ts';

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

const suffix = randomBytes(3).toString('hex');
const refreshSeconds = 10;
const secretPath = `e2e-agent-${suffix}/db`;
const marker = (): string => `agent-${randomBytes(12).toString('hex')}`;

let w: AgentWorld;
let value = marker();

const agentStatus = (pod: V1Pod): NonNullable<NonNullable<V1Pod['status']>['initContainerStatuses']>[number] | undefined =>
  pod.status?.initContainerStatuses?.find((s) => s.name === 'secretbinder-agent');

async function agentEvents(pod: string): Promise<string[]> {
  const events = await w.core.listNamespacedEvent({ namespace: w.appNs, fieldSelector: `involvedObject.name=${pod},reason=AgentFailed` });
  return events.items.map((e) => e.message ?? '');
}

async function createDeployment(name: string, binding: string, replicas: number, appCommand = 'exec sleep 3600'): Promise<void> {
  await w.apps.createNamespacedDeployment({
    namespace: w.appNs,
    body: { metadata: { name }, spec: { replicas, selector: { matchLabels: { app: name } }, template: template(name, binding, appCommand) } },
  });
}

describeNode('agent mode on the real node: restricted namespace, sidecar and init agents', () => {
  beforeAll(async () => {
    const world = currentWorld();
    const bao = world.openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const t0 = Date.now();
    w = await startAgentWorld(world, { suffix, refreshSeconds, startTimeoutSeconds: 8, log: (line) => process.stdout.write(`${line}\n`) });
    await writeKvSecret(bao, secretPath, { password: value });
    process.stdout.write(`agent e2e: image, node and controller ready in ${String(Date.now() - t0)} ms\n`);
  }, 300_000);

  afterAll(async () => {
    await w.stop();
  }, 180_000);

  it('a restricted-namespace Deployment gets its files from the sidecar: memory mount, read-only, mode 0440, no mount in the unlisted container', async () => {
    // The namespace really enforces restricted: a privileged pod is refused.
    const privileged = w.core.createNamespacedPod({ namespace: w.appNs, dryRun: 'All', body: { metadata: { name: 'privileged' }, spec: { tolerations, containers: [{ name: 'c', image: busyboxImage, securityContext: { privileged: true } }] } } });
    await expect(privileged).rejects.toThrow(/violates PodSecurity \W*restricted:latest/);

    // Both workloads start together; the init-mode one prints its file when its app starts.
    await Promise.all([
      w.createBinding('db', 'web', 'Refresh', secretPath),
      w.createBinding('db-init', 'init', 'RollingRestart', secretPath),
      w.createBinding('db-denied', 'denied', 'RollingRestart', secretPath),
      w.createBinding('db-down', 'down', 'None', secretPath),
    ]);
    await Promise.all([createDeployment('web', 'db', 2), createDeployment('init', 'db-init', 1, `echo "at-start:$(cat ${mountPath}/db/password)"; exec sleep 3600`)]);
    const pods = await w.runningPods('app=web', 2);
    for (const pod of pods) {
      const name = pod.metadata?.name ?? '';
      const agent = pod.spec?.initContainers?.find((c) => c.name === 'secretbinder-agent');
      expect(agent?.restartPolicy).toBe('Always');
      expect(agent?.image).toBe(projectImageReference);
      expect(pod.spec?.volumes?.find((v) => v.name === 'secretbinder-db')?.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '512Ki' });
      expect(await w.exec(name, 'app', ['cat', `${mountPath}/db/password`])).toBe(value);
      const mount = (await w.exec(name, 'app', ['cat', '/proc/mounts'])).split('\n').map((l) => l.split(' ')).find((m) => m[1] === mountPath);
      expect(mount?.[2]).toBe('tmpfs');
      expect(mount?.[3]).toMatch(/(^|,)ro(,|$)/);
      expect((await w.exec(name, 'app', ['stat', '-L', '-c', '%a %g', `${mountPath}/db/password`])).trim()).toBe('440 2000');
      expect((await w.exec(name, 'app', ['id', '-u'])).trim()).toBe('1000');
      const proxyMounts = (await w.exec(name, 'proxy', ['cat', '/proc/mounts'])).split('\n').map((l) => l.split(' ')[1]);
      expect(proxyMounts).not.toContain(mountPath);
      await expect(w.exec(name, 'proxy', ['cat', `${mountPath}/db/password`])).rejects.toThrow(/No such file or directory/);
      // The pod's own token is in the agent only; the app has no service-account token at all.
      await expect(w.exec(name, 'app', ['ls', '/var/run/secrets/secretbinder.dev/agent'])).rejects.toThrow(/No such file or directory/);
    }
    // Reported, not asserted (ADR 0250: the bench tier measures it).
    const agents = agentProcesses().map((a) => `RSS ${(a.rssKib / 1024).toFixed(1)} MiB (own ${(a.anonKib / 1024).toFixed(1)} MiB, cgroup ${a.cgroupBytes === undefined ? '?' : (a.cgroupBytes / 2 ** 20).toFixed(1)} MiB)`);
    process.stdout.write(`agent e2e: sidecar agents on the node: ${agents.join('; ')}\n`);
  }, 240_000);

  it('init agent: the files exist before the app starts', async () => {
    const [pod] = await w.runningPods('app=init', 1);
    const name = pod?.metadata?.name ?? '';
    const agent = pod?.spec?.initContainers?.find((c) => c.name === 'secretbinder-agent');
    expect(agent?.restartPolicy).toBeUndefined();
    expect(agentStatus(pod ?? {})?.state?.terminated?.exitCode).toBe(0);
    expect((await w.kubectl(['logs', name, '-c', 'app'])).trim()).toBe(`at-start:${value}`);
  }, 120_000);

  it(`Refresh: an OpenBao write reaches the sidecar pods within refreshInterval + 1 s; a rotation rolls the init-mode Deployment`, async () => {
    const pods = (await w.runningPods('app=web', 2)).map((p) => p.metadata?.name ?? '');
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const before = (await w.runningPods('app=init', 1)).map((p) => p.metadata?.name ?? '');
    const next = marker();
    const written = Date.now();
    await writeKvSecret(bao, secretPath, { password: next });
    value = next;
    const arrivals = await Promise.all(
      pods.map(async (pod) =>
        eventually(`${pod} reads the new value`, async () => ((await w.exec(pod, 'app', ['cat', `${mountPath}/db/password`])) === next ? Date.now() - written : undefined), 3 * refreshSeconds * 1000),
      ),
    );
    process.stdout.write(`agent e2e: Refresh reached 2 sidecar pods in ${arrivals.map((t) => `${String(t)} ms`).join(', ')} after the write (refreshInterval ${String(refreshSeconds)} s)\n`);
    expect(Math.max(...arrivals)).toBeLessThanOrEqual(refreshSeconds * 1000 + 1000);
    const after = await w.runningPods('app=web', 2);
    expect(after.map((p) => p.metadata?.name).sort()).toEqual([...pods].sort());

    // RollingRestart: a new pod whose app saw the new value at its start.
    const rolled = await eventually(
      'the init-mode Deployment rolled',
      async () => {
        const now = (await w.core.listNamespacedPod({ namespace: w.appNs, labelSelector: 'app=init' })).items;
        const [fresh] = now.filter((p) => !before.includes(p.metadata?.name ?? '') && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);
        return fresh;
      },
      6 * refreshSeconds * 1000,
    );
    expect((await w.kubectl(['logs', rolled.metadata?.name ?? '', '-c', 'app'])).trim()).toBe(`at-start:${next}`);
  }, 180_000);

  it('a pod whose other container holds the secretbinder.dev token is refused: the agent names binding and container, the app never starts, an Event says why', async () => {
    // The webhook's own output for an opted-in pod, then edited by hand: `proxy` also mounts the
    // agent's token (the validating webhook judges volume mounts, not tokens; the broker does).
    const opted = template('denied', 'db-denied', 'exec sleep 3600');
    const dry = await w.core.createNamespacedPod({ namespace: w.appNs, dryRun: 'All', body: { metadata: { name: 'denied', labels: opted.metadata.labels ?? {}, annotations: opted.metadata.annotations ?? {} }, spec: opted.spec } });
    const spec = dry.spec;
    if (spec === undefined) throw new Error('no spec');
    const proxy = spec.containers.find((c) => c.name === 'proxy');
    if (proxy !== undefined) proxy.volumeMounts = [...(proxy.volumeMounts ?? []), { name: 'secretbinder-agent-token', mountPath: '/t', readOnly: true }];
    // Still carrying the webhook's "injected" marker: the mutating webhook lets it through unchanged.
    await w.core.createNamespacedPod({ namespace: w.appNs, body: { metadata: { name: 'denied', labels: dry.metadata?.labels ?? {}, annotations: dry.metadata?.annotations ?? {} }, spec } });
    const failed = await eventually('the agent of pod denied failed', async () => {
      const pod = await w.core.readNamespacedPod({ namespace: w.appNs, name: 'denied' });
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
    await w.brokerReachable(false);
    let restored = false;
    try {
      const down = template('down', 'db-down', 'exec sleep 3600');
      await w.core.createNamespacedPod({ namespace: w.appNs, body: { metadata: { name: 'unreachable', labels: down.metadata.labels ?? {}, annotations: down.metadata.annotations ?? {} }, spec: down.spec } });
      const events = await eventually('an AgentFailed Event on pod unreachable', async () => ((await agentEvents('unreachable')).length > 0 ? agentEvents('unreachable') : undefined), 60_000);
      process.stdout.write(`agent e2e: unreachable broker Event: ${events[0] ?? ''}\n`);
      expect(events[0]).toContain('binding db-down (for container app) not fetched within 8 s');
      expect(events[0]).toContain(`${brokerService}.${w.sysNs}.svc`);
      const pod = await w.core.readNamespacedPod({ namespace: w.appNs, name: 'unreachable' });
      expect(pod.status?.phase).toBe('Pending');
      const logs = await w.kubectl(['logs', 'unreachable', '-c', 'secretbinder-agent', '--previous']).catch(() => w.kubectl(['logs', 'unreachable', '-c', 'secretbinder-agent']));
      expect(logs).toContain('broker not reachable yet; retrying');
      await w.brokerReachable(true);
      restored = true;
      // The kubelet restarts the agent after its backoff (10 s, then 20 s): the pod then starts.
      await eventually('pod unreachable Running', async () => ((await w.core.readNamespacedPod({ namespace: w.appNs, name: 'unreachable' })).status?.phase === 'Running' ? true : undefined), 90_000);
      expect(await w.exec('unreachable', 'app', ['cat', `${mountPath}/db/password`])).toBe(value);
    } finally {
      if (!restored) await w.brokerReachable(true);
    }
  }, 180_000);

  it('unbinding removes the files from the running sidecar pods', async () => {
    const pods = (await w.runningPods('app=web', 2)).map((p) => p.metadata?.name ?? '');
    await w.custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: w.appNs, name: 'db' });
    for (const pod of pods) {
      await eventually(`${pod}: files removed`, async () => ((await w.exec(pod, 'app', ['ls', '-A', mountPath])).trim() === '' ? true : undefined), 60_000);
    }
  }, 120_000);
});
