import type { ClusterSecretBackendAccessRule } from '../../api/v1alpha1/index.ts';
import { matchesLabelSelector } from './label-selector.ts';

export type AccessDecision = { readonly allowed: true } | { readonly allowed: false; readonly message: string };

/**
 * A ClusterSecretBackend's access rules applied to one binding: its namespace must be admitted by
 * a rule, and every key it reads must start with a prefix of a rule admitting that namespace.
 * The message names the namespace and the first refused key, never a value.
 */
export function checkAccess(
  rules: readonly ClusterSecretBackendAccessRule[],
  namespace: { readonly name: string; readonly labels: Readonly<Record<string, string>> | undefined },
  keys: readonly string[],
  backendName: string,
): AccessDecision {
  const admitting = rules.filter((rule) =>
    rule.namespaces !== undefined ? rule.namespaces.includes(namespace.name) : matchesLabelSelector(rule.namespaceSelector, namespace.labels),
  );
  if (admitting.length === 0) {
    return { allowed: false, message: `ClusterSecretBackend ${backendName} does not admit namespace ${namespace.name}` };
  }
  const prefixes = admitting.flatMap((rule) => rule.keyPrefixes);
  const refused = keys.find((key) => !prefixes.some((prefix) => key.startsWith(prefix)));
  if (refused !== undefined) {
    return { allowed: false, message: `ClusterSecretBackend ${backendName} does not allow namespace ${namespace.name} to read key "${refused}"` };
  }
  return { allowed: true };
}
