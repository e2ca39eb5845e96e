import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { isProcessRunning, startProcessNamed, stopProcessNamed } from '../../harness/control.ts';
import { startFaultProxy, type FaultProxy } from '../../harness/fault-proxy.ts';
import { openBaoRequest, writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld, type OpenBaoEndpoint } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { credentialsSecret, readText, startDeliveryWorld, type BindingStatus, type DeliveryWorld } from '../rotation/delivery-world.ts';
import { figure } from './chaos-figures.ts';

/**
 * Chaos drills on the delivery path (docs/reliability.md, ADR 0170): the controller and its broker
 * in-process, a node plugin publishing real tmpfs volumes, OpenBao behind the fault proxy.
 *
 * 4. OpenBao sealed, restarted (coming back sealed) and unsealed: running volumes stay
 *    byte-identical, no pod is restarted, the binding is Degraded with the cause and recovers after
 *    the unseal; a new mount meanwhile gets last-known-good.
 * 5. A partition (the fault proxy cuts every connection) longer than `maxStaleness`: exactly the
 *    documented `onBackendUnavailable` behaviour (docs/troubleshooting.md, "During a backend
 *    outage") — ServeLastKnownGood serves new mounts while the content is younger than
 *    maxStaleness (Ready, Degraded=True with the cause), past it the binding is Ready=False with
 *    the cause and new mounts fail; Fail is Ready=False at the first failed read and refuses new
 *    mounts; running volumes never change; all Ready again after the partition.
 * 6. The node plugin restarts: every mount and file stays, the kubelet's republish hands the
 *    volumes to the new plugin, and a rotation afterwards reaches them.
 *
 * Drill 4 stops and seals the world's OpenBao; it leaves it running, unsealed and re-seeded.
 */

const refreshSeconds = 10;
/**
 * Three refresh intervals. Staleness counts from the last check of the secret by any binding that
 * shares it (one resolver entry), and a binding's first failed reconcile can come up to two
 * intervals after that check: with 20 s (two intervals) a CI run saw 'bounded' confirmed at
 * 08:18:25, Degraded=False at 08:18:33 and its first failed reconcile at 08:18:45 — 20.2 s, already
 * expired, so Ready=False without ever being Degraded. Three intervals keep the window in which
 * last-known-good is served (and a new mount gets it) open for the drill.
 */
const maxStaleness = '30s';

let world: DeliveryWorld;
let proxy: FaultProxy;
let bao: OpenBaoEndpoint;

/** Two secrets: one behind the RollingRestart binding, one behind the Refresh bindings (rotated by drill 6). */
const restartKey = (): string => `chaos-${world.suffix}/restart`;
const refreshKey = (): string => `chaos-${world.suffix}/refresh`;
const marker = (): string => `marker-${randomBytes(8).toString('hex')}`;
const data = { restart: { password: marker(), user: marker() }, refresh: { password: marker(), user: marker() } };

/** What a dev-mode OpenBao loses on a restart: the test's secrets, written again as they were. */
async function seed(): Promise<void> {
  await writeKvSecret(bao, restartKey(), data.restart);
  await writeKvSecret(bao, refreshKey(), data.refresh);
}

const files = (key: string): { path: string; key: string; property: string }[] => [
  { path: 'password', key, property: 'password' },
  { path: 'config/user', key, property: 'user' },
];

interface Consumer {
  readonly pod: V1Pod;
  readonly binding: string;
  readonly target: string;
}
const consumers: Consumer[] = [];

/**
 * Everything an application in the pod could see in its volume: the visible entries (recursively),
 * each file's bytes, and where `..data` points.
 */
function volumeSnapshot(target: string): string {
  const walk = (dir: string, prefix: string): string[] =>
    readdirSync(dir)
      .filter((name) => !name.startsWith('..'))
      .sort()
      .flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? walk(path, `${prefix}${name}/`) : [`${prefix}${name}=${readFileSync(path).toString('base64')}`];
      });
  try {
    return JSON.stringify({ data: readlinkSync(join(target, '..data')), files: walk(target, '') });
  } catch (error) {
    return `unreadable: ${error instanceof Error ? error.message : String(error)}`;
  }
}

const snapshots = (): string[] => consumers.map((c) => volumeSnapshot(c.target));

/** Pods that are gone or going (an eviction: a restart of a bare pod). */
async function restartedPods(): Promise<string[]> {
  const out: string[] = [];
  for (const { pod } of consumers) {
    const name = pod.metadata?.name ?? '';
    const now = await world.core.readNamespacedPod({ namespace: world.ns, name }).catch(() => undefined);
    if (now?.metadata?.uid !== pod.metadata?.uid || now?.metadata?.deletionTimestamp !== undefined) out.push(name);
  }
  return out;
}

type ConditionType = 'Ready' | 'Degraded';
const condition = (s: BindingStatus | undefined, type: ConditionType): { status: string; reason: string } | undefined =>
  s?.conditions?.find((c) => c.type === type);

/** Waits until the binding's condition is `status` (with `reason`, if given); returns the ms waited. */
async function until(binding: string, type: ConditionType, status: 'True' | 'False', reason?: string, timeoutMs = 60_000): Promise<number> {
  const from = Date.now();
  let last: BindingStatus | undefined;
  try {
    await eventually(`${binding} ${type}=${status}${reason === undefined ? '' : ` (${reason})`}`, async () => {
      last = await world.bindingStatus(binding);
      const c = condition(last, type);
      return c?.status === status && (reason === undefined || c.reason === reason) ? true : undefined;
    }, timeoutMs);
  } catch (error) {
    // What the binding showed instead: the conditions say which way it went.
    const seen = (last?.conditions ?? []).map((c) => `${c.type}=${c.status} (${c.reason})`).join(', ');
    throw new Error(`${error instanceof Error ? error.message : String(error)}; last seen: ${seen}`, { cause: error });
  }
  return Date.now() - from;
}

/** Publishes a new pod's volume; resolves with its files, or with the broker's refusal text. */
async function newMount(name: string, binding: string): Promise<{ files: string } | { refused: string }> {
  const { pod, side } = await world.createPod(name, binding, 0);
  // A refusal for the pod cache racing the create (NotEntitled, IdentityMismatch) is retried; a
  // backend refusal, or files, is the answer.
  return eventually(`a publish answer for ${name}`, async () => {
    try {
      const [mount] = await side.kubelet.publishPod(pod);
      if (mount === undefined) throw new Error('no volume');
      consumers.push({ pod, binding, target: mount.targetPath });
      return { files: volumeSnapshot(mount.targetPath) };
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      return /NotEntitled|IdentityMismatch/.test(text) ? undefined : { refused: text };
    }
  }, 30_000);
}

/** The files of a volume, without the `..data` target (which differs between two volumes of the same content). */
const contentOf = (snapshot: string): string => JSON.stringify((JSON.parse(snapshot) as { files: string[] }).files);

/** The unseal key the dev server printed at its (latest) start. */
function unsealKey(): string {
  const record = currentWorld().processes.find((r) => r.name === 'openbao');
  const keys = [...readFileSync(record?.logPath ?? '', 'utf8').matchAll(/Unseal Key: (\S+)/g)];
  const key = keys.at(-1)?.[1];
  if (key === undefined) throw new Error('no unseal key in the OpenBao log');
  return key;
}

describe('chaos: backend and node plugin', () => {
  beforeAll(async () => {
    const openbao = currentWorld().openbao;
    if (openbao === undefined) throw new Error('the world has no OpenBao');
    bao = openbao;
    proxy = await startFaultProxy({ target: bao.address });
    world = await startDeliveryWorld({
      prefix: 'chaos',
      nodes: 1,
      backend: {
        spec: { vault: { address: proxy.url, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: credentialsSecret, key: 'token' } } } } },
        credentials: { token: bao.rootToken },
      },
    });
    await seed();
    const common = { refreshInterval: `${String(refreshSeconds)}s` };
    await world.createBinding('served', {
      ...common,
      podSelector: { matchLabels: { binding: 'served' } },
      files: files(restartKey()),
      rotation: { strategy: 'RollingRestart', debounce: '0s' },
    });
    await world.createBinding('bounded', {
      ...common,
      podSelector: { matchLabels: { binding: 'bounded' } },
      files: files(refreshKey()),
      onBackendUnavailable: { policy: 'ServeLastKnownGood', maxStaleness },
    });
    await world.createBinding('failing', {
      ...common,
      podSelector: { matchLabels: { binding: 'failing' } },
      files: files(refreshKey()),
      onBackendUnavailable: { policy: 'Fail' },
    });
    const initial = [['served-0', 'served'], ['served-1', 'served'], ['bounded-0', 'bounded'], ['failing-0', 'failing']] as const;
    const mounted = await Promise.all(initial.map(([name, binding]) => world.podWithVolume(name, binding, 0)));
    mounted.forEach(({ pod, mount }, i) => consumers.push({ pod, binding: initial[i]?.[1] ?? '', target: mount.targetPath }));
    for (const b of ['served', 'bounded', 'failing']) await until(b, 'Degraded', 'False');
  }, 180_000);

  afterAll(async () => {
    // Never leave the shared world without a running, unsealed OpenBao.
    if (!isProcessRunning(currentWorld(), 'openbao')) await startProcessNamed(currentWorld(), 'openbao');
    const health = await fetch(`${bao.address}/v1/sys/seal-status`).then((r) => r.json() as Promise<{ sealed?: boolean }>);
    if (health.sealed === true) await openBaoRequest(bao, 'PUT', 'sys/unseal', { key: unsealKey() }, '');
    await world.close();
    await proxy.stop();
  }, 120_000);

  it('serves last-known-good through an OpenBao seal and restart: 0 files lost, 0 restarts, Degraded with the cause', async () => {
    const before = snapshots();
    const status = await world.bindingStatus('served');

    const sealedAt = Date.now();
    await openBaoRequest(bao, 'PUT', 'sys/seal');
    await until('served', 'Degraded', 'True', 'BackendUnavailable');
    const degradedMs = Date.now() - sealedAt;
    expect(condition(await world.bindingStatus('served'), 'Ready')?.status).toBe('True');
    // A pod started while the store is sealed gets the last-known-good content.
    const late = await newMount('served-late', 'served');
    expect('files' in late ? contentOf(late.files) : late.refused).toBe(contentOf(before[0] ?? ''));

    // Restarted while sealed. A real OpenBao comes back sealed with its data; the dev server comes
    // back unsealed and empty, so behind the partitioned proxy it gets the secrets again and is
    // sealed before the controller can see it: what the controller meets is the real thing.
    const restartedAt = Date.now();
    proxy.setMode({ kind: 'partition' });
    try {
      await stopProcessNamed(currentWorld(), 'openbao');
      await startProcessNamed(currentWorld(), 'openbao');
      await seed();
      await openBaoRequest(bao, 'PUT', 'sys/seal');
    } finally {
      proxy.setMode({ kind: 'forward' });
    }
    const restartMs = Date.now() - restartedAt;
    await openBaoRequest(bao, 'PUT', 'sys/unseal', { key: unsealKey() }, '');
    const recoveredMs = await until('served', 'Degraded', 'False');
    const after = snapshots().slice(0, before.length);
    const restarted = await restartedPods();
    const statusAfter = await world.bindingStatus('served');
    figure(
      `OpenBao seal and restart: Degraded (BackendUnavailable) ${String(degradedMs)} ms after the seal, Ready=True meanwhile; new mount while sealed: ${'files' in late ? 'last-known-good' : 'refused'}; ` +
        `restarted sealed in ${String(restartMs)} ms; Degraded=False ${String(recoveredMs)} ms after the unseal; ` +
        `${String(before.length)} volumes: files lost or changed ${String(after.filter((s, i) => s !== before[i]).length)}, pods restarted ${String(restarted.length)}`,
    );

    expect(after).toEqual(before);
    expect(restarted).toEqual([]);
    expect(statusAfter?.contentHmac).toBe(status?.contentHmac);
    expect(statusAfter?.lastRotationTime).toBe(status?.lastRotationTime);
    expect(condition(statusAfter, 'Ready')?.status).toBe('True');
  }, 240_000);

  it('through a partition longer than maxStaleness: serves last-known-good, then refuses new mounts, never touching running ones', async () => {
    // Drill 4 sealed the store for longer than maxStaleness: until a check of each binding has
    // succeeded since, its content is older than that, and the first failed check would find it
    // expired (Ready=False at once) instead of within maxStaleness. Start from fresh content.
    for (const binding of ['bounded', 'failing']) {
      await until(binding, 'Ready', 'True');
      await until(binding, 'Degraded', 'False');
    }
    const before = snapshots();
    const bounded = before[consumers.findIndex((c) => c.binding === 'bounded')] ?? '';

    const partitionedAt = Date.now();
    proxy.setMode({ kind: 'partition' });
    let lkgMount: Awaited<ReturnType<typeof newMount>>;
    let expiredMount: Awaited<ReturnType<typeof newMount>>;
    let failMount: Awaited<ReturnType<typeof newMount>>;
    let lkgMs: number;
    let failMs: number;
    let expiredMs: number;
    // Fail: not Ready at the first failed check, new mounts refused.
    const failing = until('failing', 'Ready', 'False', 'BackendUnavailable');
    failing.catch(() => undefined);
    try {
      // Within maxStaleness: Ready, Degraded names the cause, new mounts get last-known-good.
      await until('bounded', 'Degraded', 'True', 'BackendUnavailable');
      lkgMs = Date.now() - partitionedAt;
      expect(condition(await world.bindingStatus('bounded'), 'Ready')?.status).toBe('True');
      lkgMount = await newMount('bounded-within', 'bounded');
      failMs = await failing;
      failMount = await newMount('failing-during', 'failing');
      // Beyond maxStaleness: not Ready, new mounts refused.
      await until('bounded', 'Ready', 'False', 'BackendUnavailable', 90_000);
      expiredMs = Date.now() - partitionedAt;
      expiredMount = await newMount('bounded-beyond', 'bounded');
    } finally {
      proxy.setMode({ kind: 'forward' });
    }
    const healedAt = Date.now();
    await until('bounded', 'Ready', 'True');
    await until('failing', 'Ready', 'True');
    await until('bounded', 'Degraded', 'False');
    const healMs = Date.now() - healedAt;
    const after = snapshots().slice(0, before.length);
    const cut = proxy.requests().filter((r) => r.cut).length;
    figure(
      `partition beyond maxStaleness (${maxStaleness}, refresh ${String(refreshSeconds)} s): ServeLastKnownGood Degraded=True (BackendUnavailable) after ${String(lkgMs)} ms, ` +
        `past maxStaleness Ready=False (BackendUnavailable) after ${String(expiredMs)} ms; Fail Ready=False (BackendUnavailable) after ${String(failMs)} ms; ` +
        `new mounts: within ${'files' in lkgMount ? 'served last-known-good' : 'refused'}, beyond ${'refused' in expiredMount ? 'refused' : 'served'}, Fail ${'refused' in failMount ? 'refused' : 'served'}; ` +
        `requests cut ${String(cut)}; running volumes changed ${String(after.filter((s, i) => s !== before[i]).length)} of ${String(before.length)}; all Ready ${String(healMs)} ms after the partition ended`,
    );

    expect('files' in lkgMount ? contentOf(lkgMount.files) : lkgMount.refused).toBe(contentOf(bounded));
    expect('refused' in expiredMount ? expiredMount.refused : 'served').toMatch(/BackendUnavailable/);
    expect('refused' in failMount ? failMount.refused : 'served').toMatch(/BackendUnavailable/);
    expect(after).toEqual(before);
    expect(await restartedPods()).toEqual([]);
    // The refused pods mount once the backend answers (the kubelet keeps retrying).
    for (const [name, binding] of [['bounded-beyond', 'bounded'], ['failing-during', 'failing']] as const) {
      const pod = await world.core.readNamespacedPod({ namespace: world.ns, name });
      const [mount] = await eventually(`${name} mounts after the partition`, async () => (await world.nodes[0]?.kubelet.publishPod(pod).catch(() => undefined)), 30_000);
      if (mount === undefined) throw new Error(`${name}: no volume`);
      consumers.push({ pod, binding, target: mount.targetPath });
      expect(contentOf(volumeSnapshot(mount.targetPath))).toBe(contentOf(bounded));
    }
  }, 240_000);

  it('keeps every mount through a node plugin restart, and refreshes them after it', async () => {
    const before = snapshots();
    const restartedAt = Date.now();
    const side = await world.restartNodePlugin(0);
    // Nothing held by the new plugin yet, and nothing lost: the mounts outlive the plugin.
    expect(side.plugin.volumes()).toEqual([]);
    expect(snapshots()).toEqual(before);
    // The kubelet's periodic republish (CSIDriver requiresRepublish) hands each volume over.
    for (const { pod } of consumers) {
      await eventually(`republish ${pod.metadata?.name ?? ''}`, async () => (await side.kubelet.publishPod(pod).catch(() => undefined)) === undefined ? undefined : true, 30_000);
    }
    const adoptedMs = Date.now() - restartedAt;
    expect(side.plugin.volumes()).toHaveLength(consumers.length);
    expect(snapshots()).toEqual(before);

    // Refresh resumes: a rotation of the Refresh bindings' secret reaches every one of their volumes.
    const rotatedAt = Date.now();
    const password = marker();
    await writeKvSecret(bao, refreshKey(), { ...data.refresh, password });
    const refreshed = consumers.filter((c) => c.binding !== 'served');
    await eventually('every Refresh volume holds the new password', async () => {
      const held = await Promise.all(refreshed.map((c) => readText(join(c.target, 'password'))));
      return held.every((p) => p === password) ? true : undefined;
    }, 3 * refreshSeconds * 1000);
    const rotationMs = Date.now() - rotatedAt;
    const served = consumers.map((c, i) => ({ c, i })).filter(({ c }) => c.binding === 'served');
    figure(
      `node plugin restart: ${String(consumers.length)} mounts, ${String(consumers.length)} intact, files changed 0 across the restart; ` +
        `all republished to the new plugin ${String(adoptedMs)} ms after the restart; a rotation after it reached ${String(refreshed.length)} Refresh volumes in ${String(rotationMs)} ms`,
    );
    // The RollingRestart binding's volumes did not change (its secret did not), and no pod restarted.
    for (const { c, i } of served) expect(volumeSnapshot(c.target)).toBe(before[i]);
    expect(await restartedPods()).toEqual([]);
  }, 180_000);
});
