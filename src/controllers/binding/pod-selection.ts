import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import type { CacheReader } from '../../runtime/object-store.ts';
import { isConsumer } from './consumers.ts';
import { matchesLabelSelector } from './label-selector.ts';

/**
 * Which pods a binding selects and which bindings select a pod, through two cache indexes instead
 * of a scan of every pod (or binding) of the namespace (ADR 0201). At 5,000 bindings and 20,000
 * pods in 10 namespaces a scan is 2,000 selector matches per binding reconcile, and every pod event
 * queued all 500 bindings of its namespace.
 */

/** Pods indexed under `<namespace>/<label>=<value>`, one value per label. */
export const podLabelIndex = 'podLabel';

/** Bindings indexed under one `matchLabels` pair of their selector, or `<namespace>/*` without any. */
export const bindingSelectorIndex = 'bindingSelector';

const anyLabels = '*';

function labelValue(namespace: string, key: string, value: string): string {
  // A namespace has no '/', a label key has no '=': the value is unambiguous.
  return `${namespace}/${key}=${value}`;
}

export function podLabelValues(pod: V1Pod): readonly string[] {
  const namespace = pod.metadata?.namespace ?? '';
  return Object.entries(pod.metadata?.labels ?? {}).map(([k, v]) => labelValue(namespace, k, v));
}

/**
 * The first `matchLabels` pair (in key order) of the binding's selector: a pod it selects carries
 * that pair, so looking the pod's labels up finds the binding. A selector without `matchLabels`
 * (expressions only, or empty) may select any pod: it is indexed under the namespace's wildcard.
 */
export function bindingSelectorValues(binding: SecretBinding): readonly string[] {
  const namespace = binding.metadata.namespace ?? '';
  const pairs = Object.entries(binding.spec.podSelector.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const first = pairs[0];
  return [first === undefined ? `${namespace}/${anyLabels}` : labelValue(namespace, first[0], first[1])];
}

/** The pods that may match the binding's selector: from the label index when it names a pair. */
function candidatePods(binding: SecretBinding, pods: CacheReader<V1Pod>): readonly V1Pod[] {
  const value = bindingSelectorValues(binding)[0] ?? '';
  return value.endsWith(`/${anyLabels}`) ? pods.listNamespace(binding.metadata.namespace ?? '') : pods.byIndex(podLabelIndex, value);
}

/** The binding's consuming pods (see {@link isConsumer}). `pods` must carry {@link podLabelIndex}. */
export function consumingPods(binding: SecretBinding, pods: CacheReader<V1Pod>): V1Pod[] {
  return candidatePods(binding, pods).filter((pod) => isConsumer(binding, pod));
}

/**
 * The bindings whose podSelector matches the pod's labels (service accounts and phase are the
 * reconciler's to judge). `bindings` must carry {@link bindingSelectorIndex}.
 */
export function bindingsSelecting(pod: V1Pod, bindings: CacheReader<SecretBinding>): SecretBinding[] {
  const namespace = pod.metadata?.namespace ?? '';
  const labels = pod.metadata?.labels;
  const found: SecretBinding[] = [];
  const seen = new Set<string>();
  for (const value of [...podLabelValues(pod), `${namespace}/${anyLabels}`]) {
    for (const b of bindings.byIndex(bindingSelectorIndex, value)) {
      const name = b.metadata.name ?? '';
      if (seen.has(name) || b.metadata.namespace !== namespace) continue;
      seen.add(name);
      if (matchesLabelSelector(b.spec.podSelector, labels)) found.push(b);
    }
  }
  return found;
}
