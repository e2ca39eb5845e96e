import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, PolicyV1Api, setHeaderOptions, type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { type SecretBinding } from '../../../src/api/v1alpha1/index.ts';
import { contentHashAnnotation } from '../../../src/controllers/rotation/rollout-hash.ts';
import { leaseHolder, patientLease, quickLease, startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { podTemplate, rollingRestartBinding, RolloutFixture, type WorkloadKind } from './rollout-fixture.ts';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * RollingRestart against the real API server and kube-controller-manager: Deployments really
 * create a ReplicaSet per pod template, so a rollout is counted as a new ReplicaSet (pods stay
 * Pending without a kubelet, which does not matter here). A rotation is a change of a binding's
 * files (a new path changes the content HMAC at once, with no backend polling in between).
 *
 * - Deployment web consumes `shared`, `web-two` and `web-three`; Deployment api and StatefulSet
 *   store consume `shared` only (store is counted by ControllerRevisions, its ReplicaSets). A
 *   DaemonSet has no pods in a world without nodes, so it consumes nothing here (unit tests only);
 * - adoption records the hash without a restart;
 * - one rotation → exactly one new ReplicaSet per Deployment;
 * - a controller restart and a leader failover afterwards → none;
 * - two rotations within one second → one rollout carrying the final hash;
 * - three keys rotated within the debounce window → one rollout;
 * - a bare pod is evicted through the Eviction API: a PodDisruptionBudget's refusal is a
 *   RestartFailed Event and a retry, and the eviction goes through once the budget allows it.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `rr-${suffix}`;
const leaseName = `rr-${suffix}`;
/**
 * The window opens when the controller first sees a changed hash; the coalescing tests need every
 * later change seen within it. Their own rotations (a GET and a PATCH each, 300 ms apart) and the
 * reconciles behind them took 0.66 s from the first status write to the last on an idle machine:
 * a 2 s window left 1.3 s of margin, which a loaded machine can eat; 4 s leaves 3.3 s.
 */
const debounceSeconds = 4;
/** Time for a rotation to show: the binding's reconcile, the debounce, then slack for a stray second rollout. */
const settleMs = debounceSeconds * 1000 + 4_000;

let kc: KubeConfig;
let fx: RolloutFixture;
const controllers: ControllerProcess[] = [];

/** Which bindings each Deployment consumes (by the selectors below). */
const consumed: Record<string, readonly string[]> = { web: ['shared', 'web-three', 'web-two'], api: ['shared'], store: ['shared'] };
const workloads = ['web', 'api', 'store'] as const;
type WorkloadName = (typeof workloads)[number];
const kindOf: Record<WorkloadName, WorkloadKind> = { web: 'Deployment', api: 'Deployment', store: 'StatefulSet' };

function binding(name: string, selector: Record<string, string>, key: string, path: string): object {
  return rollingRestartBinding(name, selector, key, path, debounceSeconds);
}

function deployment(name: string, labels: Record<string, string>): V1Deployment {
  return { metadata: { name, namespace: ns }, spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: podTemplate(labels) } };
}

const rotate = (name: string, path: string): Promise<void> => fx.rotate(name, path);
const getBinding = (name: string): Promise<SecretBinding> => fx.getBinding(name);
const expectedHash = (workload: WorkloadName): Promise<string | undefined> => fx.expectedHash(consumed[workload] ?? []);
const annotations = (workload: WorkloadName): ReturnType<RolloutFixture['annotations']> => fx.annotations(kindOf[workload], workload);
const revisions = (workload: WorkloadName): Promise<number> => fx.revisions(kindOf[workload], workload);
const rolledTo = (workload: WorkloadName): Promise<string> => fx.rolledTo(kindOf[workload], workload, consumed[workload] ?? []);
const events = (reason: string, kind: string, name: string): Promise<number> => fx.events(reason, kind, name);

async function counts(): Promise<Record<WorkloadName, number>> {
  return { web: await revisions('web'), api: await revisions('api'), store: await revisions('store') };
}

function plusOne(before: Record<WorkloadName, number>): Record<WorkloadName, number> {
  return { web: before.web + 1, api: before.api + 1, store: before.store + 1 };
}

async function generations(): Promise<(number | undefined)[]> {
  return Promise.all(workloads.map(async (w) => (await annotations(w)).generation));
}

const currentLeader = (): Promise<string | undefined> => leaseHolder(kc, leaseName);

function start(identity: string, lease = patientLease): ControllerProcess {
  const controller = startController(currentWorld(), { identity: `${identity}-${suffix}`, watchNamespaces: [ns], leaseName, lease });
  controllers.push(controller);
  return controller;
}

/** The leader has looked at every workload since it started. */
async function reconciledAll(controller: ControllerProcess): Promise<void> {
  await eventually(`${controller.identity} reconciled the workloads`, async () =>
    (await controller.metric('secretbinder_reconcile_total', 'controller="rotation"')) >= workloads.length ? true : undefined,
  60_000);
}

describe('RollingRestart against a real API server and controller-manager', () => {
  beforeAll(async () => {
    fx = await RolloutFixture.start(ns, `rr-${suffix}`, ['k1', 'k2', 'k3']);
    kc = fx.kc;
    for (const body of [
      binding('shared', { tier: 'backend' }, 'k1', 'one-v1'),
      binding('web-two', { app: 'web' }, 'k2', 'two-v1'),
      binding('web-three', { app: 'web' }, 'k3', 'three-v1'),
    ]) {
      await fx.createBinding(body);
    }
    await fx.apps.createNamespacedDeployment({ namespace: ns, body: deployment('web', { app: 'web', tier: 'backend' }) });
    await fx.apps.createNamespacedDeployment({ namespace: ns, body: deployment('api', { app: 'api', tier: 'backend' }) });
    await fx.apps.createNamespacedStatefulSet({
      namespace: ns,
      body: { metadata: { name: 'store' }, spec: { replicas: 1, serviceName: 'store', selector: { matchLabels: { app: 'store' } }, template: podTemplate({ app: 'store', tier: 'backend' }) } },
    });
    await eventually('each workload has its first revision', async () => {
      const c = await counts();
      return Object.values(c).every((n) => n === 1) ? true : undefined;
    });
    start('a');
  }, 90_000);

  afterAll(async () => {
    await fx.close(controllers.splice(0));
  }, 60_000);

  it('adopts running workloads by recording the hash, without restarting them', async () => {
    for (const workload of workloads) {
      await fx.adopted(kindOf[workload], workload, consumed[workload] ?? []);
      expect((await annotations(workload)).template).toBeUndefined();
    }
    await sleep(settleMs);
    expect(await counts()).toEqual({ web: 1, api: 1, store: 1 });
    expect(await events('RestartTriggered', 'Deployment', 'web')).toBe(0);
  }, 120_000);

  it('rolls every consuming Deployment exactly once on one rotation, with Events and a metric', async () => {
    await rotate('shared', 'one-v2');
    const web = await rolledTo('web');
    const api = await rolledTo('api');
    expect(web).not.toBe(api);
    expect(await rolledTo('store')).toBe(api);
    await sleep(settleMs);
    expect(await counts()).toEqual({ web: 2, api: 2, store: 2 });
    expect((await annotations('web')).recorded).toBe(web);
    await eventually('RestartTriggered Events', async () =>
      (await events('RestartTriggered', 'Deployment', 'web')) === 1 &&
      (await events('RestartTriggered', 'Deployment', 'api')) === 1 &&
      (await events('RestartTriggered', 'StatefulSet', 'store')) === 1 &&
      (await events('RestartTriggered', 'SecretBinding', 'shared')) === 3
        ? true
        : undefined,
    );
    const [leader] = controllers;
    if (leader === undefined) throw new Error('no controller');
    expect(await leader.metric('secretbinder_rollouts_total', 'kind="Deployment",result="triggered"')).toBe(2);
    expect(await leader.metric('secretbinder_rollouts_total', 'kind="StatefulSet",result="triggered"')).toBe(1);
  }, 60_000);

  it('restarts nothing when the controller restarts, nor when leadership moves', async () => {
    const before = await counts();
    const generationsBefore = await generations();
    const [first] = controllers;
    if (first === undefined) throw new Error('no controller');
    await first.stop();
    const second = start('b', quickLease);
    // A graceful stop releases the lease; if the release does not reach the API server, b waits out a's 25 s.
    await eventually('b leads', async () => ((await currentLeader()) === second.identity ? true : undefined), 60_000);
    await reconciledAll(second);
    await sleep(settleMs);
    expect(await counts()).toEqual(before);

    const standby = start('c', quickLease);
    await standby.healthPort();
    await second.kill();
    await eventually('the standby leads', async () => ((await currentLeader()) === standby.identity ? true : undefined), 30_000);
    await reconciledAll(standby);
    await sleep(settleMs);
    expect(await counts()).toEqual(before);
    expect(await generations()).toEqual(generationsBefore);
    expect(await standby.metric('secretbinder_rollouts_total', 'result="triggered"')).toBe(0);
  }, 180_000);

  it('makes one rollout carrying the final hash of two rotations within the same second', async () => {
    const before = await counts();
    await rotate('shared', 'one-v3');
    await rotate('shared', 'one-v4');
    await eventually('shared settled on one-v4', async () => {
      const b = await getBinding('shared');
      return b.spec.files[0]?.path === 'one-v4' && b.status?.observedGeneration === b.metadata.generation ? true : undefined;
    });
    for (const w of workloads) await rolledTo(w);
    await sleep(settleMs);
    expect(await counts()).toEqual(plusOne(before));
    // Still the final hash after the window: nothing rolled back or forth.
    expect((await annotations('web')).template).toBe(await expectedHash('web'));
  }, 60_000);

  it('makes one rollout for three keys rotated within the debounce window', async () => {
    const before = await counts();
    const startedAt = Date.now();
    await rotate('shared', 'one-v5');
    await sleep(300);
    await rotate('web-two', 'two-v2');
    await sleep(300);
    await rotate('web-three', 'three-v2');
    // The premise: all three changes within the window (a failure below with a large figure here is the machine, not the debounce).
    process.stdout.write(`rolling restart: three rotations issued within ${String(Date.now() - startedAt)} ms (debounce ${String(debounceSeconds)} s)\n`);
    for (const w of workloads) await rolledTo(w);
    await sleep(settleMs);
    expect(await counts()).toEqual(plusOne(before));
    expect((await annotations('web')).template).toBe(await expectedHash('web'));
  }, 60_000);

  it('evicts a bare pod on rotation, retrying while a PodDisruptionBudget refuses', async () => {
    const policy = kc.makeApiClient(PolicyV1Api);
    // Whoever leads now (c, after the failover test): this test does not depend on how that one ended.
    const holder = await currentLeader();
    const leader = controllers.find((c) => c.alive() && c.identity === holder);
    if (leader === undefined) throw new Error(`no live controller holds the lease (holder: ${holder ?? 'none'})`);
    await fx.createBinding(binding('solo', { app: 'solo' }, 'k1', 'solo-v1'));
    await fx.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'solo', labels: { app: 'solo' } }, spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] } } });
    const podHash = async (): Promise<string | undefined> => {
      try {
        return (await fx.core.readNamespacedPod({ namespace: ns, name: 'solo' })).metadata?.annotations?.[contentHashAnnotation];
      } catch {
        return undefined;
      }
    };
    await eventually('the bare pod adopted', async () => ((await podHash()) !== undefined ? true : undefined), 30_000);
    // Without a kubelet the pod stays Pending, and the Eviction API ignores budgets for Pending
    // pods; as the kubelet would, report it Running and not Ready, so a budget of 1 allows nothing.
    const now = new Date();
    await fx.core.patchNamespacedPodStatus(
      { namespace: ns, name: 'solo', body: { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: now }] } } },
      mergePatch,
    );
    await policy.createNamespacedPodDisruptionBudget({ namespace: ns, body: { metadata: { name: 'solo' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'solo' } } } } });
    await eventually('the budget is observed', async () => {
      const pdb = await policy.readNamespacedPodDisruptionBudget({ namespace: ns, name: 'solo' });
      return pdb.status?.observedGeneration === pdb.metadata?.generation && pdb.status?.disruptionsAllowed === 0 ? true : undefined;
    });

    await rotate('solo', 'solo-v2');
    await eventually('RestartFailed on the pod and the binding', async () =>
      (await events('RestartFailed', 'Pod', 'solo')) === 1 && (await events('RestartFailed', 'SecretBinding', 'solo')) === 1 ? true : undefined,
    );
    expect(await podHash()).toBeDefined();
    expect(await leader.metric('secretbinder_rollouts_total', 'kind="Pod",result="blocked"')).toBeGreaterThanOrEqual(1);
    expect(await leader.metric('secretbinder_rollouts_total', 'kind="Pod",result="triggered"')).toBe(0);

    await policy.deleteNamespacedPodDisruptionBudget({ namespace: ns, name: 'solo' });
    await eventually('the bare pod evicted', async () => ((await podHash()) === undefined ? true : undefined), 60_000);
    expect(await events('RestartTriggered', 'Pod', 'solo')).toBe(1);
    expect(await events('RestartFailed', 'Pod', 'solo')).toBe(1);
    expect(await leader.metric('secretbinder_rollouts_total', 'kind="Pod",result="triggered"')).toBe(1);
  }, 120_000);
});
