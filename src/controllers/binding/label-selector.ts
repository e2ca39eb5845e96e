import type { V1LabelSelector } from '@kubernetes/client-node';

/**
 * Whether labels match a metav1.LabelSelector (matchLabels AND every matchExpression), with the
 * API server's semantics: an empty selector matches everything.
 */
export function matchesLabelSelector(selector: V1LabelSelector | undefined, labels: Readonly<Record<string, string>> | undefined): boolean {
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const expression of selector?.matchExpressions ?? []) {
    const present = Object.hasOwn(have, expression.key);
    const value = have[expression.key];
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
        if (!present || value === undefined || !values.includes(value)) return false;
        break;
      case 'NotIn':
        if (present && value !== undefined && values.includes(value)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        // The API server validates operators; an unknown one matches nothing rather than everything.
        return false;
    }
  }
  return true;
}
