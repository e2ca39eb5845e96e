import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { AppsV1Api } from '@kubernetes/client-node';
import { contentHashAnnotation } from '../../../src/controllers/rotation/rollout-hash.ts';
import { eventually } from '../support/cluster.ts';
import { readText, sleep, startDeliveryWorld, type DeliveryWorld, type NodeSide } from './delivery-world.ts';
import { startRotationBackend, type RotationBackend, type RotationBackendKind } from './rotation-backends.ts';

/**
 * One volume from three backends (ADR 0240), on the real world: OpenBao (the default backend),
 * moto (behind a fault proxy) and the Key Vault double, node plugin in-process, real tmpfs.
 *
 * - a rotation in any one backend gives exactly one new content hash (one Rotated Event), one
 *   file-set swap as the node plugin's atomic writer counts them, and, for a RollingRestart
 *   binding of the same files, exactly one new ReplicaSet of its Deployment;
 * - moto cut off (fault proxy partition): the others' files stay current — a rotation in OpenBao
 *   still arrives — moto's file holds its last-known-good value, and status names the backend;
 * - a file with `from` (Key Vault, not there yet) and `fallback` (OpenBao) is served from the
 *   fallback until the secret exists in Key Vault; `status.sources` says which served.
 */

const refreshSeconds = 10;
const debounceSeconds = 2;
/** Detection within one interval, delivery, then the debounce: when the rollout must have started. */
const rolloutMs = refreshSeconds * 1000 + debounceSeconds * 1000 + 4000;
/** After the rollout: the debounce again and slack, in which a second hash would show as a second swap or rollout. */
const settleMs = debounceSeconds * 1000 + 3000;
const marker = (): string => `marker-${randomBytes(8).toString('hex')}`;

interface BackendHealth {
  readonly name: string;
  readonly state: string;
  readonly reason: string;
  readonly message?: string;
}

let world: DeliveryWorld;
let apps: AppsV1Api;
const backends = new Map<RotationBackendKind, RotationBackend>();
/** The binding's name of each world backend (OpenBao is the default backendRef). */
const nameOf: Record<RotationBackendKind, string> = { openbao: 'default', moto: 'aws', azureKeyVault: 'azure' };
const fileOf: Record<RotationBackendKind, string> = { openbao: 'db/password', moto: 'api-key', azureKeyVault: 'tls.crt' };
const keys = new Map<RotationBackendKind, string>();

function backend(kind: RotationBackendKind): RotationBackend {
  const b = backends.get(kind);
  if (b === undefined) throw new Error(`no ${kind}`);
  return b;
}

function spec(selector: Record<string, string>, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    backends: [
      { name: 'aws', backendRef: { kind: 'SecretBackend', name: 'aws' } },
      { name: 'azure', backendRef: { kind: 'SecretBackend', name: 'azure' } },
    ],
    podSelector: { matchLabels: selector },
    refreshInterval: `${String(refreshSeconds)}s`,
    files: (['openbao', 'moto', 'azureKeyVault'] as const).map((kind) => ({
      path: fileOf[kind],
      key: keys.get(kind),
      property: 'value',
      ...(kind === 'openbao' ? {} : { backend: nameOf[kind] }),
    })),
    ...extra,
  };
}

async function rotatedEvents(binding: string): Promise<number> {
  const events = (await world.core.listNamespacedEvent({ namespace: world.ns, fieldSelector: `involvedObject.name=${binding},reason=Rotated` })).items;
  return events.reduce((sum, e) => sum + (e.count ?? 1), 0);
}

async function replicaSets(deployment: string): Promise<number> {
  const sets = (await apps.listNamespacedReplicaSet({ namespace: world.ns })).items;
  return sets.filter((rs) => rs.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === deployment) === true).length;
}

async function health(binding: string): Promise<BackendHealth[]> {
  return ((await world.bindingStatus(binding)) as { backends?: BackendHealth[] } | undefined)?.backends ?? [];
}

describe('one volume from OpenBao, moto and the Key Vault double', () => {
  let side: NodeSide;
  let target: string;
  let volumeId: string;
  const current = new Map<RotationBackendKind, string>();
  const swaps = (): number => side.plugin.volumes().find((v) => v.volumeId === volumeId)?.swaps ?? -1;
  const files = async (): Promise<Record<string, string | undefined>> =>
    Object.fromEntries(await Promise.all(Object.values(fileOf).map(async (path) => [path, await readText(join(target, path))] as const)));

  beforeAll(async () => {
    for (const kind of ['openbao', 'moto', 'azureKeyVault'] as const) backends.set(kind, await startRotationBackend(kind));
    world = await startDeliveryWorld({
      prefix: 'multi',
      nodes: 1,
      backend: backend('openbao'),
      moreBackends: { aws: backend('moto'), azure: backend('azureKeyVault') },
    });
    apps = world.kc.makeApiClient(AppsV1Api);
    for (const kind of ['openbao', 'moto', 'azureKeyVault'] as const) {
      const key = backend(kind).key(`multi-${world.suffix}-${kind}`);
      keys.set(kind, key);
      current.set(kind, marker());
      await backend(kind).write(key, { value: current.get(kind) ?? '' });
    }
    await world.createBinding('mixed', spec({ binding: 'mixed' }, {}));
    await world.createBinding('mixed-rr', spec({ app: 'mixed-rr' }, { rotation: { strategy: 'RollingRestart', debounce: `${String(debounceSeconds)}s` } }));
    const published = await world.podWithVolume('mixed-0', 'mixed', 0);
    side = published.side;
    target = published.mount.targetPath;
    volumeId = side.plugin.volumes().find((v) => v.targetPath === target)?.volumeId ?? '';
    await apps.createNamespacedDeployment({
      namespace: world.ns,
      body: {
        metadata: { name: 'mixed-rr' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'mixed-rr' } },
          template: {
            metadata: { labels: { app: 'mixed-rr' } },
            spec: {
              serviceAccountName: 'web',
              containers: [{ name: 'app', image: 'registry.invalid/app:1', volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] }],
              volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'mixed-rr' } } }],
            },
          },
        },
      },
    });
    // Adopted: the Deployment records the binding's hash without a restart.
    await eventually(
      'mixed-rr adopted',
      async () => ((await apps.readNamespacedDeployment({ name: 'mixed-rr', namespace: world.ns })).metadata?.annotations?.[contentHashAnnotation] === undefined ? undefined : true),
      60_000,
    );
  }, 180_000);

  afterAll(async () => {
    // A failed start leaves no world; the backends (moto's fault proxy) must close anyway, or jest waits for them.
    await (world as DeliveryWorld | undefined)?.close();
    for (const b of backends.values()) await b.close();
  }, 120_000);

  it('serves every backend\'s file in one volume', async () => {
    expect(await files()).toEqual({ 'db/password': current.get('openbao'), 'api-key': current.get('moto'), 'tls.crt': current.get('azureKeyVault') });
    expect((await health('mixed')).map((h) => [h.name, h.state])).toEqual([['default', 'Current'], ['aws', 'Current'], ['azure', 'Current']]);
  });

  it.each(['openbao', 'moto', 'azureKeyVault'] as const)('a rotation in %s: one new hash, one swap, one rollout', async (kind) => {
    const before = { swaps: swaps(), events: await rotatedEvents('mixed'), sets: await replicaSets('mixed-rr'), hmac: (await world.bindingStatus('mixed'))?.contentHmac };
    const value = marker();
    await backend(kind).write(keys.get(kind) ?? '', { value });
    current.set(kind, value);
    await eventually(`${kind}'s file rotated`, async () => ((await readText(join(target, fileOf[kind]))) === value ? true : undefined), 3 * refreshSeconds * 1000);
    await eventually('mixed-rr rolled out', async () => ((await replicaSets('mixed-rr')) > before.sets ? true : undefined), rolloutMs);
    await sleep(settleMs);
    const after = { swaps: swaps(), events: await rotatedEvents('mixed'), sets: await replicaSets('mixed-rr'), hmac: (await world.bindingStatus('mixed'))?.contentHmac };
    process.stdout.write(`multi-backend rotation in ${kind}: swaps +${String(after.swaps - before.swaps)}, Rotated Events +${String(after.events - before.events)}, ReplicaSets +${String(after.sets - before.sets)}\n`);
    expect(await files()).toEqual({ 'db/password': current.get('openbao'), 'api-key': current.get('moto'), 'tls.crt': current.get('azureKeyVault') });
    expect(after.hmac).not.toBe(before.hmac);
    expect(after.swaps - before.swaps).toBe(1);
    expect(after.events - before.events).toBe(1);
    expect(after.sets - before.sets).toBe(1);
  }, 120_000);

  it('keeps the others current and moto\'s file at last-known-good while moto is cut off, naming it', async () => {
    const fault = backend('moto').fault;
    if (fault === undefined) throw new Error('moto has no fault proxy');
    const held = current.get('moto');
    fault.setMode({ kind: 'partition' });
    try {
      const value = marker();
      await backend('openbao').write(keys.get('openbao') ?? '', { value });
      current.set('openbao', value);
      await eventually('OpenBao\'s file rotated while moto is cut off', async () => ((await readText(join(target, fileOf.openbao))) === value ? true : undefined), 3 * refreshSeconds * 1000);
      const aws = await eventually('aws held at last-known-good in status', async () => (await health('mixed')).find((h) => h.name === 'aws' && h.state === 'LastKnownGood'), 3 * refreshSeconds * 1000);
      expect(await files()).toEqual({ 'db/password': value, 'api-key': held, 'tls.crt': current.get('azureKeyVault') });
      expect(aws.reason).toBe('BackendUnavailable');
      expect((await health('mixed')).filter((h) => h.state !== 'Current').map((h) => h.name)).toEqual(['aws']);
      const status = await world.bindingStatus('mixed');
      expect(status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
      const degraded = status?.conditions?.find((c) => c.type === 'Degraded');
      expect([degraded?.status, degraded?.reason]).toEqual(['True', 'BackendUnavailable']);
      expect(degraded?.message).toContain('backend aws (SecretBackend aws)');
    } finally {
      fault.setMode({ kind: 'forward' });
    }
    await eventually('aws Current again', async () => ((await health('mixed')).every((h) => h.state === 'Current') ? true : undefined), 3 * refreshSeconds * 1000);
  }, 120_000);

  it('serves a file from its fallback until the from source exists, and says which served', async () => {
    const legacy = `multi-${world.suffix}-legacy`;
    const moved = backend('azureKeyVault').key(`multi-${world.suffix}-moved`);
    await backend('openbao').write(legacy, { value: 'legacy-value' });
    await world.createBinding('migrating', {
      backends: [{ name: 'azure', backendRef: { kind: 'SecretBackend', name: 'azure' } }],
      podSelector: { matchLabels: { binding: 'migrating' } },
      refreshInterval: `${String(refreshSeconds)}s`,
      files: [{ path: 'token', from: { backend: 'azure', key: moved, property: 'value' }, fallback: { key: legacy, property: 'value' } }],
    });
    const sources = async (): Promise<{ path: string; served: string }[] | undefined> =>
      ((await world.bindingStatus('migrating')) as { sources?: { path: string; served: string }[] } | undefined)?.sources;
    expect(await sources()).toEqual([{ path: 'token', served: 'fallback' }]);
    const before = (await world.bindingStatus('migrating'))?.contentHmac;
    expect((await health('migrating')).find((h) => h.name === 'azure')?.reason).toBe('KeyNotFound');

    await backend('azureKeyVault').write(moved, { value: 'moved-value' });
    await eventually('from serves once it exists', async () => ((await sources())?.[0]?.served === 'from' ? true : undefined), 3 * refreshSeconds * 1000);
    expect((await world.bindingStatus('migrating'))?.contentHmac).not.toBe(before);
    expect((await health('migrating')).map((h) => h.state)).toEqual(['Current', 'Current']);
  }, 120_000);
});
