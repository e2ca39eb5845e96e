import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { entitlement } from './entitlement.ts';

const binding: SecretBinding = {
  apiVersion: 'secretbinder.dev/v1alpha1',
  kind: 'SecretBinding',
  metadata: { name: 'web', namespace: 'apps' },
  spec: {
    backendRef: { kind: 'SecretBackend', name: 'b' },
    podSelector: { matchLabels: { app: 'web' } },
    serviceAccountNames: ['web'],
    containers: ['app', 'setup'],
    files: [{ path: 'a', key: 'k' }],
  },
};

const mount = [{ name: 'secrets', mountPath: '/s' }];

function pod(overrides: { labels?: Record<string, string>; sa?: string; init?: string[]; containers?: string[]; ephemeral?: string[]; bindingAttr?: string; driver?: string; deleting?: boolean } = {}): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'apps', uid: 'u', labels: overrides.labels ?? { app: 'web' }, ...(overrides.deleting === true ? { deletionTimestamp: new Date() } : {}) },
    spec: {
      serviceAccountName: overrides.sa ?? 'web',
      initContainers: (overrides.init ?? []).map((name) => ({ name, volumeMounts: mount })),
      containers: [{ name: 'plain' }, ...(overrides.containers ?? ['app']).map((name) => ({ name, volumeMounts: mount }))],
      ephemeralContainers: (overrides.ephemeral ?? []).map((name) => ({ name, volumeMounts: mount })),
      volumes: [
        { name: 'secrets', csi: { driver: overrides.driver ?? 'secretbinder.dev', volumeAttributes: { binding: overrides.bindingAttr ?? 'web' } } },
      ],
    },
    status: { phase: 'Pending' },
  };
}

describe('entitlement', () => {
  it('admits a selected pod whose mounting containers are all listed, naming them', () => {
    expect(entitlement(binding, pod({ init: ['setup'] }))).toEqual({ entitled: true, containers: ['app', 'setup'] });
  });

  it.each([
    ['an unlisted regular container', pod({ containers: ['app', 'sidecar'] }), /sidecar/],
    ['an unlisted init container', pod({ init: ['fetch'] }), /fetch/],
    ['an unlisted ephemeral container', pod({ ephemeral: ['debugger'] }), /debugger/],
    ['a pod outside the podSelector', pod({ labels: { app: 'other' } }), /podSelector/],
    ['a pod with another service account', pod({ sa: 'other' }), /serviceAccountNames/],
    ['a pod whose volume names another binding', pod({ bindingAttr: 'other' }), /no secretbinder.dev volume/],
    ['a pod whose volume is another driver', pod({ driver: 'secrets-store.csi.k8s.io' }), /no secretbinder.dev volume/],
    ['a terminating pod', pod({ deleting: true }), /terminating/],
  ])('refuses %s', (_what, subject, detail) => {
    const decision = entitlement(binding, subject);
    expect(decision.entitled).toBe(false);
    if (!decision.entitled) expect(decision.detail).toMatch(detail);
  });
});
