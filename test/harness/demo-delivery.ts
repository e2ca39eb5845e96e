import { mkdirSync, writeFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { procMount } from '../../src/delivery/csi/tmpfs.mounter.ts';
import { adminKubeConfig } from './world.ts';
import { operatorNamespace, type ControllerProcess } from './controller-process.ts';
import { KubeletDriver } from './kubelet-driver.ts';
import { startProcess, waitFor, type ProcessRecord } from './process.ts';
import type { WorldState } from './world-state.ts';

const nodeName = 'demo-node';

/**
 * The demo's delivery part: the node plugin runs on this host as the DaemonSet would, a small
 * kubelet-like driver publishes the volume of a pending pod, and the files appear in a tmpfs —
 * shown by name, mode and size, never by content. Needs root (it mounts tmpfs).
 */
export async function demoDelivery(options: {
  readonly world: WorldState;
  readonly core: CoreV1Api;
  readonly controller: ControllerProcess;
  readonly brokerCa: string;
  readonly namespace: string;
  readonly say: (line: string) => void;
}): Promise<{ ok: boolean; processes: ProcessRecord[] }> {
  const { world, core, controller, brokerCa, namespace, say } = options;
  if (process.getuid?.() !== 0) {
    say('delivery part skipped: mounting tmpfs needs root (run the demo as root to see files delivered)');
    return { ok: true, processes: [] };
  }
  const brokerPort = await logValue(controller, /"address":"127\.0\.0\.1:(\d+)"[^\n]*"message":"broker listening"/);
  const dir = join(world.dir, 'node');
  mkdirSync(dir, { recursive: true });

  // The node and the plugin's own pod, so the plugin's token names its node (no kubelet runs them).
  await core.createNode({ body: { metadata: { name: nodeName } } });
  await core.createNamespacedServiceAccount({ namespace: operatorNamespace, body: { metadata: { name: 'secret-binder-node' } } });
  const pluginPod = await core.createNamespacedPod({
    namespace: operatorNamespace,
    body: { metadata: { name: 'secret-binder-node-demo' }, spec: { nodeName, serviceAccountName: 'secret-binder-node', containers: [{ name: 'plugin', image: 'secret-binder' }] } },
  });
  const kubelet = new KubeletDriver({ kubeConfig: adminKubeConfig(world.kube), csiSocket: join(dir, 'csi.sock'), rootDir: join(dir, 'kubelet') });
  writeFileSync(join(dir, 'plugin-token'), (await kubelet.mintPodToken(pluginPod)).token, { mode: 0o600 });

  const plugin = startProcess({
    name: 'node-plugin',
    command: process.execPath,
    args: [
      join(process.cwd(), 'src/delivery/node-plugin.main.ts'),
      '--node-name', nodeName,
      '--csi-socket', join(dir, 'csi.sock'),
      '--registration-socket', join(dir, 'registration.sock'),
      '--kubelet-csi-socket', join(dir, 'csi.sock'),
      '--broker-url', `https://127.0.0.1:${brokerPort}`,
      '--broker-ca-file', brokerCa,
      '--token-file', join(dir, 'plugin-token'),
      '--tmpfs-size', '1Mi',
    ],
    logDir: world.logDir,
    maxLifetimeSeconds: 3600,
  });
  await waitFor('node plugin socket', async () => (await stat(join(dir, 'csi.sock')).catch(() => undefined)) !== undefined, { timeoutMs: 20_000, record: plugin });
  say(`node plugin serving CSI on ${join(dir, 'csi.sock')} (log: ${plugin.logPath})`);

  // An application pod on that node, mounting the OpenBao-backed binding.
  const pod: V1Pod = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: 'shop-0', labels: { app: 'shop' } },
      spec: {
        nodeName,
        containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'db', mountPath: '/var/run/secrets/db', readOnly: true }] }],
        volumes: [{ name: 'db', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'shop-db-from-openbao' } } }],
      },
    },
  });
  const [mount] = await kubelet.publishPod(pod);
  if (mount === undefined) throw new Error('the demo pod has no secretbinder.dev volume');
  const info = await procMount(mount.targetPath);
  say(`NodePublishVolume for pod ${namespace}/shop-0: ${info?.fsType ?? '?'} mounted at ${mount.targetPath} (${(info?.options ?? []).join(',')})`);
  for (const file of await listFiles(mount.targetPath)) {
    process.stdout.write(`  ${file.mode.toString(8).padStart(4, '0')}  ${String(file.size).padStart(5)} bytes  ${file.path}\n`);
  }
  const ok = info?.fsType === 'tmpfs' && (await readFile(join(mount.targetPath, 'db.env'), 'utf8').then((t) => t.includes('DB_PASSWORD='), () => false));
  await kubelet.unpublishPod(pod);
  const gone = (await procMount(mount.targetPath)) === undefined;
  say(`NodeUnpublishVolume: ${gone ? 'tmpfs unmounted and removed' : 'the tmpfs is still mounted!'}`);
  kubelet.close();
  return { ok: ok && gone, processes: [plugin] };
}

async function logValue(controller: ControllerProcess, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const match = pattern.exec(controller.log());
    if (match?.[1] !== undefined) return match[1];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`not found in the controller log: ${String(pattern)}`);
}

/** The visible files of a volume (following the ..data symlinks), with mode and size only. */
async function listFiles(root: string): Promise<{ path: string; mode: number; size: number }[]> {
  const out: { path: string; mode: number; size: number }[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of (await readdir(dir)).sort()) {
      if (entry.startsWith('..')) continue;
      const path = join(dir, entry);
      const info = await stat(path);
      if (info.isDirectory()) await walk(path);
      else out.push({ path: relative(root, path), mode: info.mode & 0o7777, size: info.size });
    }
  };
  await walk(root);
  return out;
}
