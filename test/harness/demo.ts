/**
 * `npm run demo`: the main job on an embedded default. Starts a local control plane and OpenBao,
 * installs the CRDs, runs the controller against them, applies `deploy/examples/` plus a binding
 * that reads a real OpenBao secret, and prints what the bindings resolved: keys, versions and
 * content HMACs — never a value. Stops everything at the end unless `--keep` is given.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { group, resources, version, type ResourceKind, type SecretBinding } from '../../src/api/v1alpha1/index.ts';
import { startController, operatorNamespace } from './controller-process.ts';
import { eventually, installCrds } from './crds.ts';
import { demoDelivery } from './demo-delivery.ts';
import { writeKvSecret } from './openbao.ts';
import { stopProcess, type ProcessRecord } from './process.ts';
import { adminKubeConfig, down, up } from './world.ts';

/** The kubectl built with the control plane, in the cache. */
function kubectlPath(): string {
  const cache = process.env.SECRET_BINDER_CACHE ?? join(process.env.HOME ?? '/root', '.cache/secret-binder');
  return join(cache, 'kubernetes', process.env.SECRET_BINDER_K8S_VERSION ?? 'v1.34.4', 'bin/kubectl');
}

const { values: flags } = parseArgs({ options: { keep: { type: 'boolean', default: false } } });
const t0 = Date.now();
const say = (line: string): void => {
  process.stdout.write(`[demo +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
};

say('starting a local control plane (etcd, kube-apiserver, kube-controller-manager) and OpenBao');
const world = await up({ backends: ['openbao'] });
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  say('stopping the node plugin, the controller and the world');
  for (const p of processes) await stopProcess(p);
  await controller?.stop();
  await down(world);
};
let controller: ReturnType<typeof startController> | undefined;
const processes: ProcessRecord[] = [];
process.once('SIGINT', () => void stop().then(() => process.exit(130)));

try {
  const kc = adminKubeConfig(world.kube);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  say(`world ready; kubeconfig: ${world.kube.kubeconfigPath}`);

  await installCrds(kc);
  say('CRDs installed: ClusterSecretBackend, SecretBackend, SecretBinding');
  const ns = 'demo';
  await core.createNamespace({ body: { metadata: { name: operatorNamespace } } });
  await core.createNamespace({ body: { metadata: { name: ns, labels: { 'secretbinder.dev/demo': 'true' } } } });

  // A real backend: OpenBao in dev mode, token auth from a Secret in the backend's namespace.
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  await writeKvSecret(bao, 'shop/db', { username: 'shop', password: randomBytes(12).toString('base64url') });
  await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
  const extra: KubernetesObject[] = [
    {
      apiVersion: `${group}/${version}`,
      kind: 'SecretBackend',
      metadata: { name: 'openbao' },
      spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } }, refreshInterval: '10s' },
    } as KubernetesObject,
    {
      apiVersion: `${group}/${version}`,
      kind: 'SecretBinding',
      metadata: { name: 'shop-db-from-openbao' },
      spec: {
        backendRef: { kind: 'SecretBackend', name: 'openbao' },
        podSelector: { matchLabels: { app: 'shop' } },
        containers: ['app'],
        files: [{ path: 'db.env', format: 'dotenv', items: [{ name: 'DB_USER', key: 'shop/db', property: 'username' }, { name: 'DB_PASSWORD', key: 'shop/db', property: 'password' }] }],
      },
    } as KubernetesObject,
  ];

  const brokerCa = join(world.dir, 'broker-ca.pem');
  controller = startController(world, {
    identity: 'demo-controller',
    watchNamespaces: [ns],
    leaseName: 'secret-binder-controller',
    logLevel: 'info',
    extraArgs: ['--broker-address', '127.0.0.1:0', '--broker-ca-out', brokerCa, '--node-plugin-service-account', `${operatorNamespace}:secret-binder-node`],
  });
  say(`controller started (log: ${controller.record.logPath}); health on 127.0.0.1:${await controller.healthPort()}`);

  const dir = join(process.cwd(), 'deploy/examples');
  const examples = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8'), { version: '1.1' }).map((d) => d.toJS() as KubernetesObject));
  for (const object of [...examples, ...extra]) {
    const kind = object.kind as ResourceKind;
    const target = { group, version, plural: resources[kind].plural };
    if (resources[kind].namespaced) {
      await custom.createNamespacedCustomObject({ ...target, namespace: ns, body: { ...object, metadata: { ...(object.metadata as Record<string, unknown>), namespace: ns } } });
    } else {
      await custom.createClusterCustomObject({ ...target, body: object });
    }
  }
  say(`applied deploy/examples/ (${examples.length} objects) and an OpenBao-backed binding in namespace ${ns}`);

  const bindings = await eventually(
    'every binding Ready',
    async () => {
      const list = (await custom.listNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns })) as { items: SecretBinding[] };
      const settled = list.items.every((b) => b.status?.conditions?.some((c) => c.type === 'Ready' && c.status !== 'Unknown'));
      return settled && list.items.length > 0 ? list.items : undefined;
    },
    60_000,
  );
  say('bindings (status holds keys, versions and keyed HMACs of content — never a value):');
  const rows = bindings.map((b) => {
    const ready = b.status?.conditions?.find((c) => c.type === 'Ready');
    const versions = (b.status?.backendVersions ?? []).map((v) => `${v.key}@${v.version}`).join(', ');
    return [b.metadata.name ?? '', b.spec.backendRef.name, ready?.status ?? '?', ready?.reason ?? '', (b.status?.contentHmac ?? '').slice(0, 24), versions];
  });
  const header = ['NAME', 'BACKEND', 'READY', 'REASON', 'CONTENT HMAC', 'VERSIONS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) process.stdout.write(`  ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}\n`);
  const allReady = rows.every((r) => r[2] === 'True');
  say(allReady ? 'every binding is Ready' : 'some bindings are not Ready (see REASON)');

  const delivered = await demoDelivery({ world, core, controller, brokerCa, namespace: ns, say });
  processes.push(...delivered.processes);

  if (flags.keep) {
    say('running until Ctrl-C; try:');
    process.stdout.write(
      `  export KUBECONFIG=${world.kube.kubeconfigPath}\n` +
        `  kubectl get secretbinder -A    # the category: every secret-binder object (kubectl: ${kubectlPath()})\n` +
        `  kubectl describe secretbinding -n ${ns} shop-credentials\n`,
    );
    await new Promise(() => undefined);
  }
  await stop();
  process.exitCode = allReady && delivered.ok ? 0 : 1;
} catch (error) {
  await stop();
  throw error;
}
