import { describe, expect, it } from '@jest/globals';
import type { V1Container, V1EphemeralContainer, V1Pod } from '@kubernetes/client-node';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { AdmissionRequest } from './admission.ts';
import { validate } from './validate.ts';

const binding = (name: string, containers: string[]): SecretBinding =>
  ({ apiVersion: 'secretbinder.dev/v1alpha1', kind: 'SecretBinding', metadata: { name, namespace: 'shop' }, spec: { containers } }) as unknown as SecretBinding;
const bindings = [binding('db', ['app', 'migrate'])];
const lookup = (namespace: string, name: string): SecretBinding | undefined =>
  bindings.find((b) => b.metadata.namespace === namespace && b.metadata.name === name);

const volume = { name: 'creds', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } } };
const mount = (extra: Partial<{ subPath: string }> = {}): V1Container['volumeMounts'] => [{ name: 'creds', mountPath: '/etc/creds', readOnly: true, ...extra }];

function pod(spec: Partial<NonNullable<V1Pod['spec']>>): V1Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'shop' }, spec: { containers: [], volumes: [volume], ...spec } };
}

function req(object: V1Pod, extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return { uid: 'u', resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', object, ...extra };
}

describe('validate', () => {
  it('allows mounts from the containers the binding lists (init containers included)', () => {
    const p = pod({ initContainers: [{ name: 'migrate', volumeMounts: mount() }], containers: [{ name: 'app', volumeMounts: mount() }, { name: 'proxy' }] });
    expect(validate(req(p), lookup)).toEqual({ outcome: 'allowed', warnings: [] });
  });

  it('refuses a mount from a container the binding does not list, naming container and binding', () => {
    const p = pod({ containers: [{ name: 'app', volumeMounts: mount() }, { name: 'proxy', volumeMounts: mount() }] });
    const d = validate(req(p), lookup);
    expect(d.outcome).toBe('denied');
    expect(d.outcome === 'denied' && d.message).toBe('ContainerNotAllowed: container proxy mounts volume creds of SecretBinding db, which does not list it (listed: app, migrate)');
  });

  it('refuses an unlisted init container, a missing binding and a volume without binding', () => {
    const p = pod({
      initContainers: [{ name: 'setup', volumeMounts: mount() }],
      containers: [{ name: 'app', volumeMounts: [{ name: 'ghost', mountPath: '/g' }, { name: 'bare', mountPath: '/b' }] }],
      volumes: [volume, { name: 'ghost', csi: { driver: 'secretbinder.dev', volumeAttributes: { binding: 'gone' } } }, { name: 'bare', csi: { driver: 'secretbinder.dev' } }],
    });
    const d = validate(req(p), lookup);
    expect(d.outcome === 'denied' ? d.message.split('; ') : []).toEqual([
      'ContainerNotAllowed: init container setup mounts volume creds of SecretBinding db, which does not list it (listed: app, migrate)',
      'container app mounts volume ghost of SecretBinding shop/gone, which does not exist',
      'container app mounts volume bare of driver secretbinder.dev, which names no binding (volumeAttributes.binding)',
    ]);
  });

  it('ignores volumes of other drivers', () => {
    const p = pod({ containers: [{ name: 'proxy', volumeMounts: [{ name: 'x', mountPath: '/x' }] }], volumes: [{ name: 'x', csi: { driver: 'other.dev' } }] });
    expect(validate(req(p), lookup).outcome).toBe('allowed');
  });

  it('warns on subPath mounts of bound volumes', () => {
    const p = pod({ containers: [{ name: 'app', volumeMounts: mount({ subPath: 'password' }) }] });
    expect(validate(req(p), lookup)).toEqual({
      outcome: 'allowed',
      warnings: ['SubPathMount: container app mounts volume creds of SecretBinding db with subPath: files mounted by subPath never receive updates'],
    });
  });

  it('judges an ephemeral container added through the subresource, and only what was added', () => {
    const old = pod({ containers: [{ name: 'app', volumeMounts: mount() }] });
    const debug: V1EphemeralContainer = { name: 'debug', image: 'busybox', volumeMounts: mount() };
    const updated = pod({ containers: [{ name: 'app', volumeMounts: mount() }], ephemeralContainers: [debug] });
    const d = validate(req(updated, { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldObject: old }), lookup);
    expect(d.outcome === 'denied' && d.message).toBe('ContainerNotAllowed: ephemeral container debug mounts volume creds of SecretBinding db, which does not list it (listed: app, migrate)');
    const harmless = pod({ containers: [{ name: 'app', volumeMounts: mount() }], ephemeralContainers: [{ name: 'debug', image: 'busybox' }] });
    expect(validate(req(harmless, { operation: 'UPDATE', subResource: 'ephemeralcontainers', oldObject: old }), lookup).outcome).toBe('allowed');
  });

  it('lets an UPDATE through when the binding is gone but nothing new mounts it', () => {
    const p = pod({ containers: [{ name: 'app', volumeMounts: mount() }], volumes: [{ ...volume, csi: { ...volume.csi, volumeAttributes: { binding: 'deleted' } } }] });
    expect(validate(req(p), lookup).outcome).toBe('denied');
    expect(validate(req(p, { operation: 'UPDATE', oldObject: p }), lookup).outcome).toBe('allowed');
  });

  it('leaves DELETE and other subresources alone', () => {
    const p = pod({ containers: [{ name: 'proxy', volumeMounts: mount() }] });
    expect(validate(req(p, { operation: 'DELETE' }), lookup).outcome).toBe('allowed');
    expect(validate(req(p, { operation: 'UPDATE', subResource: 'status' }), lookup).outcome).toBe('allowed');
  });
});
