import type {
  AdmissionregistrationV1WebhookClientConfig,
  V1LabelSelector,
  V1MatchCondition,
  V1MutatingWebhookConfiguration,
  V1ValidatingWebhookConfiguration,
} from '@kubernetes/client-node';
import { driverName } from '../broker/broker.protocol.ts';
import { injectLabel } from './inject.annotations.ts';
import type { WebhookConfigurationNames } from './ca-bundle.reconciler.ts';

export interface WebhookConfigurationOptions {
  readonly names: WebhookConfigurationNames;
  /** Where the API server reaches us; `path` is set per webhook. Service in a cluster, url in tests. */
  readonly clientConfig: (path: '/mutate' | '/validate') => AdmissionregistrationV1WebhookClientConfig;
  /** Namespaces never sent to us: kube-system and the release namespace (ADR 0091). */
  readonly excludedNamespaces: readonly string[];
  /** Extra namespace labels to require (tests scope their webhooks to their own namespace). */
  readonly namespaceMatchLabels?: Readonly<Record<string, string>>;
}

/**
 * The API server sends a pod to us only when it opts in: the inject label, or a CSI volume of our
 * driver (ADR 0094). Evaluated by the API server (CEL, GA in Kubernetes 1.30) before any call, so
 * every other pod is admitted without waiting on the webhook, even while no replica answers. Pod
 * volumes are immutable: on UPDATE (and the ephemeralcontainers subresource) `object` has the same
 * volumes as at CREATE.
 */
export const optedInPodConditions: readonly V1MatchCondition[] = [
  {
    name: 'pod-uses-secretbinder',
    expression:
      `(has(object.metadata.labels) && '${injectLabel}' in object.metadata.labels && object.metadata.labels['${injectLabel}'] == 'true')` +
      ` || (has(object.spec.volumes) && object.spec.volumes.exists(v, has(v.csi) && v.csi.driver == '${driverName}'))`,
  },
];

/**
 * The MutatingWebhookConfiguration and ValidatingWebhookConfiguration of the webhook, as data:
 * `deploy/webhook.yaml` is this with a Service client config, and the integration suite registers
 * exactly these objects with a URL. Mutate sees only labelled pods (objectSelector); validate sees
 * pods that are labelled or carry a CSI volume of our driver ({@link optedInPodConditions}), also on
 * the ephemeralcontainers subresource; both fail closed for those pods only, have no side effects
 * and answer within a few seconds.
 */
export function webhookConfigurations(options: WebhookConfigurationOptions): {
  mutating: V1MutatingWebhookConfiguration;
  validating: V1ValidatingWebhookConfiguration;
} {
  const namespaceSelector: V1LabelSelector = {
    matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...options.excludedNamespaces] }],
    ...(options.namespaceMatchLabels === undefined ? {} : { matchLabels: { ...options.namespaceMatchLabels } }),
  };
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    timeoutSeconds: 5,
    matchPolicy: 'Equivalent',
    namespaceSelector,
  };
  return {
    mutating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: options.names.mutating, labels: { 'app.kubernetes.io/name': 'secret-binder' } },
      webhooks: [
        {
          name: 'inject.secretbinder.dev',
          clientConfig: options.clientConfig('/mutate'),
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
          objectSelector: { matchLabels: { [injectLabel]: 'true' } },
          matchConditions: optedInPodConditions.map(({ name, expression }) => ({ name, expression })),
          // A pod that asked for secrets must not start without them.
          failurePolicy: 'Fail',
          reinvocationPolicy: 'Never',
          ...common,
        },
      ],
    },
    validating: {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: options.names.validating, labels: { 'app.kubernetes.io/name': 'secret-binder' } },
      webhooks: [
        {
          name: 'mounts.secretbinder.dev',
          clientConfig: options.clientConfig('/validate'),
          rules: [
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'], scope: 'Namespaced' },
            { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods/ephemeralcontainers'], scope: 'Namespaced' },
          ],
          matchConditions: optedInPodConditions.map(({ name, expression }) => ({ name, expression })),
          // A mount of a bound volume is judged before the pod exists; only opted-in pods wait on it.
          failurePolicy: 'Fail',
          ...common,
        },
      ],
    },
  };
}
