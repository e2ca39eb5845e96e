import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import type { Operator } from '../../../src/controllers/operator.ts';
import { BrokerHttpClient } from '../../../src/delivery/csi/broker-http.client.ts';
import { CsiServer } from '../../../src/delivery/csi/csi.server.ts';
import { NodePlugin } from '../../../src/delivery/csi/node-plugin.ts';
import { procMount, SystemMounter } from '../../../src/delivery/csi/tmpfs.mounter.ts';
import { createAuditLog, type AuditLog } from '../../../src/observability/audit.ts';
import { CapturedOutput } from '../../../src/observability/captured-output.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { teeLogToCapture } from '../../harness/leak-capture.ts';
import { KubeletDriver } from '../../harness/kubelet-driver.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from '../support/cluster.ts';
import { buildInProcessController } from '../support/in-process-controller.ts';
import { createCsiWorld } from './csi-world.support.ts';

/**
 * The node plugin end to end without a kubelet: the controller with its broker in-process (as
 * main.ts builds it) against the real API server and OpenBao; the node plugin serving CSI on a unix
 * socket, talking HTTPS to the broker with a projected-like token of its own pod; the kubelet
 * driver publishing a real pod's volume with a TokenRequest pod token. Files land in real tmpfs
 * (this suite runs as root), rotate through the change stream, vanish on revocation.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `csi-app-${suffix}`;
const systemNs = `csi-sys-${suffix}`;
const node = `csi-node-${suffix}`;
const markers = {
  password: `marker-password-${randomBytes(6).toString('hex')}`,
  rotated: `marker-rotated-${randomBytes(6).toString('hex')}`,
};
const tokens: string[] = [];

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let operator: Operator;
let audit: AuditLog;
let running: Promise<void> | undefined;
const stop = new AbortController();
let tmp: string;
let plugin: NodePlugin;
let server: CsiServer;
let kubelet: KubeletDriver;
const controllerLog = new CapturedOutput();
const registry = new Registry();
const pluginLog = new CapturedOutput();
const pluginCapture = teeLogToCapture('csi-node-plugin-broker', pluginLog, 'debug');
const auditOut = new CapturedOutput();

async function createPod(namespace: string, name: string, labels: Record<string, string>, serviceAccount: string, withVolume: boolean): Promise<V1Pod> {
  return core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels },
      spec: {
        nodeName: node,
        serviceAccountName: serviceAccount,
        automountServiceAccountToken: false,
        securityContext: { fsGroup: 3000 },
        containers: [{ name: 'app', image: 'busybox', ...(withVolume ? { volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] } : {}) }],
        ...(withVolume ? { volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'web' } } }] } : {}),
      },
    },
  });
}

let operatorStopped = false;
async function stopOperator(): Promise<void> {
  if (operatorStopped) return;
  operatorStopped = true;
  stop.abort();
  await running;
  await operator.close();
}

const read = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);

describe('node plugin with the real broker', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    await installCrds(kc);
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    tmp = mkdtempSync('/tmp/sb-csi-it-');
    tokens.push(bao.rootToken);

    await createCsiWorld({ core, custom }, { ns, systemNs, node, appServiceAccount: 'web' }, bao);
    await writeKvSecret(bao, `csi-${suffix}/db`, { password: markers.password });
    await custom.createNamespacedCustomObject({
      group, version, plural: resources.SecretBinding.plural, namespace: ns,
      body: {
        apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name: 'web' },
        spec: {
          backendRef: { kind: 'SecretBackend', name: 'openbao' },
          podSelector: { matchLabels: { app: 'web' } },
          containers: ['app'],
          refreshInterval: '10s',
          files: [{ path: 'db/password', key: `csi-${suffix}/db`, property: 'password', mode: 0o440 }],
        },
      },
    });

    audit = createAuditLog({ destination: { kind: 'stream', stream: auditOut } });
    let caOut: string;
    ({ operator, caPath: caOut } = buildInProcessController({
      dir: tmp,
      name: 'controller',
      identity: `csi-test-${suffix}`,
      namespace: systemNs,
      watchNamespaces: [ns],
      nodePluginServiceAccount: `${systemNs}:node-plugin`,
      kubeConfig: kc,
      log: { stream: controllerLog, level: 'debug' },
      registry,
      audit,
    }));
    running = operator.manager.run(stop.signal);
    if (operator.broker === undefined) throw new Error('the broker is not enabled');
    const address = await operator.broker.address();

    kubelet = new KubeletDriver({ kubeConfig: kc, csiSocket: join(tmp, 'plugin', 'csi.sock'), rootDir: join(tmp, 'kubelet') });
    // The plugin's own token: what the DaemonSet's projected volume holds (audience secretbinder.dev,
    // bound to the plugin's pod, so the API server names its node).
    const pluginPod = await createPod(systemNs, 'node-plugin', { app: 'node-plugin' }, 'node-plugin', false);
    const pluginToken = await kubelet.mintPodToken(pluginPod);
    tokens.push(pluginToken.token);
    writeFileSync(join(tmp, 'plugin-token'), pluginToken.token, { mode: 0o600 });

    plugin = new NodePlugin({
      broker: new BrokerHttpClient({ url: `https://127.0.0.1:${String(address.port)}`, caPem: readFileSync(caOut, 'utf8'), tokenFile: join(tmp, 'plugin-token'), timeoutMs: 10_000 }),
      mounter: new SystemMounter(),
      logger: createLogger({ level: 'debug', component: 'csi', stream: pluginCapture }),
      tmpfsSizeBytes: 1024 * 1024,
      changesWaitSeconds: 10,
      backoff: { minMs: 200, maxMs: 2000 },
    });
    server = new CsiServer({ plugin, logger: createLogger({ level: 'debug', component: 'csi', stream: pluginCapture }), nodeName: node, version: 'test', csiSocket: join(tmp, 'plugin', 'csi.sock') });
    await server.start();
    plugin.start();

    await eventually('binding web resolved', async () => {
      const b = (await custom.getNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns, name: 'web' })) as { status?: { contentHmac?: string } };
      return b.status?.contentHmac;
    });
  }, 90_000);

  afterAll(async () => {
    for (const volume of plugin.volumes()) await plugin.unpublish(volume.volumeId, volume.targetPath).catch(() => undefined);
    kubelet.close();
    await plugin.stop();
    await server.stop();
    await stopOperator();
    await audit.close();
    for (const name of [ns, systemNs]) await core.deleteNamespace({ name }).catch(() => undefined);
    await core.deleteNode({ name: node }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it('publishes, rotates through the change stream, empties on revocation and unpublishes, leaking nothing', async () => {
    const pod = await createPod(ns, 'web-0', { app: 'web' }, 'web', true);
    const [mount] = await kubelet.publishPod(pod);
    if (mount === undefined) throw new Error('no volume');

    // Published: the OpenBao value, in a size-limited tmpfs, with the binding's mode and the pod's fsGroup.
    expect(await read(join(mount.targetPath, 'db', 'password'))).toBe(markers.password);
    const info = await procMount(mount.targetPath);
    expect(info?.fsType).toBe('tmpfs');
    expect(info?.options).toContain('size=1024k');
    // The kubelet publishes a `readOnly: true` volume with `readonly`: the pod's view is read-only (ADR 0165).
    expect(info?.options).toContain('ro');
    const file = await stat(join(mount.targetPath, 'db', 'password'));
    expect(file.mode & 0o7777).toBe(0o440);
    expect(file.gid).toBe(3000);

    // A republish (fresh token) with unchanged content keeps the same version.
    const dataVersion = await readlink(join(mount.targetPath, '..data'));
    await kubelet.publishPod(pod);
    expect(await readlink(join(mount.targetPath, '..data'))).toBe(dataVersion);

    // Rotation in OpenBao → the controller notices (refreshInterval 10s) → change stream → new files.
    const bao = currentWorld().openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    await writeKvSecret(bao, `csi-${suffix}/db`, { password: markers.rotated });
    await eventually('rotated file', async () => ((await read(join(mount.targetPath, 'db', 'password'))) === markers.rotated ? true : undefined), 40_000);

    // The pod stops matching the binding → revoked → files gone, mount kept.
    await core.patchNamespacedPod({ namespace: ns, name: 'web-0', body: [{ op: 'replace', path: '/metadata/labels/app', value: 'other' }] });
    await eventually('revocation', async () => ((await readdir(mount.targetPath)).filter((e) => !e.startsWith('..')).length === 0 ? true : undefined), 30_000);
    expect((await procMount(mount.targetPath))?.fsType).toBe('tmpfs');

    await kubelet.unpublishPod(pod);
    expect(await procMount(mount.targetPath)).toBeUndefined();
    await expect(stat(mount.targetPath)).rejects.toThrow(/ENOENT/);

    // Logs, audit, metric text, Events and binding status: no value, no token.
    const events = JSON.stringify((await core.listNamespacedEvent({ namespace: ns })).items);
    const statuses = JSON.stringify(await custom.listNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: ns }));
    const output = (await pluginLog.text()) + (await controllerLog.text()) + (await auditOut.text()) + (await registry.metrics()) + events + statuses;
    expect(await registry.metrics()).toContain('secretbinder_broker_decisions_total');
    for (const secret of [markers.password, markers.rotated, ...tokens]) expect(output).not.toContain(secret);
  }, 120_000);

  it('keeps the files through a refused plugin token and a broker that is gone (invariant 7)', async () => {
    const pod = await createPod(ns, 'web-1', { app: 'web' }, 'web', true);
    const [mount] = await kubelet.publishPod(pod);
    if (mount === undefined) throw new Error('no volume');
    const password = join(mount.targetPath, 'db', 'password');
    expect(await read(password)).toBe(markers.rotated);
    const dataVersion = await readlink(join(mount.targetPath, '..data'));

    // The broker refuses the plugin (401 Unauthenticated): not a revocation, the files stay.
    const tokenFile = join(tmp, 'plugin-token');
    const goodToken = readFileSync(tokenFile, 'utf8');
    writeFileSync(tokenFile, 'not-a-token');
    await kubelet.publishPod(pod);
    const refusals = (await pluginLog.lines()).filter((l) => l['message'] === 'refresh failed: keeping the current files');
    expect(refusals.map((l) => (l['error'] as { message?: string } | undefined)?.message)).toContainEqual(expect.stringContaining('401 Unauthenticated'));
    expect(await read(password)).toBe(markers.rotated);
    writeFileSync(tokenFile, goodToken);

    // The broker is gone: republishes still succeed, the change stream retries, nothing moves.
    await stopOperator();
    await kubelet.publishPod(pod);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await read(password)).toBe(markers.rotated);
    expect(await readlink(join(mount.targetPath, '..data'))).toBe(dataVersion);
    expect((await procMount(mount.targetPath))?.fsType).toBe('tmpfs');
    expect(await pluginLog.text()).toMatch(/change stream failed: keeping every volume as it is/);
  }, 60_000);
});
