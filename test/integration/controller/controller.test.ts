import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesObject, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { group, resources, version, type Condition, type ResourceKind } from '../../../src/api/v1alpha1/index.ts';
import { restartKubeApiserver } from '../../harness/control.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds, loadExamples, root } from '../support/cluster.ts';
import { leaseHolder, patientLease, quickLease, startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { chartRelease, installChart, refusedRequest, uninstallChart } from '../packaging/chart-release.support.ts';
import { serviceAccountKubeConfig } from '../packaging/identity.support.ts';

/**
 * The controller as a process against the real API server: the examples become Ready, deleting a
 * backend shows on its bindings, a restart writes nothing, a kube-apiserver restart is ridden out,
 * leadership moves on a crash, and no secret value reaches a log, an Event or a status.
 *
 * Every controller process runs as the chart's controller would: under a token of the service
 * account a `helm install` of charts/secret-binder creates, with only the RBAC that install grants
 * (plus the one RoleBinding a namespace owner adds to let SecretBackends there use credentials,
 * docs/rbac.md) — never as system:masters. A request the API server refuses is an RBAC gap of the
 * chart, and fails the suite.
 */

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: { conditions?: Condition[] } & Record<string, unknown> };

const suffix = randomBytes(3).toString('hex');
const ns = `ctl-${suffix}`;
/** The chart, installed per run under its own names: its Role names the one Lease it may renew. */
const chart = chartRelease(`ctl-${suffix}`, `ctl-rel-${suffix}`, `sbctl-${suffix}`);
// The CSIDriver is one per cluster (another suite's install may own it); this suite runs no webhook.
const chartValues = { fullnameOverride: chart.fullname, csiDriver: { create: false }, webhook: { enabled: false } };
const leaseName = chart.leaseName;
const operatorNamespace = chart.namespace;
/** Values written to OpenBao: they must never appear in logs, Events or status. */
const markers = [`marker-password-${randomBytes(6).toString('hex')}`, `marker-apikey-${randomBytes(6).toString('hex')}`];

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let controllers: ControllerProcess[] = [];
/** A kubeconfig holding only a token of the chart's controller service account. */
let controllerKubeconfig: string;
/** When the kube-apiserver restart test stopped the API server, and when it answered again. */
let apiserverRestart: { readonly from: number; readonly to: number } | undefined;

function ref(kind: ResourceKind): { group: string; version: string; plural: string } {
  return { group, version, plural: resources[kind].plural };
}

async function getObject(kind: ResourceKind, name: string): Promise<Obj | undefined> {
  try {
    return (resources[kind].namespaced
      ? await custom.getNamespacedCustomObject({ ...ref(kind), namespace: ns, name })
      : await custom.getClusterCustomObject({ ...ref(kind), name })) as Obj;
  } catch (error) {
    if (error instanceof ApiException && (error as ApiException<unknown>).code === 404) return undefined;
    throw error;
  }
}

async function apply(object: Obj): Promise<void> {
  const kind = object.kind as ResourceKind;
  const body = { ...object, metadata: { ...(object.metadata as Record<string, unknown>), ...(resources[kind].namespaced ? { namespace: ns } : {}) } };
  if (resources[kind].namespaced) await custom.createNamespacedCustomObject({ ...ref(kind), namespace: ns, body });
  else await custom.createClusterCustomObject({ ...ref(kind), body });
}

async function remove(kind: ResourceKind, name: string): Promise<void> {
  if (resources[kind].namespaced) await custom.deleteNamespacedCustomObject({ ...ref(kind), namespace: ns, name });
  else await custom.deleteClusterCustomObject({ ...ref(kind), name });
}

function ready(object: Obj | undefined): Condition | undefined {
  return object?.status?.conditions?.find((c) => c.type === 'Ready');
}

async function waitReady(kind: ResourceKind, name: string, status: 'True' | 'False', reason?: string, timeoutMs = 30_000): Promise<Obj> {
  let last = 'nothing read';
  try {
    return await eventually(
      `${kind} ${name} Ready=${status}${reason === undefined ? '' : ` (${reason})`}`,
      async () => {
        const object = await getObject(kind, name);
        const c = ready(object);
        last = object === undefined ? 'not found' : `Ready=${c?.status ?? '-'} ${c?.reason ?? ''} rv=${object.metadata?.resourceVersion ?? ''}`;
        return c?.status === status && (reason === undefined || c.reason === reason) ? object : undefined;
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; last seen: ${last}`);
  }
}

const currentLeader = (): Promise<string | undefined> => leaseHolder(kc, leaseName, operatorNamespace);

function start(identity: string, lease = patientLease): ControllerProcess {
  const controller = startController(currentWorld(), {
    identity: `${identity}-${suffix}`,
    watchNamespaces: [ns],
    leaseName,
    lease,
    kubeconfigPath: controllerKubeconfig,
    namespace: chart.namespace,
  });
  controllers.push(controller);
  return controller;
}

const examples = loadExamples(join(root, 'deploy/examples')).map((e) => e.object as Obj);
const clusterExamples = examples.filter((o) => !resources[o.kind as ResourceKind].namespaced);

describe('controller against a real API server', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await installCrds(kc);
    await installChart(chart, chartValues);
    controllerKubeconfig = (await serviceAccountKubeConfig(core, chart.namespace, chart.controllerServiceAccount)).path;
    await core.createNamespace({ body: { metadata: { name: ns, labels: { 'secretbinder.dev/demo': 'true' } } } });
    // The namespace owner's opt-in: SecretBackends here may use credentials here (docs/rbac.md).
    await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'secret-binder-credentials' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${chart.fullname}-credentials-reader` },
        subjects: [{ kind: 'ServiceAccount', name: chart.controllerServiceAccount, namespace: chart.namespace }],
      },
    });
    // An OpenBao backend with token auth: the values the leak check looks for.
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    await writeKvSecret(bao, `ctl-${suffix}/db`, { username: 'app', password: markers[0] ?? '' });
    await writeKvSecret(bao, `ctl-${suffix}/api`, { key: markers[1] ?? '' });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
    await apply({
      apiVersion: `${group}/${version}`,
      kind: 'SecretBackend',
      metadata: { name: 'openbao' },
      spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } }, refreshInterval: '10s' },
    });
    await apply({
      apiVersion: `${group}/${version}`,
      kind: 'SecretBinding',
      metadata: { name: 'from-openbao' },
      spec: {
        backendRef: { kind: 'SecretBackend', name: 'openbao' },
        podSelector: { matchLabels: { app: 'leak-check' } },
        containers: ['app'],
        files: [
          { path: 'db.env', format: 'dotenv', items: [{ name: 'DB_PASSWORD', key: `ctl-${suffix}/db`, property: 'password' }] },
          { path: 'api-key', key: `ctl-${suffix}/api`, property: 'key' },
        ],
      },
    });
    for (const example of examples) {
      const kind = example.kind as ResourceKind;
      if (!resources[kind].namespaced && (await getObject(kind, example.metadata?.name ?? '')) !== undefined) continue;
      await apply(example);
    }
    start('a');
  }, 90_000);

  afterAll(async () => {
    await Promise.all(controllers.map((c) => c.stop()));
    controllers = [];
    for (const example of clusterExamples) await remove(example.kind as ResourceKind, example.metadata?.name ?? '').catch(() => undefined);
    await uninstallChart(chart);
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    await core.deleteNamespace({ name: chart.namespace }).catch(() => undefined);
  }, 60_000);

  it('makes every example of deploy/examples Ready, and a real OpenBao binding too', async () => {
    for (const example of [...examples, { kind: 'SecretBinding', metadata: { name: 'from-openbao' } } as Obj]) {
      const object = await waitReady(example.kind as ResourceKind, example.metadata?.name ?? '', 'True');
      expect(object.status?.['observedGeneration']).toBe(object.metadata?.generation);
      if (example.kind === 'SecretBinding') {
        expect(object.status?.['contentHmac']).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
        expect((object.status?.['backendVersions'] as unknown[]).length).toBeGreaterThan(0);
      }
    }
  }, 60_000);

  it('turns bindings Ready=False (BackendNotFound) within 5 s of their backend being deleted, and recovers', async () => {
    const backend = examples.find((o) => o.kind === 'SecretBackend' && o.metadata?.name === 'demo');
    if (backend === undefined) throw new Error('deploy/examples has no SecretBackend "demo"');
    const users = examples.filter((o) => o.kind === 'SecretBinding' && (o.spec?.['backendRef'] as { name: string }).name === 'demo');
    expect(users.length).toBeGreaterThan(0);
    await remove('SecretBackend', 'demo');
    const deletedAt = Date.now();
    for (const binding of users) await waitReady('SecretBinding', binding.metadata?.name ?? '', 'False', 'BackendNotFound', 5_000);
    expect(Date.now() - deletedAt).toBeLessThan(5_000);
    await apply(backend);
    for (const binding of users) await waitReady('SecretBinding', binding.metadata?.name ?? '', 'True');
  }, 60_000);

  it('names a missing credentials Secret CredentialsNotFound on the backend, not AuthFailed', async () => {
    const openbao = currentWorld().openbao;
    if (openbao === undefined) throw new Error('the world has no OpenBao');
    const name = 'missing-credentials';
    await apply({
      apiVersion: `${group}/${version}`,
      kind: 'SecretBackend',
      metadata: { name },
      spec: { vault: { address: openbao.address, mount: openbao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'no-such-secret', key: 'token' } } } } },
    });
    const backend = await waitReady('SecretBackend', name, 'False', 'CredentialsNotFound');
    expect(ready(backend)?.message).toContain('HTTP 404');
    await remove('SecretBackend', name);
  }, 60_000);

  it('writes nothing when restarted over unchanged objects', async () => {
    const kinds: ResourceKind[] = ['SecretBackend', 'SecretBinding'];
    // Bindings of the examples' "demo" backend rotate every 2 minutes: a write for them may be a
    // real change, so they are left out; every other object must keep its resourceVersion.
    const rotating = (item: Obj): boolean =>
      item.kind === 'SecretBinding' && (item.spec?.['backendRef'] as { name?: string } | undefined)?.name === 'demo';
    const snapshot = async (): Promise<Map<string, string>> => {
      const versions = new Map<string, string>();
      for (const kind of kinds) {
        const list = (await custom.listNamespacedCustomObject({ ...ref(kind), namespace: ns })) as { items: Obj[] };
        for (const item of list.items) {
          if (!rotating({ ...item, kind })) versions.set(`${kind}/${item.metadata?.name ?? ''}`, item.metadata?.resourceVersion ?? '');
        }
      }
      for (const example of clusterExamples) {
        const object = await getObject(example.kind as ResourceKind, example.metadata?.name ?? '');
        versions.set(`${example.kind ?? ''}/${example.metadata?.name ?? ''}`, object?.metadata?.resourceVersion ?? '');
      }
      return versions;
    };
    const eventCount = async (): Promise<number> =>
      (await core.listNamespacedEvent({ namespace: ns })).items.filter((e) => !['shop-credentials', 'signing-keys', 'web-config', 'worker-credentials'].includes(e.involvedObject.name ?? '')).length;

    const [first] = controllers;
    if (first === undefined) throw new Error('no controller');
    const bindingCount = examples.filter((o) => o.kind === 'SecretBinding').length + 1;
    const before = await snapshot();
    const eventsBefore = await eventCount();
    await first.stop();
    const second = start('b');
    // Converged: the new leader has reconciled every binding and backend at least once.
    await eventually('restarted controller reconciled every binding', async () =>
      (await second.metric('secretbinder_reconcile_total', 'controller="binding"')) >= bindingCount ? true : undefined,
    );
    await eventually('restarted controller reconciled every backend', async () =>
      (await second.metric('secretbinder_reconcile_total', 'controller="backend"')) >= 2 ? true : undefined,
    );
    expect(await snapshot()).toEqual(before);
    expect(await eventCount()).toBe(eventsBefore);
  }, 180_000);

  it('rides out a kube-apiserver restart and reconciles a change made right after it', async () => {
    const leader = controllers.find((c) => c.alive());
    if (leader === undefined) throw new Error('no running controller');
    const from = Date.now();
    await restartKubeApiserver(currentWorld());
    apiserverRestart = { from, to: Date.now() };
    const changedAt = Date.now();
    await remove('SecretBackend', 'demo');
    await waitReady('SecretBinding', 'shop-credentials', 'False', 'BackendNotFound', 30_000);
    expect(Date.now() - changedAt).toBeLessThan(30_000);
    expect(leader.alive()).toBe(true);
    const backend = examples.find((o) => o.kind === 'SecretBackend' && o.metadata?.name === 'demo');
    if (backend !== undefined) await apply(backend);
    await waitReady('SecretBinding', 'shop-credentials', 'True');
  }, 90_000);

  it('elects exactly one leader of two, and the other takes over within 15 s when it is killed', async () => {
    // A fresh pair with short leases (a candidate honours the duration the holder declared).
    for (const running of controllers.filter((c) => c.alive())) await running.stop();
    const leader = start('c', quickLease);
    await eventually('c leads', async () => ((await currentLeader()) === leader.identity ? true : undefined));
    const standby = start('d', quickLease);
    await standby.healthPort();
    await sleep(3_000);
    expect(await currentLeader()).toBe(leader.identity);
    expect(await leader.metric('secretbinder_leader', '')).toBe(1);
    expect(await standby.metric('secretbinder_leader', '')).toBe(0);

    await leader.kill();
    const killedAt = Date.now();
    await eventually('the standby leads', async () => ((await currentLeader()) === standby.identity ? true : undefined), 20_000);
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    // And it does the leader's work: a new binding becomes Ready.
    const example = examples.find((o) => o.kind === 'SecretBinding' && o.metadata?.name === 'shop-credentials');
    if (example === undefined) throw new Error('no shop-credentials example');
    await apply({ ...example, metadata: { name: 'after-failover' } });
    await waitReady('SecretBinding', 'after-failover', 'True');
  }, 90_000);

  it('never writes a secret value to a log, an Event or a status', async () => {
    await waitReady('SecretBinding', 'from-openbao', 'True');
    const logDir = currentWorld().logDir;
    const logs = readdirSync(logDir)
      .filter((f) => f.startsWith('controller-'))
      .map((f) => readFileSync(join(logDir, f), 'utf8'))
      .join('\n');
    expect(logs.length).toBeGreaterThan(1000);
    const events = JSON.stringify((await core.listNamespacedEvent({ namespace: ns })).items);
    const statuses = JSON.stringify(await custom.listNamespacedCustomObject({ ...ref('SecretBinding'), namespace: ns }));
    for (const marker of markers) {
      expect(logs).not.toContain(marker);
      expect(events).not.toContain(marker);
      expect(statuses).not.toContain(marker);
    }
    // The dev root token authenticates the backend; it must not show either.
    expect(logs).not.toContain(currentWorld().openbao?.rootToken ?? 'no-token');
  });

  it("needed nothing the chart's RBAC does not grant: no request of any of its controllers was refused", () => {
    expect(controllers.length).toBeGreaterThanOrEqual(4);
    // A kube-apiserver that has just started answers requests before its RBAC authorizer's caches
    // have synced (system:masters skips RBAC, so only a real identity sees it): for those seconds a
    // refusal is the server's, not the chart's. A missing grant is refused at any time.
    const starting = (line: string): boolean => {
      const time = Date.parse(/"time":"([^"]+)"/.exec(line)?.[1] ?? '');
      return apiserverRestart !== undefined && time >= apiserverRestart.from && time <= apiserverRestart.to + 15_000;
    };
    for (const controller of controllers) {
      const refused = controller.log().split('\n').filter((line) => refusedRequest.test(line) && !starting(line));
      expect({ controller: controller.identity, refused }).toEqual({ controller: controller.identity, refused: [] });
    }
  });
});
