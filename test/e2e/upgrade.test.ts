import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig, PatchStrategy, RbacAuthorizationV1Api, setHeaderOptions } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { startHostForward, type HostForward } from '../harness/node/host-forward.ts';
import { previousRelease, type PreviousRelease } from '../harness/node/previous-release.ts';
import { buildProjectImage, projectImageReference } from '../harness/node/project-image.ts';
import { busyboxImage, realNodeTaint, realNodeUnavailable, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { exposeHostService } from '../harness/node/service-network.ts';
import { openBaoRequest } from '../harness/openbao.ts';
import { issueFromWorldCa } from '../harness/pki.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, eventually } from '../integration/support/cluster.ts';
import { chartRelease, uninstallChart } from '../integration/packaging/chart-release.support.ts';
import { runCrdUpgradeStep } from '../integration/packaging/crd-upgrade.support.ts';
import { chartDir, command, helmPath, kubectlPath } from '../integration/packaging/helm.support.ts';
import { consumerDeployment, parseWatch, sampleDuring, snapshot, type Snapshot, type WatchCounters } from './upgrade.support.ts';

/**
 * The upgrade suite (issue #22 item 1, ADR 0230): a release of a previous commit — its chart and its
 * image, from this repository's history — serving bindings of every rotation strategy to running
 * Deployments on the real node, then `helm upgrade` to the working tree's chart and image and `helm
 * rollback` to the previous release, while a watcher in every pod reads its files every 100 ms.
 * Through both: no read without files, no pod restarted or replaced, no rollout, every binding
 * Ready with the same content HMAC and backend versions (sampled throughout, not only at the ends).
 * One release, three consuming pods.
 */

/** The previous release: main before issue #22 (the base of this work). */
const previousCommit = '47e4da5d669334bce9d804656f7e0201f02bd2dd';

const unavailable = realNodeUnavailable();
if (unavailable !== undefined) process.stderr.write(`real-node e2e tier (upgrade) SKIPPED: ${unavailable}\n`);
const describeNode = unavailable === undefined ? describe : describe.skip;

const chart = chartRelease('secret-binder', 'sb-upgrade');
const appsNs = 'upgrade-apps';
const openbaoNs = 'upgrade-openbao';
const openbaoAddress = `https://openbao.${openbaoNs}.svc:8200`;
const toleration = { key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect };
const defaultTolerations = 'scheduler.alpha.kubernetes.io/defaultTolerations';
/** Each consuming Deployment, its binding, its backend and its rotation strategy. */
const consumers = [
  { deployment: 'refresh', binding: 'refresh', strategy: 'Refresh', backendRef: { kind: 'ClusterSecretBackend', name: 'upgrade-vault' } },
  { deployment: 'rolling', binding: 'rolling', strategy: 'RollingRestart', backendRef: { kind: 'SecretBackend', name: 'openbao-token' } },
  { deployment: 'none', binding: 'none', strategy: 'None', backendRef: { kind: 'ClusterSecretBackend', name: 'upgrade-vault' } },
] as const;
const deployments = consumers.map((c) => c.deployment);

let node: RealNode;
let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let previous: PreviousRelease;
let valuesPath: string;
const forwards: HostForward[] = [];

const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function bao(): NonNullable<ReturnType<typeof currentWorld>['openbao']> {
  const endpoint = currentWorld().openbao;
  if (endpoint === undefined) throw new Error('the world has no OpenBao (SECRET_BINDER_WORLD_BACKENDS must include openbao)');
  return endpoint;
}

async function helmRun(args: readonly string[]): Promise<void> {
  const result = await command(helmPath, [...args, '--namespace', chart.namespace, '--kubeconfig', currentWorld().kube.kubeconfigPath], undefined, { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed (exit ${String(result.code)}):\n${result.stdout}\n${result.stderr}`);
}

async function inPod(pod: string, args: readonly string[]): Promise<string> {
  const result = await command(kubectlPath, ['--kubeconfig', currentWorld().kube.kubeconfigPath, '-n', appsNs, 'exec', pod, '-c', 'app', '--', ...args]);
  if (result.code !== 0) throw new Error(`kubectl exec ${pod} -- ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

const podsOf = (state: Snapshot): string[] => state.consumers.flatMap((c) => c.pods.map((p) => p.split('/')[0] ?? ''));

/** Every consuming pod's watcher counters, by pod name; with `reset`, the longest interval restarts first. */
async function watchers(state: Snapshot, options: { readonly reset?: boolean } = {}): Promise<Map<string, WatchCounters>> {
  return new Map(
    await Promise.all(
      podsOf(state).map(async (p) => {
        if (options.reset === true) await inPod(p, ['touch', '/tmp/watch.reset']);
        return [p, parseWatch(await inPod(p, ['cat', '/tmp/watch']))] as const;
      }),
    ),
  );
}

async function namespaceTolerating(name: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name, annotations: { [defaultTolerations]: JSON.stringify([toleration]) } } } });
}

/** Pods reach the API server and OpenBao through Services, as in the install suite (ADR 0192). */
async function prepareCluster(): Promise<void> {
  const world = currentWorld();
  const api = await startHostForward({ address: node.bridgeAddress, targetPort: Number(new URL(world.kube.server).port) });
  forwards.push(api);
  await exposeHostService(kc, { namespace: 'default', name: 'kubernetes', address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: api.port }] });
  const pki = { dir: join(world.dir, 'pki'), ca: { certPath: join(world.dir, 'pki', 'ca.crt'), keyPath: join(world.dir, 'pki', 'ca.key') } };
  const host = `openbao.${openbaoNs}.svc`;
  const cert = await issueFromWorldCa(pki, 'upgrade-openbao', { name: { CN: host }, server: { dns: [host, `${host}.cluster.local`], ips: [] } });
  const openbao = await startHostForward({ address: node.bridgeAddress, targetPort: Number(new URL(bao().address).port), tls: cert });
  forwards.push(openbao);
  await core.createNamespace({ body: { metadata: { name: openbaoNs } } });
  await exposeHostService(kc, { namespace: openbaoNs, name: 'openbao', address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 8200, hostPort: openbao.port }] });
  await namespaceTolerating(chart.namespace);
  await namespaceTolerating(appsNs);

  // OpenBao: one policy, the kubernetes-auth role of the cluster backend, a token for the namespaced one.
  await openBaoRequest(bao(), 'PUT', 'sys/policies/acl/upgrade-read', { policy: 'path "secret/data/upgrade/*" { capabilities = ["read"] }\npath "secret/metadata/upgrade/*" { capabilities = ["read"] }\n' });
  await openBaoRequest(bao(), 'POST', `auth/${bao().kubernetesAuthMount}/role/sb-upgrade`, {
    bound_service_account_names: ['vault-reader'],
    bound_service_account_namespaces: [chart.namespace],
    audience: 'vault',
    token_policies: ['upgrade-read'],
    token_ttl: '1h',
  });
  for (const c of consumers) {
    await openBaoRequest(bao(), 'POST', `${bao().kvMount}/data/upgrade/${c.binding}`, { data: { username: c.binding, password: `${c.binding}-${String(Date.now())}` } });
  }
  const token = (await openBaoRequest(bao(), 'POST', 'auth/token/create', { policies: ['upgrade-read'], ttl: '2h' })) as { auth?: { client_token?: string } };

  const values = mkdtempSync(join(tmpdir(), 'sb-upgrade-'));
  valuesPath = join(values, 'values.yaml');
  writeFileSync(
    valuesPath,
    JSON.stringify({
      tokenServiceAccounts: ['vault-reader'],
      nodePlugin: { kubeletDir: node.kubeletRootDir },
      controller: { extraEnv: [{ name: 'NODE_EXTRA_CA_CERTS', value: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' }] },
    }),
  );
  await core.createNamespacedServiceAccount({ namespace: chart.namespace, body: { metadata: { name: 'vault-reader', annotations: { 'secretbinder.dev/backends': 'ClusterSecretBackend/upgrade-vault' } } } });
  await core.createNamespacedSecret({ namespace: appsNs, body: { metadata: { name: 'openbao-token' }, stringData: { token: token.auth?.client_token ?? '' } } });
  await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace: appsNs,
    body: {
      metadata: { name: 'secret-binder-credentials' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${chart.fullname}-credentials-reader` },
      subjects: [{ kind: 'ServiceAccount', name: chart.controllerServiceAccount, namespace: chart.namespace }],
    },
  });
}

function imageValues(reference: string): string[] {
  const [repository = '', tag = ''] = reference.split(/:(?=[^:]+$)/);
  return ['--set', `image.repository=${repository}`, '--set', `image.tag=${tag}`];
}

async function createWorkloads(): Promise<void> {
  const vault = { address: openbaoAddress, mount: 'secret', kvVersion: 2 };
  await custom.createClusterCustomObject({
    group,
    version,
    plural: resources.ClusterSecretBackend.plural,
    body: {
      apiVersion: `${group}/${version}`,
      kind: 'ClusterSecretBackend',
      metadata: { name: 'upgrade-vault' },
      spec: { vault: { ...vault, auth: { kubernetes: { role: 'sb-upgrade', serviceAccountRef: { name: 'vault-reader' }, audience: 'vault' } } }, access: [{ namespaces: [appsNs], keyPrefixes: ['upgrade/'] }] },
    },
  });
  await custom.createNamespacedCustomObject({
    group,
    version,
    namespace: appsNs,
    plural: resources.SecretBackend.plural,
    body: { apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'openbao-token' }, spec: { vault: { ...vault, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } } } },
  });
  for (const c of consumers) {
    const key = `upgrade/${c.binding}`;
    await custom.createNamespacedCustomObject({
      group,
      version,
      namespace: appsNs,
      plural: resources.SecretBinding.plural,
      body: {
        apiVersion: `${group}/${version}`,
        kind: 'SecretBinding',
        metadata: { name: c.binding },
        spec: {
          backendRef: c.backendRef,
          podSelector: { matchLabels: { app: c.deployment } },
          containers: ['app'],
          files: [
            { path: 'db.env', format: 'dotenv', items: [{ name: 'DB_USER', key, property: 'username' }, { name: 'DB_PASSWORD', key, property: 'password' }] },
            { path: 'password', key, property: 'password' },
          ],
          rotation: c.strategy === 'RollingRestart' ? { strategy: c.strategy, debounce: '0s' } : { strategy: c.strategy },
        },
      },
    });
    await kc.makeApiClient(AppsV1Api).createNamespacedDeployment({ namespace: appsNs, body: consumerDeployment(c.deployment, c.binding, busyboxImage, toleration) });
  }
}

/** Every binding Ready with a hash, every pod Running with one successful read, the RollingRestart Deployment adopted. */
async function settled(): Promise<Snapshot> {
  return eventually('bindings Ready, consumers running and watching, the RollingRestart Deployment adopted', async () => {
    // Right after a CRD change the API server may answer 429 for a moment: asked again.
    const state = await snapshot(kc, appsNs, deployments).catch(() => undefined);
    if (state === undefined) return undefined;
    if (state.bindings.length !== consumers.length || state.bindings.some((b) => b.ready !== 'True' || b.contentHmac === '')) return undefined;
    if (state.consumers.some((c) => c.pods.length !== 1)) return undefined;
    const adopted = await kc.makeApiClient(AppsV1Api).readNamespacedDeployment({ namespace: appsNs, name: 'rolling' });
    if (adopted.metadata?.annotations?.['secretbinder.dev/content-hash'] === undefined) return undefined;
    const counters = await watchers(state).catch(() => undefined);
    if (counters === undefined || [...counters.values()].some((w) => w.reads === 0)) return undefined;
    // Adoption writes the Deployment's metadata (not its template): read the generation after it.
    return snapshot(kc, appsNs, deployments);
  }, 240_000);
}

/**
 * Runs a Helm operation with the sampler and the watchers around it; asserts the guarantees and
 * prints the figures.
 */
async function throughHelm(what: string, args: readonly string[], expectedImage: string): Promise<void> {
  const before = await settled();
  const watchBefore = await watchers(before, { reset: true });
  const sampler = sampleDuring(kc, appsNs, deployments, before);
  const t0 = Date.now();
  await helmRun(args);
  const helmMs = Date.now() - t0;
  // The release is rolled out (helm --wait); the new controllers lead and reconcile: sample a little longer.
  const leader = await eventually('a controller of the new image leads', async () => {
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: chart.namespace, name: chart.leaseName });
    const holder = lease.spec?.holderIdentity;
    if (holder === undefined) return undefined;
    const pod = await core.readNamespacedPod({ namespace: chart.namespace, name: holder }).catch(() => undefined);
    return pod?.spec?.containers[0]?.image === expectedImage && pod.status?.phase === 'Running' ? holder : undefined;
  }, 120_000);
  const { samples, deviations } = await sampler.stop();
  const after = await snapshot(kc, appsNs, deployments);
  const watchAfter = await watchers(after);

  const releasePods = (await core.listNamespacedPod({ namespace: chart.namespace, labelSelector: 'app.kubernetes.io/component in (controller,node-plugin)' })).items;
  const images = [...new Set(releasePods.filter((p) => p.metadata?.deletionTimestamp === undefined).map((p) => p.spec?.containers[0]?.image ?? '?'))];
  const figures = [...watchAfter].map(([pod, w]) => {
    const b = watchBefore.get(pod);
    return { pod, reads: w.reads - (b?.reads ?? 0), misses: w.misses - (b?.misses ?? 0), changes: w.changes - (b?.changes ?? 0), longestMs: w.longestMs };
  });
  const restarts = after.consumers.reduce((n, c) => n + c.restarts, 0) - before.consumers.reduce((n, c) => n + c.restarts, 0);
  const rollouts = after.consumers.filter((c, i) => c.generation !== before.consumers[i]?.generation || c.replicaSets.length !== before.consumers[i].replicaSets.length).length;
  say(`${what}: helm ${args[0] ?? ''} --wait took ${String(helmMs)} ms; leader ${leader}; release images now ${images.join(', ')}`);
  for (const f of figures) say(`${what}: pod ${f.pod}: ${String(f.reads)} reads, ${String(f.misses)} without files, ${String(f.changes)} content changes; longest interval between two reads ${String(f.longestMs)} ms`);
  say(`${what}: ${String(restarts)} pod restarts, ${String(rollouts)} rollouts, ${String(samples)} samples of pods/Deployments/bindings, ${String(deviations.length)} deviating`);
  for (const d of deviations) say(`${what}: deviation: ${d}`);

  expect(images).toEqual([expectedImage]);
  expect(deviations).toEqual([]);
  expect(samples).toBeGreaterThan(0);
  expect(after).toEqual(before);
  expect(restarts).toBe(0);
  expect(rollouts).toBe(0);
  for (const f of figures) {
    expect(f.reads).toBeGreaterThan(0);
    expect({ pod: f.pod, misses: f.misses, changes: f.changes }).toEqual({ pod: f.pod, misses: 0, changes: 0 });
  }
  for (const b of after.bindings) expect(b.ready).toBe('True');
}

describeNode('upgrade: helm upgrade from a previous commit and helm rollback, with files read continuously in the pods', () => {
  beforeAll(async () => {
    const t0 = Date.now();
    node = await startRealNode(currentWorld(), { log: say });
    previous = previousRelease(previousCommit, `docker.io/library/secret-binder:${previousCommit.slice(0, 12)}`);
    const current = buildProjectImage();
    node.ctr(['images', 'import', previous.image.archivePath]);
    node.ctr(['images', 'import', current.archivePath]);
    say(`upgrade e2e: previous ${previous.commit.slice(0, 12)} (image ${previous.image.manifestDigest.slice(0, 19)}) and working tree (image ${current.manifestDigest.slice(0, 19)}) built or reused and imported in ${String(Date.now() - t0)} ms`);
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await prepareCluster();
  }, 600_000);

  afterAll(async () => {
    const ignore = (): undefined => undefined;
    await core.deleteNamespace({ name: appsNs }).catch(ignore);
    await eventually('consumer pods gone', async () => ((await core.listNamespacedPod({ namespace: appsNs })).items.length === 0 ? true : undefined), 90_000).catch(ignore);
    await custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name: 'upgrade-vault' }).catch(ignore);
    await uninstallChart(chart).catch(ignore);
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: chart.webhookConfigurationName }).catch(ignore);
    await admission.deleteValidatingWebhookConfiguration({ name: chart.webhookConfigurationName }).catch(ignore);
    await eventually('release pods gone', async () => ((await core.listNamespacedPod({ namespace: chart.namespace })).items.length === 0 ? true : undefined), 90_000).catch(ignore);
    await core.deleteNamespace({ name: chart.namespace }).catch(ignore);
    await core.deleteNamespace({ name: openbaoNs }).catch(ignore);
    await kc.makeApiClient(DiscoveryV1Api).deleteNamespacedEndpointSlice({ namespace: 'default', name: 'kubernetes-host' }).catch(ignore);
    await openBaoRequest(bao(), 'DELETE', `auth/${bao().kubernetesAuthMount}/role/sb-upgrade`).catch(ignore);
    await openBaoRequest(bao(), 'DELETE', 'sys/policies/acl/upgrade-read').catch(ignore);
    for (const c of consumers) await openBaoRequest(bao(), 'DELETE', `${bao().kvMount}/metadata/upgrade/${c.binding}`).catch(ignore);
    for (const f of forwards) await f.stop();
    await node.stop();
  }, 300_000);

  it(`installs the previous release (${previousCommit.slice(0, 7)}) and serves bindings of every rotation strategy to running Deployments`, async () => {
    await helmRun(['install', chart.release, previous.chartDir, '-f', valuesPath, ...imageValues(previous.image.reference), '--wait', '--timeout', '4m']);
    await createWorkloads();
    const state = await settled();
    say(`installed ${previousCommit.slice(0, 12)}: bindings ${state.bindings.map((b) => `${b.name} Ready=${b.ready} ${b.contentHmac.slice(0, 24)}`).join('; ')}`);
    expect(state.bindings.map((b) => b.name)).toEqual(['none', 'refresh', 'rolling']);
  }, 420_000);

  it('helm upgrade to the working tree, after the documented CRD step: no pod without files, no restart, no rollout, bindings Ready with unchanged hashes', async () => {
    say(`upgrade: CRD step (docs/upgrading.md): ${(await runCrdUpgradeStep(chartDir)).trim().split('\n').join('; ')}`);
    await throughHelm('upgrade', ['upgrade', chart.release, chartDir, '-f', valuesPath, ...imageValues(projectImageReference), '--wait', '--timeout', '4m'], projectImageReference);
  }, 420_000);

  it('after the upgrade, the new release keeps a volume the previous one mounted current: a new version reaches the Refresh pod in place', async () => {
    const before = await settled();
    const [pod = ''] = podsOf({ ...before, consumers: before.consumers.filter((c) => c.deployment === 'refresh') });
    const watchBefore = parseWatch(await inPod(pod, ['cat', '/tmp/watch']));
    const password = `refresh-${String(Date.now())}`;
    await openBaoRequest(bao(), 'POST', `${bao().kvMount}/data/upgrade/refresh`, { data: { username: 'refresh', password } });
    // A check now rather than at the refresh interval (ADR 0105).
    await custom.patchNamespacedCustomObject(
      { group, version, plural: resources.SecretBinding.plural, namespace: appsNs, name: 'refresh', body: { metadata: { annotations: { 'secretbinder.dev/refresh-requested': String(Date.now()) } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually(`${pod} reads the new version`, async () => ((await inPod(pod, ['cat', '/secrets/password'])).replace(/\n$/, '') === password ? true : undefined), 90_000);
    // The watcher's next round sees it too (the check above may run between two of its rounds).
    const watchAfter = await eventually(`${pod}'s watcher counts the change`, async () => {
      const w = parseWatch(await inPod(pod, ['cat', '/tmp/watch']));
      return w.changes > watchBefore.changes ? w : undefined;
    }, 30_000);
    const after = await settled();
    const hmac = (state: Snapshot, name: string): string => state.bindings.find((b) => b.name === name)?.contentHmac ?? '';
    say(`rotation after the upgrade: ${pod} read the new version in place after ${String(watchAfter.changes - watchBefore.changes)} content change(s), ${String(watchAfter.misses - watchBefore.misses)} reads without files; refresh ${hmac(before, 'refresh').slice(0, 24)} -> ${hmac(after, 'refresh').slice(0, 24)}`);
    expect(watchAfter.misses).toBe(watchBefore.misses);
    expect(hmac(after, 'refresh')).not.toBe(hmac(before, 'refresh'));
    // Only the Refresh binding's content moved; no pod restarted or replaced, nothing rolled out.
    expect(after.consumers).toEqual(before.consumers);
    expect(after.bindings.filter((b) => b.name !== 'refresh')).toEqual(before.bindings.filter((b) => b.name !== 'refresh'));
  }, 180_000);

  it('helm rollback to the previous release: the same guarantees', async () => {
    await throughHelm('rollback', ['rollback', chart.release, '1', '--wait', '--timeout', '4m'], previous.image.reference);
  }, 420_000);
});
