import { describe, expect, it } from '@jest/globals';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { certificateNames, consumerOf, MissingFieldError, parseRecord, renderDynamicFiles, serializeRecord, type LeaseRecord } from './lease-record.ts';

const binding = (spec: Partial<SecretBinding['spec']>): SecretBinding =>
  ({
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name: 'db', namespace: 'shop', uid: 'b1' },
    spec: { backendRef: { name: 'openbao' }, podSelector: {}, containers: ['app'], files: [], ...spec },
  });

const database = binding({
  dynamic: {
    path: 'database/creds/app',
    files: [
      { path: 'username', field: 'username' },
      { path: 'db.env', template: 'PGUSER={{ username }}\nPGPASSWORD={{password}}\n', mode: 0o400 },
      { path: 'ttl', field: 'ttl' },
    ],
  },
});

describe('dynamic files', () => {
  it('renders fields and templates, default mode 0440, non-strings as JSON', () => {
    const files = renderDynamicFiles(database, { username: 'v-app-1', password: 'pw', ttl: 30 });
    expect(files.map((f) => [f.path, f.mode, f.content.revealText()])).toEqual([
      ['username', 0o440, 'v-app-1'],
      ['db.env', 0o400, 'PGUSER=v-app-1\nPGPASSWORD=pw\n'],
      ['ttl', 0o440, '30'],
    ]);
  });

  it('names a missing field, never a value', () => {
    expect(() => renderDynamicFiles(database, { username: 'v-app-1', password: 'pw' })).toThrow(MissingFieldError);
    expect(() => renderDynamicFiles(database, { username: 'v-app-1', password: 'pw' })).toThrow(/"ttl"/);
  });

  it('keys consumers per pod or per workload', () => {
    expect(consumerOf(database, 'u1')).toBe('pod-u1');
    expect(consumerOf(binding({ dynamic: { path: 'a/b', scope: 'perWorkload', files: [{ path: 'x', field: 'x' }] } }), 'u1')).toBe('workload');
  });
});

describe('certificate names', () => {
  const pki = binding({ pki: { role: 'web', commonName: '{{ podName }}.{{ namespace }}.pod', dnsNames: ['web.{{namespace}}.svc'], spiffeId: 'spiffe://cluster.local/ns/{{ namespace }}/sa/{{ serviceAccount }}' } });

  it('renders common name, DNS names and the SPIFFE ID from the pod', () => {
    expect(certificateNames(pki, { name: 'web-0', namespace: 'shop', serviceAccount: 'web' })).toEqual({
      commonName: 'web-0.shop.pod',
      dnsNames: ['web.shop.svc'],
      uris: ['spiffe://cluster.local/ns/shop/sa/web'],
    });
  });

  it('refuses an unknown template name', () => {
    const bad = binding({ pki: { role: 'web', commonName: '{{ podIP }}' } });
    expect(() => certificateNames(bad, { name: 'web-0', namespace: 'shop', serviceAccount: 'web' })).toThrow(/podIP/);
  });
});

describe('lease records', () => {
  it('round-trip, and anything else is not a record', () => {
    const record: LeaseRecord = {
      version: 1, bindingUid: 'b1', consumer: 'pod-u1', pod: { name: 'web-0', uid: 'u1' }, leaseId: 'database/creds/app/x', data: { username: 'v' },
      serial: 1, issuedAt: 1, renewedAt: 1, expiresAt: 30_001, ttlSeconds: 30, renewable: true,
    };
    const stored = serializeRecord(record);
    expect(String(stored)).not.toContain('database/creds');
    expect(parseRecord(stored)).toEqual(record);
    expect(parseRecord(serializeRecord({ ...record, version: 2 } as unknown as LeaseRecord))).toBeUndefined();
  });
});
