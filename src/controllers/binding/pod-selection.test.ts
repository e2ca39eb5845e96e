import { describe, expect, it } from '@jest/globals';
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { ObjectStore } from '../../runtime/object-store.ts';
import { isConsumer } from './consumers.ts';
import { matchesLabelSelector } from './label-selector.ts';
import { bindingSelectorIndex, bindingSelectorValues, bindingsSelecting, consumingPods, podLabelIndex, podLabelValues } from './pod-selection.ts';

const pod = (namespace: string, name: string, labels: Record<string, string>, extra: Partial<V1Pod> = {}): V1Pod => ({
  metadata: { namespace, name, uid: `${namespace}-${name}`, resourceVersion: '1', labels },
  spec: { containers: [{ name: 'app' }], serviceAccountName: 'default' },
  status: { phase: 'Running' },
  ...extra,
});

const binding = (namespace: string, name: string, podSelector: V1LabelSelector, serviceAccountNames?: string[]): SecretBinding =>
  ({
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { namespace, name, resourceVersion: '1' },
    spec: { backendRef: { kind: 'SecretBackend', name: 'b' }, podSelector, containers: ['app'], files: [], ...(serviceAccountNames === undefined ? {} : { serviceAccountNames }) },
  });

function stores(pods: V1Pod[], bindings: SecretBinding[]): { pods: ObjectStore<V1Pod>; bindings: ObjectStore<SecretBinding> } {
  const podStore = new ObjectStore<V1Pod>();
  podStore.addIndex(podLabelIndex, podLabelValues);
  for (const p of pods) podStore.upsert(p);
  const bindingStore = new ObjectStore<SecretBinding>();
  bindingStore.addIndex(bindingSelectorIndex, bindingSelectorValues);
  for (const b of bindings) bindingStore.upsert(b);
  return { pods: podStore, bindings: bindingStore };
}

const names = (objs: readonly { metadata?: { name?: string } }[]): string[] => objs.map((o) => o.metadata?.name ?? '').sort();

describe('pods of a binding and bindings of a pod, through the indexes (ADR 0201)', () => {
  const pods = [
    pod('a', 'web-1', { app: 'web', tier: 'front' }),
    pod('a', 'web-2', { app: 'web', tier: 'back' }),
    pod('a', 'web-done', { app: 'web' }, { status: { phase: 'Succeeded' } }),
    pod('a', 'db-1', { app: 'db' }),
    pod('a', 'bare', {}),
    pod('b', 'web-1', { app: 'web' }),
  ];
  const bindings = [
    binding('a', 'web', { matchLabels: { app: 'web' } }),
    binding('a', 'web-front', { matchLabels: { tier: 'front', app: 'web' } }),
    binding('a', 'not-db', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['db'] }] }),
    binding('a', 'everything', {}),
    binding('a', 'web-sa', { matchLabels: { app: 'web' } }, ['other']),
    binding('b', 'web', { matchLabels: { app: 'web' } }),
  ];
  const { pods: podStore, bindings: bindingStore } = stores(pods, bindings);

  it('finds exactly the consuming pods a scan of the namespace finds', () => {
    for (const b of bindings) {
      const scanned = podStore.listNamespace(b.metadata.namespace ?? '').filter((p) => isConsumer(b, p));
      expect(names(consumingPods(b, podStore))).toEqual(names(scanned));
    }
    expect(names(consumingPods(bindings[1] as SecretBinding, podStore))).toEqual(['web-1']);
    expect(names(consumingPods(bindings[2] as SecretBinding, podStore))).toEqual(['bare', 'web-1', 'web-2']);
    expect(consumingPods(bindings[4] as SecretBinding, podStore)).toEqual([]);
  });

  it('finds exactly the bindings whose selector matches a pod, in its namespace only', () => {
    for (const p of pods) {
      const scanned = bindingStore.listNamespace(p.metadata?.namespace ?? '').filter((b) => matchesLabelSelector(b.spec.podSelector, p.metadata?.labels));
      expect(names(bindingsSelecting(p, bindingStore))).toEqual(names(scanned));
    }
    expect(names(bindingsSelecting(pods[0] as V1Pod, bindingStore))).toEqual(['everything', 'not-db', 'web', 'web-front', 'web-sa']);
    expect(names(bindingsSelecting(pods[3] as V1Pod, bindingStore))).toEqual(['everything']);
    expect(names(bindingsSelecting(pods[5] as V1Pod, bindingStore))).toEqual(['web']);
  });

  it('follows relabelled pods and changed selectors', () => {
    const { pods: ps, bindings: bs } = stores([pod('a', 'p', { app: 'web' })], [binding('a', 'web', { matchLabels: { app: 'web' } })]);
    ps.upsert(pod('a', 'p', { app: 'db' }, { metadata: { namespace: 'a', name: 'p', resourceVersion: '2', labels: { app: 'db' } } }));
    expect(consumingPods(binding('a', 'web', { matchLabels: { app: 'web' } }), ps)).toEqual([]);
    bs.upsert({ ...binding('a', 'web', { matchLabels: { app: 'db' } }), metadata: { namespace: 'a', name: 'web', resourceVersion: '2' } });
    expect(names(bindingsSelecting(ps.get('a/p') as V1Pod, bs))).toEqual(['web']);
  });
});
