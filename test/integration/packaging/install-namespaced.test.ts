import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually } from '../support/cluster.ts';
import { chartRelease, installChart, refusedRequest, uninstallChart } from './chart-release.support.ts';
import { serviceAccountKubeConfig, statusOf } from './identity.support.ts';

/**
 * The namespaced install mode (`watchNamespaces`), installed into the real API server: the
 * controller's identity reaches pods, bindings and workloads only in the watched namespace, and
 * that is enough for the controller to run and reconcile there.
 */

const suffix = randomBytes(3).toString('hex');
const release = `pkgn-${suffix}`;
const releaseNs = `pkgn-rel-${suffix}`;
const watchedNs = `pkgn-watched-${suffix}`;
const otherNs = `pkgn-other-${suffix}`;
const fullname = `sbpkgn-${suffix}`;
const chart = chartRelease(release, releaseNs, fullname);

// The CSIDriver is one per cluster: another suite's install may own it.
const values = { fullnameOverride: fullname, watchNamespaces: [watchedNs], csiDriver: { create: false } };

let admin: KubeConfig;
let core: CoreV1Api;
let sa: KubeConfig;
let saConfigPath: string;
let controller: ControllerProcess | undefined;

beforeAll(async () => {
  admin = adminKubeConfig();
  core = admin.makeApiClient(CoreV1Api);
  for (const ns of [watchedNs, otherNs]) await core.createNamespace({ body: { metadata: { name: ns } } });
  await installChart(chart, values);
  ({ config: sa, path: saConfigPath } = await serviceAccountKubeConfig(core, releaseNs, chart.controllerServiceAccount));
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await uninstallChart(chart);
  for (const ns of [watchedNs, otherNs, releaseNs]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
}, 120_000);

describe('namespaced install', () => {
  it('binds a Role in the watched namespace and keeps namespaced resources out of the ClusterRole', async () => {
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readNamespacedRole({ name: `${fullname}-controller`, namespace: watchedNs });
    expect(role.rules?.flatMap((r) => r.resources ?? [])).toEqual(expect.arrayContaining(['pods', 'secretbindings', 'secretbackends']));
    const clusterRole = await rbac.readClusterRole({ name: `${fullname}-controller` });
    expect(clusterRole.rules?.flatMap((r) => r.resources ?? [])).not.toContain('pods');
  });

  it("the controller's identity reaches pods and bindings only in the watched namespace", async () => {
    const custom = sa.makeApiClient(CustomObjectsApi);
    const client = sa.makeApiClient(CoreV1Api);
    const bindings = { group, version, plural: resources.SecretBinding.plural };
    expect(await statusOf(() => custom.listNamespacedCustomObject({ ...bindings, namespace: watchedNs }))).toBe(200);
    expect(await statusOf(() => custom.listNamespacedCustomObject({ ...bindings, namespace: otherNs }))).toBe(403);
    expect(await statusOf(() => custom.listClusterCustomObject(bindings))).toBe(403);
    expect(await statusOf(() => custom.listClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural }))).toBe(200);
    expect(await statusOf(() => client.listNamespacedPod({ namespace: watchedNs }))).toBe(200);
    expect(await statusOf(() => client.listNamespacedPod({ namespace: otherNs }))).toBe(403);
    expect(await statusOf(() => client.listPodForAllNamespaces())).toBe(403);
    expect(await statusOf(() => client.readNamespacedSecret({ name: 'anything', namespace: watchedNs }))).toBe(403);
    expect(await statusOf(() => sa.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'anything', namespace: otherNs }))).toBe(403);
    expect(await statusOf(() => sa.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: 'anything', namespace: watchedNs }))).toBe(404);
  });

  it('is enough to run the controller in the namespaced mode', async () => {
    const custom = admin.makeApiClient(CustomObjectsApi);
    const examples = join(process.cwd(), 'deploy', 'examples');
    for (const [file, plural] of [['secret-backend-fake.yaml', 'secretbackends'], ['binding-single-files.yaml', 'secretbindings']] as const) {
      const body = parse(readFileSync(join(examples, file), 'utf8')) as { metadata: Record<string, unknown> };
      await custom.createNamespacedCustomObject({ group, version, plural, namespace: watchedNs, body: { ...body, metadata: { ...body.metadata, namespace: watchedNs } } });
    }
    controller = startController(currentWorld(), {
      identity: `pkgn-${suffix}-0`,
      watchNamespaces: [watchedNs],
      leaseName: chart.leaseName,
      kubeconfigPath: saConfigPath,
      namespace: releaseNs,
      logLevel: 'info',
    });
    await eventually(
      'binding shop-credentials Ready=True',
      async () => {
        const b = (await custom.getNamespacedCustomObject({ group, version, plural: 'secretbindings', namespace: watchedNs, name: 'shop-credentials' })) as {
          status?: { conditions?: { type: string; status: string }[] };
        };
        return b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true ? true : undefined;
      },
      60_000,
    );
    expect(controller.log()).not.toMatch(refusedRequest);
  });
});
