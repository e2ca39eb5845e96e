import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { optedInPodConditions, webhookConfigurations } from './webhook-configurations.ts';

/** `deploy/webhook.yaml` ships exactly what `webhookConfigurations` builds for a Service. */

const deployed = webhookConfigurations({
  names: { mutating: 'secret-binder-webhook', validating: 'secret-binder-webhook' },
  clientConfig: (path) => ({ service: { namespace: 'secret-binder-system', name: 'secret-binder-webhook', port: 443, path } }),
  excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease', 'secret-binder-system'],
});

describe('deploy/webhook.yaml', () => {
  const docs = parseAllDocuments(readFileSync(join(import.meta.dirname, '..', '..', 'deploy', 'webhook.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string });

  it('holds the configurations webhookConfigurations builds', () => {
    expect(docs.find((d) => d.kind === 'MutatingWebhookConfiguration')).toEqual(deployed.mutating);
    expect(docs.find((d) => d.kind === 'ValidatingWebhookConfiguration')).toEqual(deployed.validating);
  });

  it('lets the controller get and update exactly these configurations (caBundle upkeep)', () => {
    const role = docs.find((d) => d.kind === 'ClusterRole') as unknown as { rules: { resources: string[]; resourceNames: string[]; verbs: string[] }[] } | undefined;
    expect(role?.rules).toEqual([
      {
        apiGroups: ['admissionregistration.k8s.io'],
        resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'],
        resourceNames: [deployed.mutating.metadata?.name, deployed.validating.metadata?.name].filter((n, i, all) => all.indexOf(n) === i),
        verbs: ['get', 'update'],
      },
    ]);
  });

  it('scopes mutate to labelled pods, fails closed, no side effects, short timeout', () => {
    const m = deployed.mutating.webhooks?.[0];
    const v = deployed.validating.webhooks?.[0];
    expect(m?.objectSelector).toEqual({ matchLabels: { 'secretbinder.dev/inject': 'true' } });
    expect(v?.objectSelector).toBeUndefined();
    for (const w of [m, v]) {
      expect(w?.failurePolicy).toBe('Fail');
      expect(w?.sideEffects).toBe('None');
      expect(w?.timeoutSeconds).toBeLessThanOrEqual(5);
      expect(w?.namespaceSelector?.matchExpressions?.[0]?.values).toEqual(expect.arrayContaining(['kube-system', 'secret-binder-system']));
    }
    expect(v?.rules?.flatMap((r) => r.resources)).toEqual(['pods', 'pods/ephemeralcontainers']);
  });

  it('sends only opted-in pods: the inject label or a CSI volume of our driver (matchConditions, ADR 0094)', () => {
    for (const w of [deployed.mutating.webhooks?.[0], deployed.validating.webhooks?.[0]]) expect(w?.matchConditions).toEqual(optedInPodConditions);
    const [condition] = optedInPodConditions;
    expect(condition?.expression).toContain("object.metadata.labels['secretbinder.dev/inject'] == 'true'");
    expect(condition?.expression).toContain("object.spec.volumes.exists(v, has(v.csi) && v.csi.driver == 'secretbinder.dev')");
  });
});
