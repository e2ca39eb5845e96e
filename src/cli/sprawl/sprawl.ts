import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import type { KubeObject } from '../cluster-reader.ts';
import { checkEnvLiteral, ruleById, type RuleId, type Severity } from './sprawl-rules.ts';

/**
 * `audit sprawl` as a pure function: objects in (from the cluster or from manifest files),
 * findings out. A finding names the object, container and field path, the rule and a suggested
 * SecretBinding — never the value it found, nor any part of it.
 */

/** One object to scan, and where it came from (a file and a line finder, or the cluster). */
export interface ScanInput {
  readonly object: KubeObject;
  readonly file?: string;
  /** The 1-based line of a field of the object in its file. */
  readonly lineOf?: (path: readonly (string | number)[]) => number | undefined;
}

export interface FindingLocation {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly container?: string;
  /** A field path in the object, e.g. `spec.template.spec.containers[0].env[2].value`. */
  readonly fieldPath: string;
  readonly file?: string;
  readonly line?: number;
}

export interface Finding {
  readonly rule: RuleId;
  readonly severity: Severity;
  readonly message: string;
  readonly location: FindingLocation;
  /** A SecretBinding that would replace what was found (a value never appears in it). */
  readonly suggestion?: object;
}

/** Where each kind keeps its pod spec. */
const podSpecPaths: Readonly<Record<string, readonly string[]>> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

/** The kinds whose pods are scanned through them (their pods would repeat their findings). */
const podOwnerKinds = new Set(['ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job']);

export const scannedKinds = [...Object.keys(podSpecPaths), 'Secret'];

function dig(object: unknown, path: readonly string[]): unknown {
  let at = object;
  for (const p of path) at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[p] : undefined;
  return at;
}

function templateLabels(object: KubeObject): Record<string, string> {
  const spec = podSpecPaths[object.kind ?? ''];
  if (spec === undefined) return {};
  const metadata = object.kind === 'Pod' ? object.metadata : dig(object, [...spec.slice(0, -1), 'metadata']);
  return ((metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {});
}

function fileName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '') || 'secret';
}

function suggestion(object: KubeObject, containers: readonly string[], file: { path: string; key: string; property?: string }): object {
  const name = object.metadata?.name ?? '';
  return {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name: fileName(`${name}-secrets`), namespace: object.metadata?.namespace ?? 'default' },
    spec: {
      backendRef: { kind: 'SecretBackend', name: 'my-backend' },
      podSelector: { matchLabels: { ...templateLabels(object) } },
      containers,
      files: [{ path: file.path, key: file.key, ...(file.property === undefined ? {} : { property: file.property }) }],
    },
  };
}

interface ContainerAt {
  readonly container: V1Container;
  readonly path: readonly (string | number)[];
}

function containersOf(spec: V1PodSpec, base: readonly string[]): ContainerAt[] {
  const list = (field: 'initContainers' | 'containers' | 'ephemeralContainers'): ContainerAt[] =>
    ((spec[field] ?? [])).map((container, i) => ({ container, path: [...base, field, i] }));
  return [...list('initContainers'), ...list('containers'), ...list('ephemeralContainers')];
}

function pathText(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${String(p)}]` : i === 0 ? p : `.${p}`)).join('');
}

/** The names of the Secrets a pod spec references (env, envFrom, volumes, image pull secrets). */
export function referencedSecrets(spec: V1PodSpec): string[] {
  const names = new Set<string>();
  for (const { container } of containersOf(spec, [])) {
    for (const env of container.env ?? []) if (env.valueFrom?.secretKeyRef?.name !== undefined) names.add(env.valueFrom.secretKeyRef.name);
    for (const from of container.envFrom ?? []) if (from.secretRef?.name !== undefined) names.add(from.secretRef.name);
  }
  for (const v of spec.volumes ?? []) {
    if (v.secret?.secretName !== undefined) names.add(v.secret.secretName);
    for (const source of v.projected?.sources ?? []) if (source.secret?.name !== undefined) names.add(source.secret.name);
  }
  for (const pull of spec.imagePullSecrets ?? []) if (pull.name !== undefined) names.add(pull.name);
  return [...names];
}

/** Secret names a secret-binder backend spec refers to (its credentials), anywhere in the spec. */
export function backendSecretRefs(spec: unknown): string[] {
  const names: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) for (const n of node) walk(n);
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'secretRef' && v !== null && typeof v === 'object' && typeof (v as { name?: unknown }).name === 'string') names.push((v as { name: string }).name);
        walk(v);
      }
    }
  };
  walk(spec);
  return names;
}

/** Whether a Secret is someone's machinery: owned, a service-account token, a Helm release. */
function managedSecret(secret: KubeObject): boolean {
  const meta = secret.metadata;
  if ((meta?.ownerReferences ?? []).length > 0) return true;
  if (meta?.annotations?.['kubernetes.io/service-account.name'] !== undefined) return true;
  if (meta?.labels?.['owner'] === 'helm' || (meta?.name ?? '').startsWith('sh.helm.release.')) return true;
  return false;
}

export interface ScanOptions {
  /** Secret names referenced from outside the scanned objects, per namespace (backends' credentials). */
  readonly externalReferences?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Whether Secrets were read (metadata only); without them the unreferenced rule does not run. */
  readonly secretsRead: boolean;
}

export function scan(inputs: readonly ScanInput[], options: ScanOptions): Finding[] {
  const findings: Finding[] = [];
  const referenced = new Map<string, Set<string>>();
  for (const [ns, names] of options.externalReferences ?? []) referenced.set(ns, new Set(names));
  const secrets: ScanInput[] = [];

  for (const input of inputs) {
    const { object } = input;
    const kind = object.kind ?? '';
    const namespace = object.metadata?.namespace ?? 'default';
    const name = object.metadata?.name ?? '';
    if (kind === 'Secret') {
      secrets.push(input);
      continue;
    }
    const specPath = podSpecPaths[kind];
    if (specPath === undefined) continue;
    const spec = dig(object, specPath) as V1PodSpec | undefined;
    if (spec === undefined) continue;
    const refs = referenced.get(namespace) ?? new Set<string>();
    for (const secret of referencedSecrets(spec)) refs.add(secret);
    referenced.set(namespace, refs);
    // A pod of a scanned owner repeats its owner's template: report the owner only.
    if (kind === 'Pod' && (object.metadata?.ownerReferences ?? []).some((o) => o.controller === true && podOwnerKinds.has(o.kind))) continue;

    const at = (path: readonly (string | number)[], container: string | undefined, rule: RuleId, message: string, suggested?: object): void => {
      const line = input.lineOf?.(path);
      findings.push({
        rule,
        severity: ruleById(rule).severity,
        message,
        location: {
          kind, namespace, name,
          ...(container === undefined ? {} : { container }),
          fieldPath: pathText(path),
          ...(input.file === undefined ? {} : { file: input.file }),
          ...(line === undefined ? {} : { line }),
        },
        ...(suggested === undefined ? {} : { suggestion: suggested }),
      });
    };

    for (const { container, path } of containersOf(spec, specPath)) {
      for (const [i, env] of (container.env ?? []).entries()) {
        const envPath = [...path, 'env', i];
        const secretRef = env.valueFrom?.secretKeyRef;
        if (secretRef !== undefined) {
          at([...envPath, 'valueFrom', 'secretKeyRef'], container.name, 'SBS004', `env ${env.name} is Secret ${secretRef.name}'s key ${secretRef.key} in the process environment`,
            suggestion(object, [container.name], { path: fileName(secretRef.key), key: `${namespace}/${secretRef.name}`, property: secretRef.key }));
          continue;
        }
        if (env.value === undefined) continue;
        const hit = checkEnvLiteral(env.name, env.value);
        if (hit === undefined) continue;
        at([...envPath, 'value'], container.name, hit.rule, `env ${env.name} ${hit.what}`,
          suggestion(object, [container.name], { path: fileName(env.name), key: `${namespace}/${name}`, property: env.name.toLowerCase() }));
      }
      for (const [i, from] of (container.envFrom ?? []).entries()) {
        if (from.secretRef?.name === undefined) continue;
        at([...path, 'envFrom', i, 'secretRef'], container.name, 'SBS005', `envFrom puts every key of Secret ${from.secretRef.name} in the process environment`,
          suggestion(object, [container.name], { path: `${fileName(from.secretRef.name)}.json`, key: `${namespace}/${from.secretRef.name}` }));
      }
    }
    for (const [i, volume] of (spec.volumes ?? []).entries()) {
      const secretNames = [
        ...(volume.secret?.secretName === undefined ? [] : [{ secret: volume.secret.secretName, path: [...specPath, 'volumes', i, 'secret'] }]),
        ...(volume.projected?.sources ?? []).flatMap((s, j) => (s.secret?.name === undefined ? [] : [{ secret: s.secret.name, path: [...specPath, 'volumes', i, 'projected', 'sources', j, 'secret'] }])),
      ];
      for (const { secret, path } of secretNames) {
        const users = containersOf(spec, specPath).filter(({ container }) => (container.volumeMounts ?? []).some((m) => m.name === volume.name)).map(({ container }) => container.name);
        at(path, users.length === 0 ? undefined : users.join(','), 'SBS006', `volume ${volume.name} mounts Secret ${secret}`,
          suggestion(object, users, { path: fileName(secret), key: `${namespace}/${secret}` }));
      }
    }
  }

  for (const input of secrets) {
    const { object } = input;
    const namespace = object.metadata?.namespace ?? 'default';
    const name = object.metadata?.name ?? '';
    const base = { kind: 'Secret', namespace, name, ...(input.file === undefined ? {} : { file: input.file }) };
    const hasData = Object.keys((object as { data?: object }).data ?? {}).length + Object.keys((object as { stringData?: object }).stringData ?? {}).length > 0;
    if (input.file !== undefined && hasData) {
      const line = input.lineOf?.(['metadata', 'name']);
      findings.push({ rule: 'SBS008', severity: ruleById('SBS008').severity, message: `Secret ${name} carries its values in a manifest file`, location: { ...base, fieldPath: 'data', ...(line === undefined ? {} : { line }) } });
    }
    if (!options.secretsRead || managedSecret(object) || referenced.get(namespace)?.has(name) === true) continue;
    const line = input.lineOf?.(['metadata', 'name']);
    findings.push({ rule: 'SBS007', severity: ruleById('SBS007').severity, message: `Secret ${name} is referenced by no workload, pod or backend of namespace ${namespace}`, location: { ...base, fieldPath: 'metadata.name', ...(line === undefined ? {} : { line }) } });
  }
  return findings;
}
