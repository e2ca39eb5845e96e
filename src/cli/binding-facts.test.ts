import { describe, expect, it } from '@jest/globals';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { bindingFiles } from './binding-facts.ts';

const binding = {
  apiVersion: 'secretbinder.dev/v1alpha1',
  kind: 'SecretBinding',
  metadata: { name: 'mixed', namespace: 'app', generation: 1 },
  spec: {
    backendRef: { kind: 'SecretBackend', name: 'bao' },
    backends: [{ name: 'cloud', backendRef: { kind: 'SecretBackend', name: 'aws' } }],
    podSelector: {},
    containers: ['app'],
    files: [
      { path: 'db/password', key: 'app/db', property: 'password' },
      { path: 'api-key', backend: 'cloud', key: 'prod/api' },
      { path: 'cert.pem', from: { backend: 'cloud', key: 'prod/cert' }, fallback: { key: 'legacy/cert' } },
    ],
  },
  status: {
    backendVersions: [
      { key: 'app/db', version: '3' },
      { backend: 'cloud', key: 'prod/api', version: 'v-api' },
      { backend: 'default', key: 'legacy/cert', version: '7' },
    ],
    sources: [{ path: 'cert.pem', served: 'fallback' }],
  },
} as unknown as SecretBinding;

describe('bindingFiles', () => {
  it('names the backend of each source and, for a file with a fallback, which source served it (ADR 0240, 0241)', () => {
    const [db, api, cert] = bindingFiles(binding);
    expect(db?.sources).toEqual([{ key: 'app/db', property: 'password', requested: 'latest', resolvedVersions: ['3'] }]);
    expect(api?.sources).toEqual([{ backend: 'cloud', key: 'prod/api', requested: 'latest', resolvedVersions: ['v-api'] }]);
    expect(cert?.sources).toEqual([
      { backend: 'cloud', role: 'from', served: false, key: 'prod/cert', requested: 'latest', resolvedVersions: [] },
      { role: 'fallback', served: true, key: 'legacy/cert', requested: 'latest', resolvedVersions: ['7'] },
    ]);
  });
});
