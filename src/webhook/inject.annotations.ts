import { createHash } from 'node:crypto';
import { driverName } from '../broker/broker.protocol.ts';

/**
 * The pod labels and annotations a developer writes to ask for injection, and the names the
 * webhook derives from them. Pure functions only.
 */

/** `secretbinder.dev/inject: "true"` selects the pod (the MutatingWebhookConfiguration's objectSelector). */
export const injectLabel = `${driverName}/inject`;
/** Comma-separated SecretBinding names (same namespace as the pod). */
export const bindingsAnnotation = `${driverName}/bindings`;
/** Mount path for every injected binding without its own path. */
export const mountPathAnnotation = `${driverName}/mount-path`;
/** Mount path of one binding: `secretbinder.dev/mount-path.<binding>`. */
export const mountPathAnnotationOf = (binding: string): string => `${mountPathAnnotation}.${binding}`;
/** Stamped on injected pods (value: the injected bindings); its presence means "never again". */
export const injectedAnnotation = `${driverName}/injected`;

export const defaultMountPath = (binding: string): string => `/var/run/secrets/secretbinder/${binding}`;

/** Namespaces whose pods are never injected (plus the operator's own). */
export const systemNamespaces: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface InjectRequest {
  readonly bindings: readonly { readonly name: string; readonly mountPath: string }[];
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

/** Reads the bindings and their mount paths from a pod's annotations; every problem at once. */
export function parseInjectAnnotations(annotations: Readonly<Record<string, string>>): Parsed<InjectRequest> {
  const raw = annotations[bindingsAnnotation];
  if (raw === undefined || raw.trim() === '') {
    return { ok: false, message: `annotation ${bindingsAnnotation} is required on pods labelled ${injectLabel}="true" (comma-separated SecretBinding names)` };
  }
  const names = [...new Set(raw.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  const problems: string[] = [];
  const bindings: { name: string; mountPath: string }[] = [];
  for (const name of names) {
    if (name.length > 253 || !dnsSubdomain.test(name)) {
      problems.push(`annotation ${bindingsAnnotation}: "${name}" is not a valid SecretBinding name`);
      continue;
    }
    const mountPath = annotations[mountPathAnnotationOf(name)] ?? annotations[mountPathAnnotation] ?? defaultMountPath(name);
    const pathProblem = checkMountPath(mountPath);
    if (pathProblem !== undefined) problems.push(`mount path of binding ${name}: ${pathProblem}`);
    bindings.push({ name, mountPath });
  }
  const byPath = new Map<string, string>();
  for (const b of bindings) {
    const other = byPath.get(b.mountPath);
    if (other !== undefined) problems.push(`bindings ${other} and ${b.name} both mount at ${b.mountPath}; set ${mountPathAnnotation}.<binding> for each`);
    byPath.set(b.mountPath, b.name);
  }
  return problems.length > 0 ? { ok: false, message: problems.join('; ') } : { ok: true, value: { bindings } };
}

function checkMountPath(path: string): string | undefined {
  if (!path.startsWith('/')) return `"${path}" must be an absolute path`;
  if (path.split('/').includes('..')) return `"${path}" must not contain ".."`;
  if (path.includes(':')) return `"${path}" must not contain ":"`;
  return undefined;
}

/**
 * The pod volume name of a binding: `secretbinder-<binding>` when that is a valid DNS-1123 label,
 * else a shortened form with a hash so long or dotted binding names still get a unique name.
 */
export function volumeNameOf(binding: string): string {
  const plain = `secretbinder-${binding}`;
  if (plain.length <= 63 && dnsLabel.test(plain)) return plain;
  const hash = createHash('sha256').update(binding).digest('hex').slice(0, 8);
  const stem = binding.replace(/\./g, '-').slice(0, 40).replace(/-+$/, '');
  return `secretbinder-${stem}-${hash}`;
}
