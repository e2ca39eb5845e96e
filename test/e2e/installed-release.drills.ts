import { expect, it } from '@jest/globals';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoordinationV1Api, StorageV1Api, type CoreV1Event, type V1CSINodeDriver, type V1Deployment, type V1Pod, type V1ReplicaSet } from '@kubernetes/client-node';
import { group, resources, version, type SecretBinding } from '../../src/api/v1alpha1/index.ts';
import { rolledOut } from '../../src/controllers/rotation/kube-workloads.ts';
import { contentHashAnnotation, workloadContentHash } from '../../src/controllers/rotation/rollout-hash.ts';
import { currentWorld } from '../harness/world-state.ts';
import { eventually } from '../integration/support/cluster.ts';
import { command, kubectlPath } from '../integration/packaging/helm.support.ts';
import { chart, isReady, mergePatch, say, shopNs, type InstalledRelease } from './installed-release.support.ts';

/**
 * Fault drills on the release the install suite made (issue #14 item 3, ADR 0193), run inside its
 * `describe` after the rotation tests and before unbinding: the README's Deployment and binding,
 * the real node, the chart's 2 controller replicas and its node-plugin DaemonSet. Each drill breaks
 * one part the way an operator or a cluster does (a pod deleted, a Deployment scaled to 0), asserts
 * what must hold — files read in the pods with `kubectl exec`, ReplicaSets counted, the cause in
 * an Event — and prints its figures as `drill: …` lines (also appended to
 * `<world logs>/drill-figures.log`). Times are reported, never asserted.
 */

const controllerSelector = 'app.kubernetes.io/component=controller';
const pluginSelector = 'app.kubernetes.io/component=node-plugin';
const driver = 'secretbinder.dev';
const newVersion = 'vault kv put -mount=secret shop/db username=shop password="$(head -c 18 /dev/urandom | base64)"';
const checkNow = 'kubectl -n shop annotate secretbinding shop-db secretbinder.dev/refresh-requested="$(date +%s)" --overwrite';

function drill(line: string): void {
  const text = `drill: ${line}\n`;
  process.stdout.write(text);
  appendFileSync(join(currentWorld().logDir, 'drill-figures.log'), `${new Date().toISOString()} ${text}`);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const nameOf = (o: { metadata?: { name?: string } }): string => o.metadata?.name ?? '?';

/** A metric's value from Prometheus text: the sum of the samples of `name` whose labels contain every `label`. */
function metricSum(text: string, name: string, labels: readonly string[] = []): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => labels.every((l) => line.includes(l)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

/** A controller pod's `/metrics`, scraped from the host as Prometheus would (the host routes the pod network). */
async function metricsOf(pod: V1Pod): Promise<string> {
  const answer = await fetch(`http://${pod.status?.podIP ?? '?'}:8080/metrics`);
  if (answer.status !== 200) throw new Error(`metrics of ${nameOf(pod)}: HTTP ${String(answer.status)}`);
  return answer.text();
}

const triggeredRollouts = (metrics: string): number => metricSum(metrics, 'secretbinder_rollouts_total', ['kind="Deployment"', 'result="triggered"']);

export function faultDrills(release: InstalledRelease): void {
  const apps = (): AppsV1Api => release.kc.makeApiClient(AppsV1Api);
  const shopDeployment = (): Promise<V1Deployment> => apps().readNamespacedDeployment({ namespace: shopNs, name: 'shop' });

  async function leaseHolder(): Promise<string> {
    const lease = await release.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: chart.namespace, name: chart.leaseName });
    return lease.spec?.holderIdentity ?? '';
  }

  async function binding(): Promise<SecretBinding> {
    return (await release.custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: shopNs, name: 'shop-db' })) as SecretBinding;
  }

  async function shopReplicaSets(): Promise<V1ReplicaSet[]> {
    return (await apps().listNamespacedReplicaSet({ namespace: shopNs, labelSelector: 'app=shop' })).items;
  }

  /** Pods with `app=shop` not being deleted (a pod on its way out after its grace period is not counted). */
  async function livePods(): Promise<V1Pod[]> {
    return (await release.core.listNamespacedPod({ namespace: shopNs, labelSelector: 'app=shop' })).items.filter((p) => p.metadata?.deletionTimestamp === undefined);
  }

  async function controllers(): Promise<V1Pod[]> {
    return (await release.core.listNamespacedPod({ namespace: chart.namespace, labelSelector: controllerSelector })).items;
  }

  async function twoControllersReady(what: string): Promise<V1Pod[]> {
    return eventually(what, async () => {
      const pods = await release.readyPods(chart.namespace, controllerSelector);
      return pods.length === 2 ? pods : undefined;
    }, 180_000);
  }

  async function driverRegistered(): Promise<boolean> {
    const node = await release.kc.makeApiClient(StorageV1Api).readCSINode({ name: release.node.name });
    // The API sends `drivers: null` once the last driver is gone, whatever the type says.
    return ((node.spec.drivers as V1CSINodeDriver[] | null) ?? []).some((d) => d.name === driver);
  }

  async function eventsOf(kind: string, name: string | undefined, reason: string): Promise<CoreV1Event[]> {
    const selector = [`involvedObject.kind=${kind}`, `reason=${reason}`, ...(name === undefined ? [] : [`involvedObject.name=${name}`])].join(',');
    return (await release.core.listNamespacedEvent({ namespace: shopNs, fieldSelector: selector })).items;
  }

  /** A pod the README's way: opted in by the label and the annotation, mutated by the webhook. */
  function optedInPod(name: string): V1Pod {
    return {
      metadata: { name, labels: { app: 'shop', 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': 'shop-db' } },
      // A shell that leaves on SIGTERM, so the drill's cleanup does not wait out a grace period.
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'app', image: 'busybox:1.37', command: ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'] }] },
    };
  }

  async function goneWithin(namespace: string, name: string): Promise<void> {
    await release.core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 1 }).catch(() => undefined);
    await eventually(`pod ${name} gone`, async () => ((await release.core.readNamespacedPod({ namespace, name }).catch(() => undefined)) === undefined ? true : undefined), 90_000);
  }

  async function kubectl(script: string): Promise<void> {
    say(`[drill] $ ${script}`);
    const result = await release.sh(script);
    if (result.code !== 0) throw new Error(`${script}: ${result.stderr}`);
  }

  it('drill 1: the leader controller pod deleted in the middle of a RollingRestart — one rollout, no pod left on the old content', async () => {
    // The suite's RollingRestart test left the binding at RollingRestart, debounce 0 s.
    expect((await binding()).spec.rotation?.strategy).toBe('RollingRestart');
    const before = await shopDeployment();
    const replicaSetsBefore = await shopReplicaSets();
    const revision = (d: V1Deployment): number => Number(d.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
    // A new pod counts as available only after 3 s (a field outside the pod template: no rollout of
    // its own), so rolling 2 pods lasts at least 6 s and the delete lands inside the rollout.
    await apps().patchNamespacedDeployment({ namespace: shopNs, name: 'shop', body: { spec: { minReadySeconds: 3 } } }, mergePatch);
    const generation = (before.metadata?.generation ?? 0) + 1;
    // The standby's own rollout count before it leads (the successor's count is compared with it).
    const leader = await leaseHolder();
    const standbyBaseline = new Map<string, number>();
    for (const pod of await release.readyPods(chart.namespace, controllerSelector)) if (nameOf(pod) !== leader) standbyBaseline.set(nameOf(pod), triggeredRollouts(await metricsOf(pod)));

    await release.readmeCommand(newVersion);
    await release.readmeCommand(checkNow);
    const next = await release.storedPassword();
    const begun = await eventually('the leader patched the template (rollout begun)', async () => {
      const d = await shopDeployment();
      return (d.metadata?.generation ?? 0) > generation ? d : undefined;
    }, 60_000);
    const holder = await leaseHolder();
    const deletedAt = Date.now();
    await release.core.deleteNamespacedPod({ namespace: chart.namespace, name: holder });
    const atDelete = await shopDeployment();
    say(`observed: lease holder ${holder} deleted at generation ${String(begun.metadata?.generation)}; rollout then: ${String(atDelete.status?.updatedReplicas ?? 0)} of 2 updated, ${String(atDelete.status?.availableReplicas ?? 0)} available`);
    expect(rolledOut('Deployment', atDelete)).toBe(false);

    await eventually('the rollout complete', async () => (rolledOut('Deployment', await shopDeployment()) ? true : undefined), 180_000);
    const rolloutMs = Date.now() - deletedAt;
    const successor = await eventually('another replica leads', async () => {
      const h = await leaseHolder();
      return h !== '' && h !== holder ? h : undefined;
    }, 60_000);
    const ready = await twoControllersReady('2 controller replicas Ready again');
    const successorPod = ready.find((p) => nameOf(p) === successor);
    expect(successorPod).toBeDefined();
    // The successor reconciled the workloads since it leads (its first pass covers every one) and
    // has nothing queued: whatever it would roll, it has rolled.
    const metrics = await eventually('the successor has reconciled rotations, none queued', async () => {
      const m = await metricsOf(successorPod ?? {});
      return metricSum(m, 'secretbinder_reconcile_total', ['controller="rotation"']) >= 1 && metricSum(m, 'secretbinder_workqueue_depth', ['controller="rotation"']) === 0 ? m : undefined;
    }, 60_000);
    const bySuccessor = triggeredRollouts(metrics) - (standbyBaseline.get(successor) ?? 0);

    const final = await shopDeployment();
    const replicaSetsAfter = await shopReplicaSets();
    const newest = replicaSetsAfter.find((rs) => rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] === String(revision(final)));
    const pods = await livePods();
    const onNewContent = await Promise.all(pods.map((p) => release.holds(nameOf(p), next)));
    const hmac = (await binding()).status?.contentHmac ?? '';
    const rollouts = replicaSetsAfter.length - replicaSetsBefore.length;
    say(`observed: ReplicaSets ${String(replicaSetsBefore.length)} -> ${String(replicaSetsAfter.length)}, revision ${String(revision(before))} -> ${String(revision(final))}, generation ${String(begun.metadata?.generation)} -> ${String(final.metadata?.generation)}; ${successor} leads and triggered ${String(bySuccessor)} rollout(s); pods ${pods.map(nameOf).join(', ')} on the new content: ${onNewContent.join(', ')}`);
    drill(`leader pod deleted mid-RollingRestart: rollout complete ${seconds(rolloutMs)} after the delete; rollouts: ${String(rollouts)} (ReplicaSets ${String(replicaSetsBefore.length)} -> ${String(replicaSetsAfter.length)}); successor ${successor} rolled ${String(bySuccessor)}; ${String(pods.length)} pods, ${String(onNewContent.filter(Boolean).length)} on the new content`);

    expect(rollouts).toBe(1);
    expect(revision(final)).toBe(revision(before) + 1);
    // No second patch of the template, and none due: the template carries the hash of the content now served.
    expect(final.metadata?.generation).toBe(begun.metadata?.generation);
    expect(final.spec?.template.metadata?.annotations?.[contentHashAnnotation]).toBe(workloadContentHash([hmac]));
    expect(bySuccessor).toBe(0);
    expect(pods).toHaveLength(2);
    for (const pod of pods) expect(pod.metadata?.labels?.['pod-template-hash']).toBe(newest?.metadata?.labels?.['pod-template-hash']);
    expect(onNewContent).toEqual([true, true]);
    await apps().patchNamespacedDeployment({ namespace: shopNs, name: 'shop', body: { spec: { minReadySeconds: null } } }, mergePatch);
  }, 400_000);

  it('drill 2: the controller scaled to 0 — running pods keep their files; a new opted-in pod is refused with an Event naming the webhook; it starts once 2 replicas are back', async () => {
    const pods = (await livePods()).map(nameOf);
    const current = await release.storedPassword();
    // Each replica's log to its end, kept with the world's logs: how it shut down.
    const logs = (await controllers()).map((p) => ({ pod: nameOf(p), log: command(kubectlPath, ['--kubeconfig', currentWorld().kube.kubeconfigPath, '-n', chart.namespace, 'logs', '-f', nameOf(p)], undefined, { timeoutMs: 120_000 }) }));
    const scaledAt = Date.now();
    await kubectl(`kubectl -n ${chart.namespace} scale deployment ${chart.fullname}-controller --replicas=0`);
    await eventually('no controller pod left', async () => ((await controllers()).length === 0 ? true : undefined), 120_000);
    const downMs = Date.now() - scaledAt;
    const lateStops: string[] = [];
    for (const { pod, log } of logs) {
      const { stdout } = await log;
      writeFileSync(join(currentWorld().logDir, `drill-${pod}.log`), stdout);
      for (const line of stdout.split('\n').filter((l) => /manager stopp|did not stop|released the lease/.test(l))) say(`observed: ${pod}: ${line}`);
      lateStops.push(...stdout.split('\n').filter((l) => l.includes('did not stop in time')));
    }
    const files = await Promise.all(pods.map((p) => release.holds(p, current)));
    say(`observed: no controller pod ${seconds(downMs)} after the scale to 0; ${pods.join(', ')} read their files: ${files.join(', ')}`);

    // One more replica of the README's Deployment: its ReplicaSet asks for an opted-in pod.
    await kubectl('kubectl -n shop scale deployment shop --replicas=3');
    const [refused] = await eventually('the ReplicaSet reports FailedCreate', async () => {
      const events = (await eventsOf('ReplicaSet', undefined, 'FailedCreate')).filter((e) => e.message?.includes(driver) === true);
      return events.length > 0 ? events : undefined;
    }, 60_000);
    const refusal = refused?.message ?? '';
    say(`observed: ReplicaSet ${refused?.involvedObject.name ?? '?'} FailedCreate: ${refusal}`);

    const upAt = Date.now();
    await kubectl(`kubectl -n ${chart.namespace} scale deployment ${chart.fullname}-controller --replicas=2`);
    await twoControllersReady('2 controller replicas Ready');
    const readyAt = Date.now();
    const third = await eventually('the third shop pod Ready', async () => {
      const live = await livePods();
      return live.length === 3 && live.every(isReady) ? live.find((p) => !pods.includes(nameOf(p))) : undefined;
    }, 180_000);
    const startedMs = Date.now() - readyAt;
    const thirdHolds = await release.holds(nameOf(third), current);
    say(`observed: ${nameOf(third)} created by the ReplicaSet's retry, reads the current version: ${String(thirdHolds)}`);
    drill(
      `controller scaled to 0: no replica left ${seconds(downMs)} after the scale; files in ${String(pods.length)} running pods intact: ${String(files.filter(Boolean).length)}/${String(files.length)}; ` +
        `a new pod refused at admission (FailedCreate on its ReplicaSet); scaled back: 2 replicas Ready ${seconds(readyAt - upAt)} after the scale, the refused pod Ready ${seconds(startedMs)} after that`,
    );

    // Back to the README's 2 replicas. The pod the ReplicaSet removes ignores SIGTERM (the README's
    // `sleep`): its 30 s grace period runs out during the next drill, which counts only live pods.
    await kubectl('kubectl -n shop scale deployment shop --replicas=2');
    await eventually('2 live shop pods', async () => ((await livePods()).length === 2 ? true : undefined), 60_000);

    // Every replica stopped within the manager's shutdown budget (ADR 0193: a kept-alive plugin
    // connection used to hold a stopping broker until the deadline).
    expect(lateStops).toEqual([]);
    expect(files.every(Boolean)).toBe(true);
    expect(refusal).toMatch(/failed calling webhook "inject\.secretbinder\.dev"/);
    expect(refusal).toContain(`${chart.fullname}-webhook`);
    expect(thirdHolds).toBe(true);
  }, 400_000);

  it('drill 3: the node-plugin pod deleted — running pods keep their files; refresh resumes and a pod created meanwhile starts when the DaemonSet pod returns', async () => {
    await release.patchBinding({ spec: { rotation: { strategy: 'Refresh' } } });
    const pods = (await livePods()).map(nameOf);
    const current = await release.storedPassword();
    const hmacBefore = (await binding()).status?.contentHmac;
    const [plugin] = await release.readyPods(chart.namespace, pluginSelector);
    expect(plugin).toBeDefined();
    const late = 'shop-while-plugin-away';
    // The quota some clusters put on the plugin's priority class (docs/troubleshooting.md) keeps the
    // DaemonSet from placing the replacement: the drill, not a race, decides how long the plugin is away.
    const hold = 'drill-hold-node-plugin';
    await release.core.createNamespacedResourceQuota({
      namespace: chart.namespace,
      body: { metadata: { name: hold }, spec: { hard: { pods: '0' }, scopeSelector: { matchExpressions: [{ scopeName: 'PriorityClass', operator: 'In', values: ['system-node-critical'] }] } } },
    });
    let deletedAt = 0;
    let filesWhileAway: boolean[] = [];
    let waiting = '';
    try {
      deletedAt = Date.now();
      await release.core.deleteNamespacedPod({ namespace: chart.namespace, name: nameOf(plugin ?? {}) });
      await eventually('no node-plugin pod, the driver unregistered', async () => {
        const left = (await release.core.listNamespacedPod({ namespace: chart.namespace, labelSelector: pluginSelector })).items;
        return left.length === 0 && !(await driverRegistered()) ? true : undefined;
      }, 90_000);
      say(`observed: ${nameOf(plugin ?? {})} gone, CSINode ${release.node.name} lists no ${driver} driver`);
      filesWhileAway = await Promise.all(pods.map((p) => release.holds(p, current)));
      await release.core.createNamespacedPod({ namespace: shopNs, body: optedInPod(late) });
      const [event] = await eventually(`${late} waits with FailedMount`, async () => {
        const events = await eventsOf('Pod', late, 'FailedMount');
        return events.length > 0 ? events : undefined;
      }, 60_000);
      waiting = event?.message ?? '';
      say(`observed: ${late} waits: FailedMount: ${waiting}`);
      // A new version while no plugin runs: the controller serves it, nobody can deliver it yet.
      await release.readmeCommand(newVersion);
      await release.readmeCommand(checkNow);
      await eventually('the binding serves the new content', async () => ((await binding()).status?.contentHmac !== hmacBefore ? true : undefined), 60_000);
      filesWhileAway.push(...(await Promise.all(pods.map((p) => release.holds(p, current)))));
    } finally {
      await release.core.deleteNamespacedResourceQuota({ namespace: chart.namespace, name: hold });
    }
    const liftedAt = Date.now();
    const next = await release.storedPassword();
    const back = await eventually('the DaemonSet pod back, Ready and registered', async () => {
      const ready = await release.readyPods(chart.namespace, pluginSelector);
      return ready.length === 1 && (await driverRegistered()) ? ready[0] : undefined;
    }, 180_000);
    const backAt = Date.now();
    for (const pod of pods) await eventually(`${pod} reads the new version`, async () => ((await release.holds(pod, next)) ? true : undefined), 120_000);
    const resumedMs = Date.now() - backAt;
    await eventually(`${late} Ready`, async () => (isReady(await release.core.readNamespacedPod({ namespace: shopNs, name: late })) ? true : undefined), 180_000);
    const startedMs = Date.now() - backAt;
    const lateHolds = await release.holds(late, next);
    say(`observed: ${nameOf(back)} Ready ${seconds(backAt - liftedAt)} after the hold was lifted; ${pods.join(', ')} read the new version; ${late} started and reads it: ${String(lateHolds)}`);
    drill(
      `node-plugin pod deleted: gap ${seconds(backAt - deletedAt)} from the delete to the new plugin registered and Ready (held back ${seconds(liftedAt - deletedAt)}); ` +
        `files read in ${String(pods.length)} running pods while it was away: ${String(filesWhileAway.filter(Boolean).length)}/${String(filesWhileAway.length)} intact; ` +
        `refresh resumed ${seconds(resumedMs)} after it returned; the pod created meanwhile Ready ${seconds(startedMs)} after it returned`,
    );
    await goneWithin(shopNs, late);

    expect(filesWhileAway.every(Boolean)).toBe(true);
    expect(waiting).toContain(driver);
    expect(lateHolds).toBe(true);
  }, 400_000);
}
