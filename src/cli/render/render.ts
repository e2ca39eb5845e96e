import type { V1PodSpec } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { isConsumer } from '../../controllers/binding/consumers.ts';
import { fileTemplates } from '../../controllers/binding/file-templates.ts';
import { renderFiles, type ValueRef } from '../../delivery/files/file-set.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { bindingFiles, boundVolumes, podContainers, type FileFacts } from '../binding-facts.ts';

/**
 * `render` as a pure function: what a pod would get from a (validated) binding — its mounts, file
 * tree, modes, formats, and each file's content with value *shapes* (`<key#property>`) in place
 * of values, or the sample values a user passed with `--values`. Nothing is read from a backend.
 */

/** Sample values: `{ KEY: "text" }`, `{ KEY: { property: "text" } }` or `{ "KEY#property": "text" }`. */
export type SampleValues = Readonly<Record<string, unknown>>;

export interface RenderedMount {
  readonly container: string;
  readonly mountPath: string;
}

export interface RenderedBinding {
  readonly binding: { readonly namespace: string; readonly name: string };
  readonly mounts: readonly RenderedMount[];
  readonly files: readonly (FileFacts & { readonly content: string })[];
}

/** The pod (or pod template) a binding is rendered for. */
export interface PodShape {
  readonly namespace?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly spec: V1PodSpec;
}

function shape(ref: ValueRef): string {
  const version = ref.version.kind === 'latest' ? '' : ref.version.kind === 'id' ? ` @${ref.version.id}` : ` @${ref.version.stage}`;
  return `<${ref.key}${ref.property === undefined ? '' : `#${ref.property}`}${version}>`;
}

function sample(values: SampleValues, ref: ValueRef): string | undefined {
  if (ref.property !== undefined) {
    const flat = values[`${ref.key}#${ref.property}`];
    if (typeof flat === 'string') return flat;
    let at: unknown = values[ref.key];
    for (const part of ref.property.split('.')) at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[part] : undefined;
    return typeof at === 'string' ? at : at === undefined ? undefined : JSON.stringify(at);
  }
  const whole = values[ref.key];
  return typeof whole === 'string' ? whole : whole === undefined ? undefined : JSON.stringify(whole);
}

/** Why a pod would get nothing from the binding, in the broker's words; undefined if it would. */
export function podRefusal(binding: SecretBinding, pod: PodShape): { reason: string; message: string } | undefined {
  const name = binding.metadata.name ?? '';
  const asPod = { metadata: { namespace: pod.namespace ?? binding.metadata.namespace, labels: { ...pod.labels } }, spec: pod.spec };
  const volumes = new Set(boundVolumes(asPod).filter((v) => v.binding === name).map((v) => v.volume));
  if (volumes.size === 0) return { reason: 'NotMounted', message: `the pod has no secretbinder.dev CSI volume for SecretBinding ${name}` };
  if (!isConsumer(binding, asPod)) return { reason: 'NotEntitled', message: `the pod does not match SecretBinding ${name}'s podSelector or serviceAccountNames` };
  const unlisted = podContainers(asPod).filter((c) => c.mounts.some((m) => volumes.has(m.volume)) && !binding.spec.containers.includes(c.name)).map((c) => c.name);
  if (unlisted.length > 0) return { reason: 'ContainerNotAllowed', message: `container ${unlisted.join(', ')} mounts the volume but SecretBinding ${name} does not list it` };
  return undefined;
}

export function renderBinding(binding: SecretBinding, pod: PodShape | undefined, values: SampleValues | undefined): RenderedBinding {
  const name = binding.metadata.name ?? '';
  let mounts: RenderedMount[] = binding.spec.containers.map((container) => ({ container, mountPath: '<mount path>' }));
  if (pod !== undefined) {
    const asPod = { metadata: { labels: { ...pod.labels } }, spec: pod.spec };
    const volumes = new Set(boundVolumes(asPod).filter((v) => v.binding === name).map((v) => v.volume));
    mounts = podContainers(asPod).flatMap((c) => c.mounts.filter((m) => volumes.has(m.volume)).map((m) => ({ container: c.name, mountPath: m.mountPath })));
  }
  const rendered = renderFiles(fileTemplates(binding.spec.files), (ref) => SecretValue.fromString((values === undefined ? undefined : sample(values, ref)) ?? shape(ref)));
  const facts = bindingFiles(binding);
  return {
    binding: { namespace: binding.metadata.namespace ?? 'default', name },
    mounts,
    files: facts.map((f, i) => ({ ...f, content: rendered[i]?.content.revealText() ?? '' })),
  };
}
