import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { status } from '@grpc/grpc-js';
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CapturedOutput } from '../../observability/captured-output.ts';
import { createLogger } from '../../observability/logger.ts';
import { CsiClient, RegistrationClient } from './csi.client.ts';
import { CsiServer } from './csi.server.ts';
import { FakeBroker } from './fake-broker.ts';
import { NodePlugin } from './node-plugin.ts';
import { procMount, SystemMounter, writableViewOf } from './tmpfs.mounter.ts';
import { parseVolumeContext } from './volume-context.ts';

// These tests mount real tmpfs volumes: they need root (the node plugin runs privileged).
const namespace = 'shop';
const podToken = 'eyJhbGciOiJSUzI1NiJ9.pod-token-for-tests.signature';
const tmpfsSizeBytes = 256 * 1024;

let root: string;
let broker: FakeBroker;
let plugin: NodePlugin;
let server: CsiServer;
let client: CsiClient;
let registration: RegistrationClient;
let logs: CapturedOutput;
const registrations: [boolean, string][] = [];
let seq = 0;

beforeAll(async () => {
  root = await mkdtemp('/tmp/csi-test-');
  broker = new FakeBroker();
  logs = new CapturedOutput();
  const logger = createLogger({ level: 'debug', component: 'csi', stream: logs });
  plugin = new NodePlugin({ broker, mounter: new SystemMounter(), logger, tmpfsSizeBytes, changesWaitSeconds: 5, backoff: { minMs: 50, maxMs: 200 } });
  server = new CsiServer({
    plugin,
    logger,
    nodeName: 'node-a',
    version: '0.1.0-test',
    csiSocket: join(root, 'plugin', 'csi.sock'),
    registration: { socket: join(root, 'plugins_registry', 'secretbinder.dev-reg.sock'), kubeletCsiSocket: '/var/lib/kubelet/plugins/secretbinder.dev/csi.sock' },
    onRegistrationStatus: (registered, error) => registrations.push([registered, error]),
  });
  await server.start();
  plugin.start();
  client = new CsiClient(join(root, 'plugin', 'csi.sock'));
  registration = new RegistrationClient(join(root, 'plugins_registry', 'secretbinder.dev-reg.sock'));
});

afterAll(async () => {
  for (const volume of plugin.volumes()) await client.nodeUnpublishVolume(volume.volumeId, volume.targetPath);
  client.close();
  registration.close();
  await plugin.stop();
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

/** A pod volume as the kubelet would publish it; every test gets its own pod and binding. */
function newVolume(overrides: Record<string, string> = {}): { volumeId: string; targetPath: string; pod: string; binding: string; context: Record<string, string> } {
  seq++;
  const pod = `web-${String(seq)}`;
  const binding = `db-${String(seq)}`;
  const context = {
    'csi.storage.k8s.io/pod.name': pod,
    'csi.storage.k8s.io/pod.namespace': namespace,
    'csi.storage.k8s.io/pod.uid': `uid-${String(seq)}`,
    'csi.storage.k8s.io/serviceAccount.name': 'web',
    'csi.storage.k8s.io/ephemeral': 'true',
    'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({ 'secretbinder.dev': { token: podToken, expirationTimestamp: '2030-01-01T00:00:00Z' } }),
    binding,
    ...overrides,
  };
  return { volumeId: `csi-${String(seq)}`, targetPath: join(root, 'pods', `uid-${String(seq)}`, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount'), pod, binding, context };
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const read = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);

afterEach(() => {
  broker.setDown(false);
});

describe('CSI identity and registration', () => {
  it('answers as secretbinder.dev, ready, for its node, with VOLUME_MOUNT_GROUP', async () => {
    expect(await client.getPluginInfo()).toMatchObject({ name: 'secretbinder.dev', vendorVersion: '0.1.0-test' });
    expect((await client.probe()).ready?.value).toBe(true);
    expect((await client.nodeGetInfo()).nodeId).toBe('node-a');
    expect((await client.nodeGetCapabilities()).capabilities).toEqual([{ rpc: { type: 'VOLUME_MOUNT_GROUP' }, type: 'rpc' }]);
  });

  it('serves the kubelet registration API on the plugins_registry socket', async () => {
    expect(await registration.getInfo()).toEqual({
      type: 'CSIPlugin',
      name: 'secretbinder.dev',
      endpoint: '/var/lib/kubelet/plugins/secretbinder.dev/csi.sock',
      supportedVersions: ['1.0.0'],
    });
    await registration.notifyRegistrationStatus(true);
    expect(registrations).toContainEqual([true, '']);
  });
});

describe('NodePublishVolume / NodeUnpublishVolume', () => {
  it('mounts a size-limited tmpfs, writes the files with modes and fsGroup, and passes the pod identity', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [
      { path: 'password', mode: 0o440, content: 'hunter2' },
      { path: 'conf/app.json', mode: 0o444, content: '{"user":"app"}' },
    ]);
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context, volumeMountGroup: '3000' });

    const mount = await procMount(v.targetPath);
    expect(mount?.fsType).toBe('tmpfs');
    expect(mount?.options).toContain(`size=${String(tmpfsSizeBytes / 1024)}k`);
    expect(mount?.options).toContain('nosuid');
    expect(mount?.options).toContain('nodev');
    expect(mount?.options).toContain('noexec');
    expect(await read(join(v.targetPath, 'password'))).toBe('hunter2');
    expect(await read(join(v.targetPath, 'conf', 'app.json'))).toBe('{"user":"app"}');
    const password = await stat(join(v.targetPath, 'password'));
    expect(password.mode & 0o7777).toBe(0o440);
    expect(password.gid).toBe(3000);
    expect((await stat(v.targetPath)).gid).toBe(3000);
    expect(await readlink(join(v.targetPath, 'password'))).toBe('..data/password');

    expect(broker.publishes.at(-1)).toEqual({
      volumeId: v.volumeId,
      pod: { namespace, name: v.pod, uid: v.context['csi.storage.k8s.io/pod.uid'], serviceAccountName: 'web' },
      binding: v.binding,
      podToken,
    });
    // Neither the value nor the pod token reaches the log.
    const text = await logs.text();
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('pod-token-for-tests');
  });

  it('a republish with unchanged content does not touch the files; changed content is rewritten', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'token', mode: 0o400, content: 'one' }]);
    broker.entitle(namespace, v.binding, v.pod);
    const call = { volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context };
    await client.nodePublishVolume(call);
    const version = await readlink(join(v.targetPath, '..data'));
    await client.nodePublishVolume(call);
    expect(await readlink(join(v.targetPath, '..data'))).toBe(version);

    broker.setFiles(namespace, v.binding, [{ path: 'token', mode: 0o400, content: 'two' }]);
    await client.nodePublishVolume(call);
    expect(await read(join(v.targetPath, 'token'))).toBe('two');
    expect((await procMount(v.targetPath))?.fsType).toBe('tmpfs');
  });

  it('follows the change stream: rotations are written, revocation empties the volume but keeps the mount', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [
      { path: 'a', mode: 0o440, content: 'a1' },
      { path: 'b', mode: 0o440, content: 'b1' },
    ]);
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context });

    broker.setFiles(namespace, v.binding, [{ path: 'a', mode: 0o440, content: 'a2' }]);
    await eventually('rotation', async () => (await read(join(v.targetPath, 'a'))) === 'a2');
    expect(await read(join(v.targetPath, 'b'))).toBeUndefined();

    broker.revoke(namespace, v.binding, v.pod);
    await eventually('revocation', async () => (await readdir(v.targetPath)).filter((e) => !e.startsWith('..')).length === 0);
    expect((await procMount(v.targetPath))?.fsType).toBe('tmpfs');
    expect(plugin.volumes().find((vol) => vol.volumeId === v.volumeId)?.contentHash).toBeNull();

    // An emptied volume is not polled for (the broker would answer `revoked` at once, forever).
    const polls = broker.changePolls;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(broker.changePolls - polls).toBeLessThan(5);

    // Entitled again: the kubelet's next republish brings the files back.
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context });
    expect(await read(join(v.targetPath, 'a'))).toBe('a2');
  });

  it('a broker outage never removes or changes files; the plugin catches up when it is back', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'k1' }]);
    broker.entitle(namespace, v.binding, v.pod);
    const call = { volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context };
    await client.nodePublishVolume(call);

    broker.setDown(true);
    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'k2' }]);
    // A republish during the outage succeeds and keeps the last known good files.
    await client.nodePublishVolume(call);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await read(join(v.targetPath, 'key'))).toBe('k1');

    broker.setDown(false);
    await eventually('catch-up after the outage', async () => (await read(join(v.targetPath, 'key'))) === 'k2');
  });

  it('re-reads the changed volumes of one answer in batches (ADR 0224), and one by one from a broker without batches', async () => {
    const first = newVolume();
    const volumes = [first, ...Array.from({ length: 5 }, () => ({ ...newVolume(), binding: first.binding }))];
    broker.setFiles(namespace, first.binding, [{ path: 'token', mode: 0o440, content: 't1' }]);
    for (const v of volumes) {
      broker.entitle(namespace, first.binding, v.pod);
      await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: { ...v.context, binding: first.binding } });
    }
    const everywhere = (content: string) => async (): Promise<boolean> => (await Promise.all(volumes.map((v) => read(join(v.targetPath, 'token'))))).every((c) => c === content);

    const [batches, singles] = [broker.batchRequests, broker.publishes.length];
    broker.setFiles(namespace, first.binding, [{ path: 'token', mode: 0o440, content: 't2' }]);
    await eventually('rotation through batches', everywhere('t2'));
    expect(broker.batchRequests).toBeGreaterThan(batches);
    expect(broker.batchRequests - batches).toBeLessThan(volumes.length);
    expect(broker.publishes.slice(singles).map((p) => p.pod.name).sort()).toEqual(volumes.map((v) => v.pod).sort());

    broker.batches = false;
    try {
      const before = broker.batchRequests;
      broker.setFiles(namespace, first.binding, [{ path: 'token', mode: 0o440, content: 't3' }]);
      await eventually('rotation through single publishes', everywhere('t3'));
      expect(broker.batchRequests).toBe(before);
    } finally {
      broker.batches = true;
    }
  });

  it('refuses a pod that is not entitled and leaves no mount behind', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'x', mode: 0o440, content: 'x' }]);
    await expect(client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context })).rejects.toMatchObject({
      code: status.PERMISSION_DENIED,
    });
    expect(await procMount(v.targetPath)).toBeUndefined();
    await expect(stat(v.targetPath)).rejects.toThrow(/ENOENT/);

    broker.setDown(true);
    await expect(client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context })).rejects.toMatchObject({
      code: status.UNAVAILABLE,
    });
    expect(await procMount(v.targetPath)).toBeUndefined();
  });

  it('refuses a file set larger than the tmpfs limit without leaving a mount', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'big', mode: 0o440, content: 'x'.repeat(tmpfsSizeBytes * 2) }]);
    broker.entitle(namespace, v.binding, v.pod);
    await expect(client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context })).rejects.toMatchObject({
      code: status.INTERNAL,
    });
    expect(await procMount(v.targetPath)).toBeUndefined();
  });

  it('refuses requests without pod info, token or binding as INVALID_ARGUMENT', async () => {
    const cases: Record<string, string>[] = [
      { binding: '' },
      { binding: '../etc' },
      { 'csi.storage.k8s.io/serviceAccount.tokens': '{}' },
      { 'csi.storage.k8s.io/pod.uid': '' },
      { 'csi.storage.k8s.io/ephemeral': 'false' },
      { fsGroup: 'wheel' },
    ];
    for (const overrides of cases) {
      const v = newVolume(overrides);
      await expect(client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
      });
      expect(await procMount(v.targetPath)).toBeUndefined();
    }
  });

  it('a restarted plugin adopts a mounted volume on the next republish without mounting twice', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'cert', mode: 0o444, content: 'c1' }]);
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context });

    // A second plugin process (state in memory only) gets the kubelet's periodic republish.
    const restarted = new NodePlugin({
      broker,
      mounter: new SystemMounter(),
      logger: createLogger({ level: 'error', component: 'csi', stream: logs }),
      tmpfsSizeBytes,
      changesWaitSeconds: 5,
      backoff: { minMs: 50, maxMs: 200 },
    });
    broker.setDown(true);
    await expect(restarted.publish({ ...parseVolumeContext(v.context, ''), volumeId: v.volumeId, targetPath: v.targetPath, readOnly: false })).rejects.toThrow();
    // The outage left the mount and the files of the old process alone.
    expect(await read(join(v.targetPath, 'cert'))).toBe('c1');
    broker.setDown(false);
    broker.setFiles(namespace, v.binding, [{ path: 'cert', mode: 0o444, content: 'c2' }]);
    await restarted.publish({ ...parseVolumeContext(v.context, ''), volumeId: v.volumeId, targetPath: v.targetPath, readOnly: false });
    expect(await read(join(v.targetPath, 'cert'))).toBe('c2');
    const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter((line) => line.split(' ')[1] === v.targetPath);
    expect(mounts).toHaveLength(1);
    await restarted.unpublish(v.volumeId, v.targetPath);
    expect(await procMount(v.targetPath)).toBeUndefined();
    await restarted.stop();
    await client.nodeUnpublishVolume(v.volumeId, v.targetPath);
  });

  it('unpublish wipes the files, unmounts and removes the target; twice is fine', async () => {
    const v = newVolume({ fsGroup: '2000' });
    broker.setFiles(namespace, v.binding, [{ path: 'secret', mode: 0o440, content: 's' }]);
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context });
    expect((await stat(join(v.targetPath, 'secret'))).gid).toBe(2000);

    await client.nodeUnpublishVolume(v.volumeId, v.targetPath);
    expect(await procMount(v.targetPath)).toBeUndefined();
    await expect(stat(v.targetPath)).rejects.toThrow(/ENOENT/);
    expect(plugin.volumes().some((vol) => vol.volumeId === v.volumeId)).toBe(false);
    await client.nodeUnpublishVolume(v.volumeId, v.targetPath);
  });

  it('honours readonly: the pod sees a read-only mount, while refreshes and revocation still land', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'r1' }]);
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context, readonly: true });

    const mount = await procMount(v.targetPath);
    expect(mount?.fsType).toBe('tmpfs');
    expect(mount?.options).toContain('ro');
    expect(mount?.options).toContain(`size=${String(tmpfsSizeBytes / 1024)}k`);
    expect(await read(join(v.targetPath, 'key'))).toBe('r1');
    await expect(writeFile(join(v.targetPath, 'planted'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(rm(join(v.targetPath, 'key'))).rejects.toMatchObject({ code: 'EROFS' });
    // The plugin's own writable view of the same tmpfs, beside the target.
    expect((await procMount(writableViewOf(v.targetPath)))?.options).toContain('rw');

    // Rotation through the change stream, and a republish, write through that view.
    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'r2' }]);
    await eventually('rotation of a read-only volume', async () => (await read(join(v.targetPath, 'key'))) === 'r2');
    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'r3' }]);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context, readonly: true });
    expect(await read(join(v.targetPath, 'key'))).toBe('r3');
    expect((await procMount(v.targetPath))?.options).toContain('ro');

    broker.revoke(namespace, v.binding, v.pod);
    await eventually('revocation of a read-only volume', async () => (await readdir(v.targetPath)).filter((e) => !e.startsWith('..')).length === 0);

    await client.nodeUnpublishVolume(v.volumeId, v.targetPath);
    expect(await procMount(v.targetPath)).toBeUndefined();
    expect(await procMount(writableViewOf(v.targetPath))).toBeUndefined();
    await expect(stat(v.targetPath)).rejects.toThrow(/ENOENT/);
    await expect(stat(writableViewOf(v.targetPath))).rejects.toThrow(/ENOENT/);
  });

  it('publishes a reader-only access mode read-only too', async () => {
    for (const accessMode of ['SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY'] as const) {
      const v = newVolume();
      broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: accessMode }]);
      broker.entitle(namespace, v.binding, v.pod);
      await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context, accessMode });
      expect((await procMount(v.targetPath))?.options).toContain('ro');
      expect(await read(join(v.targetPath, 'key'))).toBe(accessMode);
      await client.nodeUnpublishVolume(v.volumeId, v.targetPath);
      expect(await procMount(v.targetPath)).toBeUndefined();
    }
  });

  it('a restarted plugin adopts a read-only volume whose writable view is gone', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'cert', mode: 0o444, content: 'c1' }]);
    broker.entitle(namespace, v.binding, v.pod);
    const newPlugin = (): NodePlugin =>
      new NodePlugin({
        broker,
        mounter: new SystemMounter(),
        logger: createLogger({ level: 'error', component: 'csi', stream: logs }),
        tmpfsSizeBytes,
        changesWaitSeconds: 5,
        backoff: { minMs: 50, maxMs: 200 },
      });
    const volume = { ...parseVolumeContext(v.context, ''), volumeId: v.volumeId, targetPath: v.targetPath, readOnly: true };
    const first = newPlugin();
    await first.publish(volume);
    await first.stop();
    // The old process's view went with it (e.g. it lived in the plugin container's mount namespace).
    await new SystemMounter().unmount(writableViewOf(v.targetPath));

    const restarted = newPlugin();
    broker.setFiles(namespace, v.binding, [{ path: 'cert', mode: 0o444, content: 'c2' }]);
    await restarted.publish(volume);
    expect(await read(join(v.targetPath, 'cert'))).toBe('c2');
    expect((await procMount(v.targetPath))?.options).toContain('ro');
    expect((await procMount(writableViewOf(v.targetPath)))?.options).toContain('rw');
    await restarted.unpublish(v.volumeId, v.targetPath);
    await restarted.stop();
    expect(await procMount(v.targetPath)).toBeUndefined();
    await expect(stat(writableViewOf(v.targetPath))).rejects.toThrow(/ENOENT/);
  });

  it('never writes files into a target whose tmpfs was unmounted behind its back (plain disk now)', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'u1' }]);
    broker.entitle(namespace, v.binding, v.pod);
    await client.nodePublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath, volumeContext: v.context });
    await new SystemMounter().unmount(v.targetPath);

    broker.setFiles(namespace, v.binding, [{ path: 'key', mode: 0o440, content: 'u2' }]);
    await eventually('the refusal', async () => (await logs.lines()).some((l) => l['message'] === 'volume is no longer mounted: not writing its files' && l['volumeId'] === v.volumeId));
    expect(await readdir(v.targetPath)).toEqual([]);
    await client.nodeUnpublishVolume(v.volumeId, v.targetPath);
    await expect(stat(v.targetPath)).rejects.toThrow(/ENOENT/);
  });

  it('refuses relative and non-normalized target paths as INVALID_ARGUMENT, creating nothing', async () => {
    const v = newVolume();
    broker.setFiles(namespace, v.binding, [{ path: 'x', mode: 0o440, content: 'x' }]);
    broker.entitle(namespace, v.binding, v.pod);
    const relative = `csi-relative-target-${String(seq)}`;
    for (const targetPath of [relative, `./${relative}`, `${root}/pods/../../${relative}`, `${v.targetPath}/.`]) {
      await expect(client.nodePublishVolume({ volumeId: v.volumeId, targetPath, volumeContext: v.context })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: expect.stringMatching(/target_path must/),
      });
      await expect(client.nodeUnpublishVolume(v.volumeId, targetPath)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    }
    await expect(stat(relative)).rejects.toThrow(/ENOENT/);
    await expect(stat(join('/', relative))).rejects.toThrow(/ENOENT/);
    expect(await procMount(v.targetPath)).toBeUndefined();
    expect(broker.publishes.some((p) => p.volumeId === v.volumeId)).toBe(false);
  });
});
