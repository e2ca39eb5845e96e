import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type KubeConfig, type V1Deployment } from '@kubernetes/client-node';
import { resources } from '../../../src/api/v1alpha1/index.ts';
import { contentHashAnnotation } from '../../../src/controllers/rotation/rollout-hash.ts';
import { restartKubeApiserver, restartProcessNamed, waitProcessReady } from '../../harness/control.ts';
import { leaseHolder, patientLease, quickLease, startController, type ControllerProcess, type LeaseTiming } from '../../harness/controller-process.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { podTemplate, rollingRestartBinding, RolloutFixture } from '../rotation/rollout-fixture.ts';
import { figure } from './chaos-figures.ts';

/**
 * Chaos drills against the control plane (docs/reliability.md, ADR 0170), with the controller as
 * its own process:
 *
 * 1. the leader is SIGKILLed in the middle of a RollingRestart: every consuming Deployment is
 *    rolled exactly once (no rollout lost, none doubled) and no pod is left on the old hash;
 * 2. the kube-apiserver restarts, then 3. etcd restarts: the informers resume (bounded restarts,
 *    at most one full list each: no relist storm) and a change made afterwards is reconciled.
 *
 * Drills 2 and 3 stop servers every suite uses; each waits for them to be ready again before it
 * ends, so the suites after this one find the world whole (jest runs them in band).
 */

const suffix = randomBytes(3).toString('hex');
const ns = `chaos-cp-${suffix}`;
const leaseName = `chaos-cp-${suffix}`;
const debounceSeconds = 1;
/** Time for a stray second rollout to show after the last one: a debounce window and the reconciles around it. */
const settleMs = debounceSeconds * 1000 + 4_000;
/**
 * Four Deployments and at most two rollouts in progress: the leader rolls two, whose pods never
 * become available in a world without a kubelet, so it holds both slots and the other two wait —
 * a rollout half done, deterministically, when the leader is killed.
 */
const deployments = ['d1', 'd2', 'd3', 'd4'] as const;
const maxConcurrentRollouts = 2;
/** The informers of a controller that watches one namespace: one per resource. */
const informerResources = [resources.ClusterSecretBackend.plural, resources.SecretBackend.plural, resources.SecretBinding.plural, 'namespaces', 'pods'];

let kc: KubeConfig;
let fx: RolloutFixture;
const controllers: ControllerProcess[] = [];

function start(identity: string, lease: LeaseTiming): ControllerProcess {
  const controller = startController(currentWorld(), {
    identity: `${identity}-${suffix}`,
    watchNamespaces: [ns],
    leaseName,
    lease,
    extraArgs: ['--max-concurrent-rollouts', String(maxConcurrentRollouts)],
  });
  controllers.push(controller);
  return controller;
}

const leads = (controller: ControllerProcess): Promise<true | undefined> =>
  leaseHolder(kc, leaseName).then((holder) => (holder === controller.identity ? true : undefined));

/**
 * A Deployment that Recreates: its old pod goes before the new one is created, so without a
 * kubelet (pods stay Pending) a rollout still ends with every pod on the new template.
 */
function deployment(name: string): V1Deployment {
  return {
    metadata: { name },
    spec: { replicas: 1, strategy: { type: 'Recreate' }, selector: { matchLabels: { app: name } }, template: podTemplate({ app: name, tier: 'chaos' }) },
  };
}

/** The content hash each pod of a Deployment was created with. */
async function podHashes(name: string): Promise<(string | undefined)[]> {
  const pods = await fx.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` });
  return pods.items.filter((p) => p.metadata?.deletionTimestamp === undefined).map((p) => p.metadata?.annotations?.[contentHashAnnotation]);
}

async function rolled(): Promise<string[]> {
  const out: string[] = [];
  for (const d of deployments) if ((await fx.annotations('Deployment', d)).template !== undefined) out.push(d);
  return out;
}

/** A metric of the controller, per informer resource. */
async function perResource(controller: ControllerProcess, metric: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of informerResources) out[r] = await controller.metric(metric, `resource="${r}"`);
  return out;
}

function minus(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

/**
 * The most restarts an informer can make during an outage of `outageMs`: its backoff starts at
 * 500 ms, doubles, and jitter takes off at most half, so the n-th retry waits at least 250·2^(n−1)
 * ms; plus the failure that starts the outage and one that ends it. A relist storm (a tight loop)
 * is far above this.
 */
function restartBound(outageMs: number): number {
  return Math.ceil(Math.log2(outageMs / 250 + 1)) + 2;
}

/**
 * Per informer resource, from the controller's log after `since` (epoch ms): when its watch last
 * failed and when it was last established. Resumed: it never failed, or watches again since.
 */
function informerHealth(controller: ControllerProcess, since: number): Record<string, { failedAt?: number; watchingAt?: number }> {
  const out: Record<string, { failedAt?: number; watchingAt?: number }> = Object.fromEntries(informerResources.map((r) => [r, {}]));
  for (const line of controller.log().split('\n')) {
    const failed = line.includes('"message":"informer failed; restarting"');
    if (!failed && !line.includes('"message":"informer watching"')) continue;
    const state = out[/"resource":"([^"]+)"/.exec(line)?.[1] ?? ''];
    const time = Date.parse(/"time":"([^"]+)"/.exec(line)?.[1] ?? '');
    if (state === undefined || Number.isNaN(time) || time < since) continue;
    if (failed) state.failedAt = time;
    else state.watchingAt = time;
  }
  return out;
}

const resumed = (s: { failedAt?: number; watchingAt?: number }): boolean =>
  s.failedAt === undefined || (s.watchingAt !== undefined && s.watchingAt >= s.failedAt);

/**
 * One control-plane drill: `restart` stops a server and returns once it (and the API server in
 * front of it) is ready again. Then the controller must see a change made afterwards, its informers
 * must have resumed without a relist storm, and nothing may have been rolled.
 */
async function controlPlaneDrill(what: string, controller: ControllerProcess, restart: () => Promise<void>): Promise<void> {
  const lists = await perResource(controller, 'secretbinder_informer_lists_total');
  const restarts = await perResource(controller, 'secretbinder_informer_restarts_total');
  const revisionsBefore = await Promise.all(deployments.map((d) => fx.revisions('Deployment', d)));
  const probeBefore = await fx.getBinding('probe');
  const stoppedAt = Date.now();
  await restart();
  const backAt = Date.now();
  // A change made after the restart: the binding's content HMAC moves only if its informer saw it.
  await fx.rotate('probe', `after-${what.replace(/\W+/g, '-')}`);
  await eventually(`${what}: a change after the restart reconciled`, async () => {
    const b = await fx.getBinding('probe');
    return b.status?.observedGeneration === b.metadata.generation && b.status?.contentHmac !== probeBefore.status?.contentHmac ? true : undefined;
  }, 90_000);
  const reconciledMs = Date.now() - backAt;
  await eventually(`${what}: controller ready`, async () => {
    const answer = await fetch(`http://127.0.0.1:${String(await controller.healthPort())}/readyz`);
    return answer.status === 200 ? true : undefined;
  }, 60_000);
  const health = await eventually(`${what}: every informer watching again`, () => {
    const h = informerHealth(controller, stoppedAt);
    return Promise.resolve(Object.values(h).every(resumed) ? h : undefined);
  }, 60_000);
  const listed = minus(await perResource(controller, 'secretbinder_informer_lists_total'), lists);
  const restarted = minus(await perResource(controller, 'secretbinder_informer_restarts_total'), restarts);
  const outageMs = backAt - stoppedAt;
  const watchedAfter = Object.fromEntries(
    informerResources.map((r) => {
      const h = health[r];
      return [r, h?.watchingAt === undefined ? 'unbroken' : h.watchingAt - stoppedAt];
    }),
  );
  figure(
    `${what}: down→ready ${String(outageMs)} ms; informers watching again (ms after the stop) ${JSON.stringify(watchedAfter)}; ` +
      `change reconciled ${String(reconciledMs)} ms after ready; informer restarts ${JSON.stringify(restarted)}; full lists ${JSON.stringify(listed)}`,
  );

  expect(controller.alive()).toBe(true);
  // No storm: at most one full list per informer (a 410 after the restart), restarts within the backoff's bound.
  const bound = restartBound(outageMs);
  const storms = informerResources.filter((r) => (listed[r] ?? 0) > 1 || (restarted[r] ?? 0) > bound);
  expect({ storms, bound }).toEqual({ storms: [], bound });
  // Nothing rolled: an API server or etcd restart is no content change (invariant 6).
  expect(await Promise.all(deployments.map((d) => fx.revisions('Deployment', d)))).toEqual(revisionsBefore);
}

describe('chaos: control plane', () => {
  beforeAll(async () => {
    fx = await RolloutFixture.start(ns, `chaos-${suffix}`, ['k1', 'k2']);
    kc = fx.kc;
    await fx.createBinding(rollingRestartBinding('shared', { tier: 'chaos' }, 'k1', 'v1', debounceSeconds));
    // Selects no pod: a binding whose status shows whether a change was seen, and rolls nothing.
    await fx.createBinding(rollingRestartBinding('probe', { tier: 'none' }, 'k2', 'v1', debounceSeconds));
    for (const d of deployments) await fx.apps.createNamespacedDeployment({ namespace: ns, body: deployment(d) });
    await eventually('each Deployment has its first ReplicaSet', async () =>
      (await Promise.all(deployments.map((d) => fx.revisions('Deployment', d)))).every((n) => n === 1) ? true : undefined,
    );
  }, 90_000);

  afterAll(async () => {
    await fx.close(controllers.splice(0));
  }, 60_000);

  it('rolls every Deployment exactly once when the leader is SIGKILLed mid-RollingRestart, leaving no pod on the old hash', async () => {
    const leader = start('a', quickLease);
    await eventually('a leads', () => leads(leader), 60_000);
    for (const d of deployments) await fx.adopted('Deployment', d, ['shared']);
    const standby = start('b', quickLease);
    await standby.healthPort();

    const rotatedAt = Date.now();
    await fx.rotate('shared', 'v2');
    await eventually('the leader rolled as many as its slots allow', async () =>
      (await leader.metric('secretbinder_rollouts_total', 'kind="Deployment",result="triggered"')) === maxConcurrentRollouts ? true : undefined,
    60_000);
    const rolledByLeader = await rolled();
    await leader.kill();
    const killedAt = Date.now();
    await eventually('the standby leads', () => leads(standby), 60_000);
    const takeoverMs = Date.now() - killedAt;
    // A third replica, started once b leads: a candidate honours the lease duration its holder
    // declared, so one started before the kill would race b for a's lease. It rolls nothing here,
    // and leads the API server and etcd drills (its patient lease rides out their restarts).
    const patient = start('p', patientLease);
    for (const d of deployments) await fx.rolledTo('Deployment', d, ['shared'], 60_000);
    const completedMs = Date.now() - killedAt;
    await sleep(settleMs);
    const want = await fx.expectedHash(['shared']);
    await eventually('every pod on the new hash', async () => {
      const hashes = await Promise.all(deployments.map(podHashes));
      return hashes.every((h) => h.length === 1 && h[0] === want) ? true : undefined;
    }, 60_000);
    const revisions = await Promise.all(deployments.map((d) => fx.revisions('Deployment', d)));
    const byStandby = await standby.metric('secretbinder_rollouts_total', 'kind="Deployment",result="triggered"');
    figure(
      `leader SIGKILL mid-RollingRestart: ${String(rolledByLeader.length)} of ${String(deployments.length)} Deployments rolled when killed ` +
        `(${String(killedAt - rotatedAt)} ms after the rotation); standby led ${String(takeoverMs)} ms after the kill; all rolled ${String(completedMs)} ms after the kill; ` +
        `ReplicaSets per Deployment ${JSON.stringify(revisions)}; rollouts by the standby ${String(byStandby)}; lost 0, doubled ${String(revisions.filter((n) => n > 2).length)}`,
    );

    expect(rolledByLeader).toHaveLength(maxConcurrentRollouts);
    // Exactly one rollout each: the first ReplicaSet and one more — none lost, none doubled.
    expect(revisions).toEqual(deployments.map(() => 2));
    expect(byStandby).toBe(deployments.length - maxConcurrentRollouts);
    expect(await patient.metric('secretbinder_rollouts_total', 'result="triggered"')).toBe(0);
    for (const d of deployments) expect((await fx.annotations('Deployment', d)).template).toBe(want);
    // One RestartTriggered Event per Deployment, from whichever leader rolled it.
    await eventually('one RestartTriggered Event per Deployment', async () =>
      (await fx.events('RestartTriggered', 'SecretBinding', 'shared')) === deployments.length ? true : undefined,
    );
  }, 240_000);

  it('rides out a kube-apiserver restart: informers resume without a relist storm, a later change is reconciled', async () => {
    // The patient replica alone from here on: it keeps its lease through the restarts.
    const controller = controllers.find((c) => c.identity === `p-${suffix}`);
    if (controller === undefined) throw new Error('no patient replica');
    for (const c of controllers.filter((x) => x.alive() && x !== controller)) await c.stop();
    await eventually('p leads', () => leads(controller), 60_000);
    await eventually('p reconciled the bindings', async () =>
      (await controller.metric('secretbinder_reconcile_total', 'controller="binding"')) >= 2 ? true : undefined,
    60_000);
    await controlPlaneDrill('kube-apiserver restart', controller, async () => {
      await restartKubeApiserver(currentWorld());
    });
  }, 240_000);

  it('rides out an etcd restart: informers resume without a relist storm, a later change is reconciled', async () => {
    const controller = controllers.find((c) => c.alive() && c.identity === `p-${suffix}`);
    if (controller === undefined) throw new Error('the patient replica is not running');
    await controlPlaneDrill('etcd restart', controller, async () => {
      const world = await restartProcessNamed(currentWorld(), 'etcd');
      // The API server stayed up; it is ready again once it reaches etcd.
      await waitProcessReady(world, 'kube-apiserver');
    });
  }, 240_000);
});
