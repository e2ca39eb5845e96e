import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, AppsV1Api, CoordinationV1Api, CoreV1Api, DiscoveryV1Api, type KubeConfig, StorageV1Api } from '@kubernetes/client-node';
import { group, resources, version, type SecretBinding } from '../../src/api/v1alpha1/index.ts';
import { baoBinary } from '../harness/backend-tools.ts';
import { startHostForward, type HostForward } from '../harness/node/host-forward.ts';
import { buildProjectImage, projectImageReference } from '../harness/node/project-image.ts';
import { busyboxImage, mountsUnder, realNodeTaint, realNodeUnavailable, startRealNode, type RealNode } from '../harness/node/real-node.ts';
import { exposeHostService } from '../harness/node/service-network.ts';
import { openBaoRequest } from '../harness/openbao.ts';
import { issueFromWorldCa } from '../harness/pki.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, errorText, eventually } from '../integration/support/cluster.ts';
import { uninstallChart } from '../integration/packaging/chart-release.support.ts';
import { command, helmPath, kubectlPath } from '../integration/packaging/helm.support.ts';
import { readmeQuickStart } from '../integration/packaging/readme-quickstart.support.ts';
import { faultDrills } from './installed-release.drills.ts';
import { bao, chart, InstalledRelease, mergePatch, mountPath, say, secretPath, shopNs, vaultNs } from './installed-release.support.ts';

/**
 * The install suite (issue #14 item 2, ADR 0192): the README quick start, run verbatim, against the
 * chart installed by its own `helm install` block with the project image on the real node — two
 * leader-elected controller replicas reaching the API server and OpenBao through Services, the real
 * webhook called by the API server through its Service, the node plugin reaching the broker through
 * its Service — then what the README promises about the running pods: files in a read-only tmpfs,
 * rotation by refresh and by rolling restart, the validating webhook's refusal, the fault drills of
 * `installed-release.drills.ts` (leader, node plugin and every controller replica lost), unbinding,
 * and an uninstall that leaves no pod and no mount behind. One release for every test of the suite.
 *
 * What a user's cluster and Vault already are before the quick start is set up by the suite first,
 * labelled `[cluster]` in the output: pods reach the API server (`default/kubernetes`) and OpenBao
 * (`vault/vault`, TLS with a certificate of the cluster's CA) through selector-less Services; the
 * README's namespaces tolerate the real node's taint; OpenBao's kubernetes auth calls the API
 * server's TokenReview (the world configures it). `helm` is a wrapper adding one values file with
 * this node's kubelet directory and the CA the controller trusts for OpenBao (ADR 0192).
 */

const unavailable = realNodeUnavailable();
if (unavailable !== undefined) process.stderr.write(`real-node e2e tier (install) SKIPPED: ${unavailable}\n`);
const describeNode = unavailable === undefined ? describe : describe.skip;

const readme = readmeQuickStart();
const toleration = { key: realNodeTaint.key, operator: 'Exists', effect: realNodeTaint.effect };
const release = new InstalledRelease();
const forwards: HostForward[] = [];

const defaultTolerations = 'scheduler.alpha.kubernetes.io/defaultTolerations';

/**
 * The real node is tainted so that other suites' pods stay off it; a namespace of the README
 * tolerates it through the PodTolerationRestriction admission plugin's annotation. The release's
 * namespace may exist already (other suites keep Leases there): made or annotated.
 */
async function tolerateTheNode(core: CoreV1Api, namespace: string): Promise<void> {
  const annotations = { [defaultTolerations]: JSON.stringify([toleration]) };
  const existing = await core.readNamespace({ name: namespace }).catch(() => undefined);
  if (existing === undefined) await core.createNamespace({ body: { metadata: { name: namespace, annotations } } });
  else await core.patchNamespace({ name: namespace, body: { metadata: { annotations } } }, mergePatch);
  say(`[cluster] namespace ${namespace} tolerates the real node's taint (annotation ${defaultTolerations})`);
}

/** What is left in the release namespace (besides `default` and `kube-root-ca.crt`), sorted. */
async function whatStays(): Promise<string[]> {
  const namespace = chart.namespace;
  const pods = (await release.core.listNamespacedPod({ namespace })).items.map((p) => `Pod/${p.metadata?.name ?? '?'} ${p.status?.phase ?? '?'}${p.metadata?.deletionTimestamp === undefined ? '' : ' terminating'}`);
  const secrets = (await release.core.listNamespacedSecret({ namespace })).items.map((s) => `Secret/${s.metadata?.name ?? '?'}`);
  const accounts = (await release.core.listNamespacedServiceAccount({ namespace })).items.map((a) => `ServiceAccount/${a.metadata?.name ?? '?'}`).filter((a) => a !== 'ServiceAccount/default');
  const configMaps = (await release.core.listNamespacedConfigMap({ namespace })).items.map((c) => `ConfigMap/${c.metadata?.name ?? '?'}`).filter((c) => c !== 'ConfigMap/kube-root-ca.crt');
  const services = (await release.core.listNamespacedService({ namespace })).items.map((v) => `Service/${v.metadata?.name ?? '?'}`);
  // Other suites keep Leases of their own in this namespace; only the chart's name counts here.
  const leases = (await release.kc.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace })).items.map((l) => `Lease/${l.metadata?.name ?? '?'}`).filter((l) => l === `Lease/${chart.leaseName}`);
  return [...pods, ...secrets, ...accounts, ...configMaps, ...services, ...leases].sort();
}

/** The cluster and Vault the README assumes, made before its first command. */
async function prepareCluster(node: RealNode, kc: KubeConfig): Promise<Record<string, string>> {
  const world = currentWorld();
  const core = kc.makeApiClient(CoreV1Api);
  const pki = { dir: join(world.dir, 'pki'), ca: { certPath: join(world.dir, 'pki', 'ca.crt'), keyPath: join(world.dir, 'pki', 'ca.key') } };

  // The API server listens on 127.0.0.1 only: a forward on the bridge address is the `kubernetes`
  // Service's endpoint (the API server reconciles none, ADR 0011), its certificate names the ClusterIP.
  const api = await startHostForward({ address: node.bridgeAddress, targetPort: Number(new URL(world.kube.server).port) });
  forwards.push(api);
  await exposeHostService(kc, { namespace: 'default', name: 'kubernetes', address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 443, hostPort: api.port }] });
  say(`[cluster] pods reach the API server: default/kubernetes -> ${node.bridgeAddress}:${String(api.port)} -> ${world.kube.server}`);

  // OpenBao (dev mode, plain http on 127.0.0.1) behind TLS with a certificate of the cluster's CA,
  // as `vault.vault.svc`; the controller trusts the cluster CA (the wrapper's values file).
  const cert = await issueFromWorldCa(pki, 'vault-in-cluster', { name: { CN: 'vault.vault.svc' }, server: { dns: ['vault.vault.svc', 'vault.vault.svc.cluster.local'], ips: [] } });
  const vault = await startHostForward({ address: node.bridgeAddress, targetPort: Number(new URL(bao().address).port), tls: cert });
  forwards.push(vault);
  await core.createNamespace({ body: { metadata: { name: vaultNs } } });
  await exposeHostService(kc, { namespace: vaultNs, name: 'vault', address: node.bridgeAddress, ports: [{ name: 'https', protocol: 'TCP', port: 8200, hostPort: vault.port }] });
  say(`[cluster] pods reach OpenBao: https://vault.vault.svc:8200 -> ${node.bridgeAddress}:${String(vault.port)} (TLS, cluster CA) -> ${bao().address}`);
  const auth = (await openBaoRequest(bao(), 'GET', `auth/${bao().kubernetesAuthMount}/config`)) as { data?: { kubernetes_host?: string } };
  say(`[cluster] OpenBao's auth/kubernetes calls TokenReview at ${auth.data?.kubernetes_host ?? '?'} with its own reviewer token`);

  // The node is tainted so that other suites' pods stay off it; the README's namespaces tolerate it.
  await tolerateTheNode(core, chart.namespace);

  // The README's `busybox:1.37`, from the node's own busybox image (no registry).
  node.ctr(['images', 'tag', '--force', busyboxImage, 'docker.io/library/busybox:1.37']);

  const bin = mkdtempSync(join(tmpdir(), 'sb-install-bin-'));
  const values = join(bin, 'cluster-values.yaml');
  writeFileSync(
    values,
    JSON.stringify({
      nodePlugin: { kubeletDir: node.kubeletRootDir },
      controller: { extraEnv: [{ name: 'NODE_EXTRA_CA_CERTS', value: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' }] },
    }),
  );
  writeFileSync(join(bin, 'helm'), `#!/bin/sh\nif [ "$1" = install ]; then exec '${helmPath}' "$@" --values '${values}'; fi\nexec '${helmPath}' "$@"\n`);
  chmodSync(join(bin, 'helm'), 0o755);
  symlinkSync(kubectlPath, join(bin, 'kubectl'));
  symlinkSync(baoBinary(), join(bin, 'vault'));
  say(`[cluster] helm install gets --values ${values}: this node's kubelet directory, the cluster CA for OpenBao's certificate`);
  const [repository = '', tag = ''] = projectImageReference.split(/:(?=[^:]+$)/);
  return {
    PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`,
    HOME: bin,
    KUBECONFIG: world.kube.kubeconfigPath,
    VAULT_ADDR: bao().address,
    VAULT_TOKEN: bao().rootToken,
    VAULT_IN_CLUSTER_ADDR: 'https://vault.vault.svc:8200',
    IMAGE_REPOSITORY: repository,
    IMAGE_TAG: tag,
  };
}

describeNode('install: the README quick start on the real node, from helm install to helm uninstall', () => {
  beforeAll(async () => {
    const world = currentWorld();
    const t0 = Date.now();
    const node = await startRealNode(world, { log: say });
    const image = buildProjectImage();
    node.ctr(['images', 'import', image.archivePath]);
    say(`install e2e: project image ${image.manifestDigest.slice(0, 19)} built or reused and imported in ${String(Date.now() - t0)} ms`);
    const kc = adminKubeConfig();
    release.attach({ node, kc, env: await prepareCluster(node, kc) });
  }, 300_000);

  afterAll(async () => {
    const ignore = (): undefined => undefined;
    await release.core.deleteNamespace({ name: shopNs }).catch(ignore);
    await eventually('shop pods gone', async () => ((await release.core.listNamespacedPod({ namespace: shopNs })).items.length === 0 ? true : undefined), 60_000).catch(ignore);
    say('[cleanup] shop gone');
    await uninstallChart(chart).catch(ignore);
    const admission = release.kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: chart.webhookConfigurationName }).catch(ignore);
    await admission.deleteValidatingWebhookConfiguration({ name: chart.webhookConfigurationName }).catch(ignore);
    await release.custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name: 'vault' }).catch(ignore);
    await release.core.deleteNamespacedServiceAccount({ name: 'vault-reader', namespace: chart.namespace }).catch(ignore);
    for (const secret of ['content-hmac', 'broker-tls', 'webhook-tls']) await release.core.deleteNamespacedSecret({ name: `${chart.fullname}-${secret}`, namespace: chart.namespace }).catch(ignore);
    await release.kc.makeApiClient(CoordinationV1Api).deleteNamespacedLease({ name: chart.leaseName, namespace: chart.namespace }).catch(ignore);
    await release.core.patchNamespace({ name: chart.namespace, body: { metadata: { annotations: { [defaultTolerations]: null } } } }, mergePatch).catch(ignore);
    await release.core.deleteNamespace({ name: vaultNs }).catch(ignore);
    await release.kc.makeApiClient(DiscoveryV1Api).deleteNamespacedEndpointSlice({ namespace: 'default', name: 'kubernetes-host' }).catch(ignore);
    await openBaoRequest(bao(), 'DELETE', `auth/${bao().kubernetesAuthMount}/role/secret-binder`).catch(ignore);
    await openBaoRequest(bao(), 'DELETE', 'sys/policies/acl/shop-read').catch(ignore);
    await openBaoRequest(bao(), 'DELETE', `${bao().kvMount}/metadata/${secretPath}`).catch(ignore);
    await eventually('release pods gone', async () => ((await release.core.listNamespacedPod({ namespace: chart.namespace })).items.length === 0 ? true : undefined), 60_000).catch(ignore);
    say('[cleanup] release gone');
    for (const f of forwards) await f.stop();
    await release.node.stop();
    say('[cleanup] node stopped');
  }, 240_000);

  it('runs every README quick-start command verbatim: the chart, the backend (kubernetes auth), the binding, the Deployment', async () => {
    expect(readme.environment).toEqual(['VAULT_ADDR', 'VAULT_IN_CLUSTER_ADDR', 'IMAGE_REPOSITORY', 'IMAGE_TAG']);
    for (const name of readme.environment) say(`[readme] export ${name}=${release.env[name] ?? ''}`);
    for (const block of readme.blocks) {
      if (block.includes('kind: Deployment')) {
        // `kubectl create namespace shop` ran in the block before; the user's namespace, like the
        // release's, tolerates the real node's taint.
        await tolerateTheNode(release.core, shopNs);
      }
      await release.readmeCommand(block);
    }
    expect((await release.shopPods()).length).toBe(2);
  }, 600_000);

  it('runs 2 leader-elected controller replicas and the node plugin, all through Services (no host network)', async () => {
    const controllers = await eventually('2 controller pods Ready', async () => {
      const pods = await release.readyPods(chart.namespace, 'app.kubernetes.io/component=controller');
      return pods.length === 2 ? pods : undefined;
    }, 120_000);
    const lease = await release.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: chart.namespace, name: chart.leaseName });
    const names = controllers.map((p) => p.metadata?.name);
    say(`observed: controller pods ${names.join(', ')}; lease ${chart.leaseName} held by ${lease.spec?.holderIdentity ?? '?'}`);
    expect(names).toContain(lease.spec?.holderIdentity);
    for (const p of controllers) {
      expect(p.spec?.hostNetwork).not.toBe(true);
      expect(p.spec?.containers[0]?.image).toBe(projectImageReference);
      expect(p.spec?.nodeName).toBe(release.node.name);
    }
    const [plugin] = await eventually('node-plugin pod Ready', async () => {
      const pods = await release.readyPods(chart.namespace, 'app.kubernetes.io/component=node-plugin');
      return pods.length === 1 ? pods : undefined;
    }, 120_000);
    expect(plugin?.spec?.hostNetwork).not.toBe(true);
    const brokerUrl = plugin?.spec?.containers[0]?.args?.find((a) => a.startsWith('--broker-url'));
    say(`observed: node plugin ${plugin?.metadata?.name ?? '?'} Ready, ${brokerUrl ?? '(no --broker-url)'}`);
    expect(brokerUrl).toMatch(/\.svc\b/);
    const csiNode = await release.kc.makeApiClient(StorageV1Api).readCSINode({ name: release.node.name });
    expect(csiNode.spec.drivers.map((d) => d.name)).toContain('secretbinder.dev');
  }, 180_000);

  it('the real webhook mutated both pods; their container app reads db.env from a read-only, size-limited tmpfs', async () => {
    const expected = await release.storedPassword();
    for (const pod of await release.shopPods()) {
      const object = await release.core.readNamespacedPod({ namespace: shopNs, name: pod });
      expect(object.metadata?.annotations?.['secretbinder.dev/injected']).toBe('shop-db');
      const dotenv = await release.dotenvIn(pod);
      expect([...dotenv.keys()]).toEqual(['DB_USER', 'DB_PASSWORD']);
      expect(dotenv.get('DB_USER')).toBe('shop');
      expect(await release.holds(pod, expected)).toBe(true);
      const mount = (await release.kubectlExec(pod, ['mount'])).split('\n').find((l) => l.includes(` ${mountPath} `)) ?? '';
      const modes = (await release.kubectlExec(pod, ['stat', '-L', '-c', '%a %u:%g %n', `${mountPath}/db.env`])).trim();
      say(`observed in ${pod}: db.env holds DB_USER="shop" and DB_PASSWORD (${String(expected.length)} characters, equal to OpenBao's)`);
      say(`observed in ${pod}: mount: ${mount}`);
      say(`observed in ${pod}: stat: ${modes}`);
      expect(mount).toMatch(/^\S+ on \S+ type tmpfs \((?=.*\bro\b)(?=.*\bsize=)/);
      expect(modes).toMatch(/^[0-7]?[0-7][0-7]0 /);
    }
  }, 180_000);

  it('passes helm test: CRDs served, broker reachable over TLS through its Service, both controller replicas answer the webhook', async () => {
    const result = await command(helmPath, ['test', chart.release, '--namespace', chart.namespace, '--kubeconfig', currentWorld().kube.kubeconfigPath, '--logs', '--timeout', '3m'], undefined, { timeoutMs: 200_000 });
    say(`helm test:\n${result.stdout}${result.stderr}`);
    expect(result.stdout).toMatch(/PASS webhook: 2 controller replica\(s\) answered \/validate over TLS/);
    expect(result.stdout).toMatch(/Phase:\s+Succeeded/);
    expect(result.code).toBe(0);
  }, 240_000);

  it('the validating webhook refuses a pod whose unlisted container mounts the volume, naming the container and the binding', async () => {
    let refusal = '';
    try {
      await release.core.createNamespacedPod({
        namespace: shopNs,
        dryRun: 'All',
        body: {
          metadata: { name: 'sidecar', labels: { app: 'shop' } },
          spec: {
            volumes: [{ name: 'db', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'shop-db' } } }],
            containers: [
              { name: 'app', image: 'busybox:1.37' },
              { name: 'proxy', image: 'busybox:1.37', volumeMounts: [{ name: 'db', mountPath: '/db', readOnly: true }] },
            ],
          },
        },
      });
    } catch (error) {
      refusal = errorText(error);
    }
    say(`observed: ${refusal}`);
    expect(refusal).toMatch(/denied the request/);
    expect(refusal).toContain('proxy');
    expect(refusal).toContain('shop-db');
  });

  it('a new version in OpenBao reaches the files of both running pods (Refresh)', async () => {
    const pods = await release.shopPods();
    // "within the refresh interval": the suite shortens it to the minimum.
    await release.patchBinding({ spec: { refreshInterval: '10s' } });
    await release.readmeCommand('vault kv put -mount=secret shop/db username=shop password="$(head -c 18 /dev/urandom | base64)"');
    const next = await release.storedPassword();
    for (const pod of pods) await eventually(`${pod} reads the new version`, async () => ((await release.holds(pod, next)) ? true : undefined), 60_000);
    say(`observed: both pods (${pods.join(', ')}) read the new version in place, no restart`);
    expect(await release.shopPods()).toEqual(pods);
  }, 180_000);

  it('with rotation RollingRestart, a new version rolls the Deployment once and the new pods read it', async () => {
    const apps = release.kc.makeApiClient(AppsV1Api);
    const before = await release.shopPods();
    // No debounce (default 30 s): one write, one rollout, sooner.
    await release.patchBinding({ spec: { rotation: { strategy: 'RollingRestart', debounce: '0s' } } });
    // The Deployment is adopted first: the hash it runs recorded on its metadata, no rollout (ADR 0100).
    const adopted = await eventually('Deployment adopted', async () => {
      const d = await apps.readNamespacedDeployment({ namespace: shopNs, name: 'shop' });
      return d.metadata?.annotations?.['secretbinder.dev/content-hash'] === undefined ? undefined : d;
    }, 60_000);
    const generation = adopted.metadata?.generation ?? 0;
    say(`observed: Deployment adopted at generation ${String(generation)}, running ${adopted.metadata?.annotations?.['secretbinder.dev/content-hash'] ?? '?'}`);
    await release.readmeCommand('vault kv put -mount=secret shop/db username=shop password="$(head -c 18 /dev/urandom | base64)"');
    const next = await release.storedPassword();
    const after = await eventually('2 new pods Ready', async () => {
      const pods = await release.shopPods().catch(() => []);
      return pods.length === 2 && pods.every((p) => !before.includes(p)) ? pods : undefined;
    }, 180_000);
    for (const pod of after) expect(await release.holds(pod, next)).toBe(true);
    const deployment = await apps.readNamespacedDeployment({ namespace: shopNs, name: 'shop' });
    const replicaSets = (await apps.listNamespacedReplicaSet({ namespace: shopNs, labelSelector: 'app=shop' })).items.map(
      (rs) => `${rs.metadata?.name ?? '?'} revision ${rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? '?'} hash ${rs.spec?.template?.metadata?.annotations?.['secretbinder.dev/content-hash'] ?? '(none)'}`,
    );
    say(`observed: Deployment generation ${String(generation)} -> ${String(deployment.metadata?.generation)}, pods ${before.join(', ')} -> ${after.join(', ')}; ReplicaSets: ${replicaSets.join('; ')}`);
    expect(replicaSets).toHaveLength(2);
    expect(deployment.metadata?.generation).toBe(generation + 1);
  }, 300_000);

  // Issue #14 item 3 (ADR 0193): the release breaks and recovers while the README's binding serves its pods.
  describe('fault drills on the installed release', () => {
    faultDrills(release);
  });

  it('unbinding removes the files from the running pods', async () => {
    const pods = await release.shopPods();
    await release.readmeCommand('kubectl -n shop delete secretbinding shop-db');
    for (const pod of pods) {
      await eventually(`${pod}: db.env gone`, async () => ((await release.kubectlExec(pod, ['ls', '-A', mountPath])).includes('db.env') ? undefined : true), 90_000);
    }
    say(`observed: ${mountPath} in ${pods.join(', ')} no longer holds db.env`);
  }, 180_000);

  it('helm uninstall completes after the workload goes; no pod stuck terminating, no mount left on the node; the CRDs stay', async () => {
    await release.readmeCommand('kubectl delete namespace shop --wait --timeout=2m');
    await release.readmeCommand('helm uninstall secret-binder -n secret-binder-system --wait --timeout 2m');
    // The controller and node-plugin pods go; a list may fail while the API server drops a
    // connection the uninstall left idle, and is asked again.
    await eventually('release workload pods gone', async () => {
      const pods = (await release.core.listNamespacedPod({ namespace: chart.namespace, labelSelector: 'app.kubernetes.io/component in (controller,node-plugin)' }).catch(() => undefined))?.items;
      return pods?.length === 0 ? true : undefined;
    }, 120_000);
    const left = (await release.core.listNamespacedPod({ namespace: chart.namespace })).items;
    // The kubelet's directory itself is the harness's shared bind mount; nothing may be under it.
    const mounts = mountsUnder(release.node.kubeletRootDir).filter((m) => m !== release.node.kubeletRootDir);
    const stays = await whatStays();
    say(`observed: ${String(mounts.length)} mount(s) under the kubelet's directory; left in ${chart.namespace}: ${stays.join(', ')}`);
    expect(mounts).toEqual([]);
    // Exactly what docs/install.md#uninstall says stays (besides the CRDs): the `helm test` pod
    // (Helm keeps test hooks), the controller's own Secrets and its Lease, and the user's account.
    expect(stays).toEqual([
      'Lease/secret-binder-controller',
      'Pod/secret-binder-release-check Succeeded',
      'Secret/secret-binder-broker-tls',
      'Secret/secret-binder-content-hmac',
      'Secret/secret-binder-webhook-tls',
      'ServiceAccount/vault-reader',
    ]);
    expect(left.every((p) => p.metadata?.deletionTimestamp === undefined)).toBe(true);
    const crds = await command(kubectlPath, ['--kubeconfig', currentWorld().kube.kubeconfigPath, 'get', 'crd', '-o', 'name']);
    expect(crds.stdout).toContain('secretbindings.secretbinder.dev');
    const binding = await release.custom.listNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: shopNs }) as { items: SecretBinding[] };
    expect(binding.items).toEqual([]);
  }, 300_000);
});
