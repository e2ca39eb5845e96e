import type { V1Pod } from '@kubernetes/client-node';
import { defaults, findCondition, type SecretBinding, type SecretBindingFile } from '../api/v1alpha1/index.ts';
import { driverName } from '../broker/broker.protocol.ts';
import { isConsumer } from '../controllers/binding/consumers.ts';
import { contentHashAnnotation, workloadContentHash } from '../controllers/rotation/rollout-hash.ts';

/**
 * What the CLI reads about bindings and their consumers from objects alone — specs, statuses and
 * pods — without a secret value ever being in reach. Shared by explain, who-uses and refresh.
 */

/** A secret-binder CSI volume of a pod and the binding it names. */
export interface BoundVolume {
  readonly volume: string;
  readonly binding: string;
}

export function boundVolumes(pod: V1Pod): BoundVolume[] {
  return (pod.spec?.volumes ?? []).flatMap((v) =>
    v.csi?.driver === driverName && v.csi.volumeAttributes?.['binding'] !== undefined ? [{ volume: v.name, binding: v.csi.volumeAttributes['binding'] }] : [],
  );
}

export type ContainerKind = 'init' | 'sidecar' | 'app' | 'ephemeral';

export interface PodContainer {
  readonly name: string;
  readonly kind: ContainerKind;
  readonly mounts: readonly { readonly volume: string; readonly mountPath: string; readonly subPath?: string }[];
}

/** Every container of a pod (init, native sidecar, app, ephemeral) with its volume mounts. */
export function podContainers(pod: V1Pod): PodContainer[] {
  const mounts = (c: { volumeMounts?: { name: string; mountPath: string; subPath?: string }[] }): PodContainer['mounts'] =>
    (c.volumeMounts ?? []).map((m) => ({ volume: m.name, mountPath: m.mountPath, ...(m.subPath === undefined || m.subPath === '' ? {} : { subPath: m.subPath }) }));
  return [
    ...(pod.spec?.initContainers ?? []).map((c) => ({ name: c.name, kind: c.restartPolicy === 'Always' ? ('sidecar' as const) : ('init' as const), mounts: mounts(c) })),
    ...(pod.spec?.containers ?? []).map((c) => ({ name: c.name, kind: 'app' as const, mounts: mounts(c) })),
    ...(pod.spec?.ephemeralContainers ?? []).map((c) => ({ name: c.name, kind: 'ephemeral' as const, mounts: mounts(c) })),
  ];
}

/** One source of a file: a backend key (and property), the version asked for and the latest known. */
export interface FileSource {
  /** The field name inside a formatted file; absent for a single-key file. */
  readonly name?: string;
  /** The binding's name of the backend the key is read from, when not the default `backendRef`. */
  readonly backend?: string;
  /** For a file with a fallback: which of its two sources this is, and whether it served the content. */
  readonly role?: 'from' | 'fallback';
  readonly served?: boolean;
  readonly key: string;
  readonly property?: string;
  /** `latest`, `version:<id>` or `stage:<stage>`. */
  readonly requested: string;
  /** The backend version(s) the content was last resolved from (status.backendVersions). */
  readonly resolvedVersions: readonly string[];
}

export interface FileFacts {
  readonly path: string;
  /** Octal permission bits. */
  readonly mode: number;
  /** `raw` for a single secret, else json / dotenv / properties / yaml. */
  readonly format: string;
  readonly sources: readonly FileSource[];
}

function requested(source: { version?: string; versionStage?: string }): string {
  if (source.version !== undefined && source.version !== '') return `version:${source.version}`;
  if (source.versionStage !== undefined && source.versionStage !== '') return `stage:${source.versionStage}`;
  return 'latest';
}

/** The binding's files with their sources and the versions its status says they were resolved from. */
export function bindingFiles(binding: SecretBinding): FileFacts[] {
  const versions = binding.status?.backendVersions ?? [];
  const servedBy = new Map((binding.status?.sources ?? []).map((s) => [s.path, s.served]));
  const named = (backend: string | undefined): string | undefined => (backend === undefined || backend === '' || backend === 'default' ? undefined : backend);
  const resolved = (key: string, backend: string | undefined): string[] =>
    versions.filter((v) => v.key === key && named(v.backend) === backend).map((v) => v.version);
  type SourceSpec = Pick<SecretBindingFile, 'key' | 'property' | 'version' | 'versionStage' | 'backend'> & { key: string };
  const source = (s: SourceSpec, fileBackend: string | undefined, name?: string): FileSource => {
    const backend = named(s.backend) ?? named(fileBackend);
    return {
      ...(name === undefined ? {} : { name }),
      ...(backend === undefined ? {} : { backend }),
      key: s.key,
      ...(s.property === undefined || s.property === '' ? {} : { property: s.property }),
      requested: requested(s),
      resolvedVersions: resolved(s.key, backend),
    };
  };
  const sourcesOf = (file: SecretBindingFile): FileSource[] => {
    if (file.format !== undefined) return (file.items ?? []).map((item) => source(item, file.backend, item.name));
    if (file.key !== undefined) return [source({ ...file, key: file.key }, file.backend)];
    if (file.from === undefined) return [];
    // A file with a fallback (ADR 0241): both sources, and which one status says served it.
    const served = servedBy.get(file.path);
    return [
      { ...source(file.from, file.backend), role: 'from', served: served === 'from' },
      ...(file.fallback === undefined ? [] : [{ ...source(file.fallback, file.backend), role: 'fallback' as const, served: served === 'fallback' }]),
    ];
  };
  return binding.spec.files.map((file) => ({
    path: file.path,
    mode: file.mode ?? defaults.fileMode,
    format: file.format ?? 'raw',
    sources: sourcesOf(file),
  }));
}

/** Where a binding stands, from its status: serving, failing (with the reason), or not reconciled yet. */
export type BindingHealth =
  | { readonly state: 'Ready'; readonly degraded?: { readonly reason: string; readonly message: string } }
  | { readonly state: 'Failing'; readonly reason: string; readonly message: string }
  | { readonly state: 'Pending'; readonly message: string };

export function bindingHealth(binding: SecretBinding): BindingHealth {
  const generation = binding.metadata.generation;
  const ready = findCondition(binding.status?.conditions, 'Ready');
  if (ready === undefined || (generation !== undefined && (binding.status?.observedGeneration ?? 0) < generation)) {
    return { state: 'Pending', message: `the controller has not reconciled generation ${String(generation ?? 1)} yet` };
  }
  if (ready.status !== 'True') return { state: 'Failing', reason: ready.reason, message: ready.message };
  const degraded = findCondition(binding.status?.conditions, 'Degraded');
  return degraded?.status === 'True' ? { state: 'Ready', degraded: { reason: degraded.reason, message: degraded.message } } : { state: 'Ready' };
}

/**
 * Whether a consuming pod holds the binding's latest content. Per-pod hashes live only in the
 * broker's memory (ADR 0109), so the CLI decides from what the API shows (ADR 0210):
 * - a RollingRestart pod carrying `secretbinder.dev/content-hash` is current iff that hash is the
 *   digest of the current HMACs of the RollingRestart bindings it consumes;
 * - otherwise a binding whose status counts no stale consumer has every consumer current;
 * - otherwise (some consumers stale, which ones only the broker knows) it is unknown.
 */
export type Delivery = 'current' | 'stale' | 'unknown' | 'none';

export function deliveryOf(binding: SecretBinding, pod: V1Pod, namespaceBindings: readonly SecretBinding[]): Delivery {
  const hmac = binding.status?.contentHmac;
  if (hmac === undefined || hmac === '') return 'none';
  const podHash = pod.metadata?.annotations?.[contentHashAnnotation];
  if (binding.spec.rotation?.strategy === 'RollingRestart' && podHash !== undefined) {
    const rolling = namespaceBindings.filter((b) => b.spec.rotation?.strategy === 'RollingRestart' && isConsumer(b, pod));
    const hmacs = rolling.map((b) => b.status?.contentHmac);
    if (hmacs.every((h): h is string => h !== undefined && h !== '')) return workloadContentHash(hmacs) === podHash ? 'current' : 'stale';
  }
  return (binding.status?.consumers?.stale ?? 0) === 0 ? 'current' : 'unknown';
}

/** `namespace/name` of a pod's node, or `-` before it is scheduled. */
export function nodeOf(pod: V1Pod): string {
  return pod.spec?.nodeName ?? '-';
}

/** The first 12 hex digits of a `sha256:`/`hmac-sha256:` hash, for tables. */
export function shortHash(hash: string | undefined): string {
  if (hash === undefined || hash === '') return '-';
  const [prefix, hex] = hash.includes(':') ? [hash.slice(0, hash.lastIndexOf(':') + 1), hash.slice(hash.lastIndexOf(':') + 1)] : ['', hash];
  return `${prefix}${hex.slice(0, 12)}`;
}
