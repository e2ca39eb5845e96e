import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { AppsV1Api, RbacAuthorizationV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { registerNeedle } from '../../harness/leak-capture.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { serviceAccountKubeConfig } from '../packaging/identity.support.ts';
import { find, template } from '../packaging/helm.support.ts';
import { startDeliveryWorld, type DeliveryWorld } from '../rotation/delivery-world.ts';

/**
 * The cluster the CLI suite talks to: the rotation suites' delivery world (real API server, a
 * controller with its broker, one node plugin, OpenBao, real tmpfs) with fixtures whose secret
 * values are known, so every command's output can be searched for them.
 *
 * - `db` (Refresh): `db/password` (one property) and `config.json` (json from two items), listed
 *   for container `app`; consumed by pods `web` (containers app, and sidecar which mounts nothing)
 *   and `api`; pod `nosy` is refused (its container logger mounts the volume without being listed).
 * - `broken`: a key that does not exist (Ready=False, KeyNotFound); mounted by pod `lost`.
 * - pod `ghost` mounts a binding that does not exist.
 */
export interface CliWorld {
  readonly delivery: DeliveryWorld;
  readonly ns: string;
  readonly kubeconfig: string;
  /** A service account with no rights at all. */
  readonly nobodyKubeconfig: string;
  /** A service account bound (in `ns`) to the chart's secret-binder-viewer ClusterRole. */
  readonly viewerKubeconfig: string;
  /** Every secret value of the fixtures. */
  readonly secrets: readonly string[];
  readonly dbKey: string;
  readonly bao: { readonly address: string; readonly kvMount: string };
  close(): Promise<void>;
}

const value = (label: string): string => `${label}-${randomBytes(12).toString('hex')}`;

export async function startCliWorld(): Promise<CliWorld> {
  const delivery = await startDeliveryWorld({ prefix: 'cli', nodes: 1 });
  try {
    return await withFixtures(delivery);
  } catch (error) {
    await delivery.close();
    throw error;
  }
}

async function withFixtures(delivery: DeliveryWorld): Promise<CliWorld> {
  const { ns, core, bao } = delivery;
  const rbac = delivery.kc.makeApiClient(RbacAuthorizationV1Api);
  const dbKey = `cli-${delivery.suffix}/db`;
  const secrets: string[] = [value('pw'), value('user')];
  await writeKvSecret(bao, dbKey, { password: secrets[0] ?? '', username: secrets[1] ?? '' });
  await delivery.createBinding('db', {
    podSelector: { matchLabels: { app: 'web' } },
    files: [
      { path: 'db/password', key: dbKey, property: 'password' },
      { path: 'config.json', format: 'json', mode: 0o400, items: [{ name: 'user', key: dbKey, property: 'username' }, { name: 'password', key: dbKey, property: 'password' }] },
    ],
  });
  await delivery.custom.createNamespacedCustomObject({
    group: 'secretbinder.dev', version: 'v1alpha1', plural: 'secretbindings', namespace: ns,
    body: { apiVersion: 'secretbinder.dev/v1alpha1', kind: 'SecretBinding', metadata: { name: 'broken' }, spec: { backendRef: { kind: 'SecretBackend', name: 'backend' }, podSelector: { matchLabels: { app: 'lost' } }, containers: ['app'], files: [{ path: 'token', key: `cli-${delivery.suffix}/missing` }] } },
  });
  await eventually('binding broken concluded', async () => ((await delivery.bindingStatus('broken'))?.conditions?.find((c) => c.type === 'Ready')?.status === 'False' ? true : undefined), 60_000);

  const side = delivery.nodes[0];
  if (side === undefined) throw new Error('no node');
  const pod = (name: string, app: string, binding: string, containers: V1Container[]): Promise<V1Pod> =>
    core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name, labels: { app } },
        spec: { nodeName: side.node, serviceAccountName: 'web', automountServiceAccountToken: false, containers, volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding } } }] },
      },
    });
  const mount = [{ name: 'secrets', mountPath: '/var/run/secrets/app', readOnly: true }];
  const web = await pod('web', 'web', 'db', [
    { name: 'app', image: 'busybox', volumeMounts: mount },
    { name: 'sidecar', image: 'busybox' },
  ]);
  // The broker refuses the whole volume when any container mounting it is not listed.
  await pod('nosy', 'web', 'db', [
    { name: 'app', image: 'busybox', volumeMounts: mount },
    { name: 'logger', image: 'busybox', volumeMounts: mount },
  ]);
  const api = await pod('api', 'web', 'db', [{ name: 'app', image: 'busybox', volumeMounts: mount }]);
  await pod('lost', 'lost', 'broken', [{ name: 'app', image: 'busybox', volumeMounts: mount }]);
  await pod('ghost', 'ghost', 'nothing-here', [{ name: 'app', image: 'busybox', volumeMounts: mount }]);
  for (const p of [web, api]) await eventually(`publish ${p.metadata?.name ?? ''}`, async () => (await side.kubelet.publishPod(p).catch(() => undefined))?.[0], 30_000);
  // web, api and nosy are selected (counted); none is stale: the status the CLI reads.
  await eventually('db counts its consumers', async () => ((await delivery.bindingStatus('db'))?.consumers?.pods === 3 ? true : undefined), 60_000);

  // Sprawl in the cluster: a literal password in a bare pod, a secretKeyRef in a Deployment, a
  // Secret nothing references (the backend's credentials Secret is referenced by the backend).
  const leaked = value('literal');
  const orphanValue = value('orphan');
  registerNeedle(leaked, 'cli sprawl fixture');
  registerNeedle(orphanValue, 'cli sprawl fixture');
  secrets.push(leaked, orphanValue);
  await core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name: 'leaky' }, spec: { nodeName: side.node, automountServiceAccountToken: false, containers: [{ name: 'app', image: 'busybox', env: [{ name: 'DB_PASSWORD', value: leaked }] }] } },
  });
  await delivery.kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'legacy' },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'legacy' } },
        template: { metadata: { labels: { app: 'legacy' } }, spec: { containers: [{ name: 'app', image: 'busybox', env: [{ name: 'API_TOKEN', valueFrom: { secretKeyRef: { name: 'orphan', key: 'token' } } }] }] } },
      },
    },
  });
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'orphan' }, stringData: { token: orphanValue } } });
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'forgotten' }, stringData: { token: orphanValue } } });

  // The admin kubeconfig with the app namespace as its context's namespace (as kubens would set it).
  const admin = parse(readFileSync(currentWorld().kube.kubeconfigPath, 'utf8')) as { contexts?: { context?: { namespace?: string } }[] };
  for (const context of admin.contexts ?? []) if (context.context !== undefined) context.context.namespace = ns;
  const kubeconfig = `${currentWorld().kube.kubeconfigPath}-cli-${delivery.suffix}`;
  writeFileSync(kubeconfig, JSON.stringify(admin), { mode: 0o600 });

  for (const name of ['nobody', 'viewer']) await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  const { manifests, result } = await template({ values: { fullnameOverride: `cli-${delivery.suffix}` } });
  if (result.code !== 0) throw new Error(result.stderr);
  const role = find(manifests, 'ClusterRole', 'secret-binder-viewer')[0];
  if (role === undefined) throw new Error('the chart renders no secret-binder-viewer ClusterRole');
  // The chart's rules under this world's own name: the cluster is shared with the install suite,
  // whose `helm install` must find no secret-binder-viewer it does not own.
  const viewerRole = `secret-binder-viewer-${delivery.suffix}`;
  await rbac.createClusterRole({ body: { ...role, metadata: { ...role.metadata, name: viewerRole } } });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: { metadata: { name: 'viewer' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: viewerRole }, subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: ns }] },
  });
  const nobody = await serviceAccountKubeConfig(core, ns, 'nobody');
  const viewer = await serviceAccountKubeConfig(core, ns, 'viewer');

  return {
    delivery, ns, kubeconfig, secrets, dbKey,
    nobodyKubeconfig: nobody.path,
    viewerKubeconfig: viewer.path,
    bao,
    close: async () => {
      await rbac.deleteClusterRole({ name: viewerRole }).catch(() => undefined);
      await delivery.close();
    },
  };
}
