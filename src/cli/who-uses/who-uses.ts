import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { isConsumer, workloadOf } from '../../controllers/binding/consumers.ts';
import { boundVolumes, deliveryOf, nodeOf, podContainers, type Delivery } from '../binding-facts.ts';

/**
 * `who-uses` as plain data: every container that consumes a binding (or any binding reading one
 * backend key), with its pod, node, workload and whether it holds the latest content. Pure.
 */

export interface Consumer {
  readonly namespace: string;
  readonly binding: string;
  readonly backend: { readonly kind: string; readonly name: string };
  /** The backend keys the binding reads. */
  readonly keys: readonly string[];
  readonly pod: string;
  readonly container: string;
  readonly node: string;
  readonly workload: string;
  readonly delivered: Delivery;
  /** The content HMAC the binding's status says is current. */
  readonly latestContentHmac?: string;
}

/** Every backend key a binding reads (single files and formatted files' items), sorted. */
export function bindingKeys(binding: SecretBinding): string[] {
  const keys = binding.spec.files.flatMap((f) => (f.format !== undefined ? (f.items ?? []).map((i) => i.key) : f.key === undefined ? [] : [f.key]));
  return [...new Set(keys)].sort();
}

/** Whether a binding reads `key` from the backend named `backend` (of `kind`, if given). */
export function readsKey(binding: SecretBinding, backend: string, key: string, kind?: string): boolean {
  const ref = binding.spec.backendRef;
  if (ref.name !== backend) return false;
  if (kind !== undefined && (ref.kind ?? 'SecretBackend') !== kind) return false;
  return bindingKeys(binding).includes(key);
}

/**
 * The consumers of `bindings`: containers of alive, selected pods that mount the binding's volume
 * and that the binding lists (anything else receives nothing: `explain` says why).
 */
export function consumersOf(bindings: readonly SecretBinding[], pods: readonly V1Pod[], allBindings: readonly SecretBinding[]): Consumer[] {
  const byNamespace = new Map<string, SecretBinding[]>();
  for (const b of allBindings) {
    const ns = b.metadata.namespace ?? '';
    byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), b]);
  }
  const consumers: Consumer[] = [];
  for (const binding of bindings) {
    const namespace = binding.metadata.namespace ?? '';
    const name = binding.metadata.name ?? '';
    for (const pod of pods) {
      if (pod.metadata?.namespace !== namespace || !isConsumer(binding, pod)) continue;
      const volumes = new Set(boundVolumes(pod).filter((v) => v.binding === name).map((v) => v.volume));
      if (volumes.size === 0) continue;
      const containers = podContainers(pod);
      const mounting = containers.filter((c) => c.mounts.some((m) => volumes.has(m.volume)));
      // The broker refuses the volume when any container mounting it is not listed (invariant 3).
      if (mounting.some((c) => !binding.spec.containers.includes(c.name))) continue;
      const delivered = deliveryOf(binding, pod, byNamespace.get(namespace) ?? []);
      for (const container of mounting) {
        consumers.push({
          namespace,
          binding: name,
          backend: { kind: binding.spec.backendRef.kind ?? 'SecretBackend', name: binding.spec.backendRef.name },
          keys: bindingKeys(binding),
          pod: pod.metadata.name ?? '',
          container: container.name,
          node: nodeOf(pod),
          workload: workloadOf(pod),
          delivered,
          ...(binding.status?.contentHmac === undefined ? {} : { latestContentHmac: binding.status.contentHmac }),
        });
      }
    }
  }
  return consumers.sort((a, b) => `${a.namespace}/${a.binding}/${a.pod}/${a.container}`.localeCompare(`${b.namespace}/${b.binding}/${b.pod}/${b.container}`));
}

/** `--stale`: the consumers not known to hold the latest content (behind, or unknown while some are). */
export function behind(consumers: readonly Consumer[]): Consumer[] {
  return consumers.filter((c) => c.delivered === 'stale' || c.delivered === 'unknown' || c.delivered === 'none');
}

function quote(id: string): string {
  return `"${id.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** The backend → key → binding → pod → container graph, in Graphviz's dot language. */
export function toDot(consumers: readonly Consumer[], bindings: readonly SecretBinding[]): string {
  const lines = ['digraph secretbinder {', '  rankdir=LR;', '  node [shape=box, fontname="sans-serif"];'];
  const edges = new Set<string>();
  const nodes = new Map<string, string>();
  const node = (id: string, label: string, shape: string): string => {
    nodes.set(id, `  ${quote(id)} [label=${quote(label)}, shape=${shape}];`);
    return quote(id);
  };
  for (const binding of bindings) {
    const ns = binding.metadata.namespace ?? '';
    const ref = binding.spec.backendRef;
    const backendNs = (ref.kind ?? 'SecretBackend') === 'ClusterSecretBackend' ? '' : `${ns}/`;
    const backend = node(`backend:${backendNs}${ref.name}`, `${ref.kind ?? 'SecretBackend'}\n${backendNs}${ref.name}`, 'cylinder');
    const b = node(`binding:${ns}/${binding.metadata.name ?? ''}`, `SecretBinding\n${ns}/${binding.metadata.name ?? ''}`, 'box');
    for (const key of bindingKeys(binding)) {
      const k = node(`key:${backendNs}${ref.name}:${key}`, key, 'note');
      edges.add(`  ${backend} -> ${k};`);
      edges.add(`  ${k} -> ${b};`);
    }
  }
  for (const c of consumers) {
    const b = quote(`binding:${c.namespace}/${c.binding}`);
    const pod = node(`pod:${c.namespace}/${c.pod}`, `Pod ${c.namespace}/${c.pod}\nnode ${c.node}`, 'ellipse');
    const container = node(`container:${c.namespace}/${c.pod}/${c.container}`, `${c.container}\n${c.delivered}`, c.delivered === 'current' ? 'ellipse' : 'octagon');
    edges.add(`  ${b} -> ${pod};`);
    edges.add(`  ${pod} -> ${container};`);
  }
  return [...lines, ...nodes.values(), ...edges, '}', ''].join('\n');
}
