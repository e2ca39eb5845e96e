import { describe, expect, it } from '@jest/globals';
import { V1ObjectMeta, type KubernetesObject } from '@kubernetes/client-node';
import { ObjectStore, objectKey, splitKey } from './object-store.ts';

function obj(namespace: string | undefined, name: string, rv: string, node?: string): KubernetesObject & { spec?: { nodeName?: string } } {
  const metadata = Object.assign(new V1ObjectMeta(), namespace === undefined ? {} : { namespace }, { name, resourceVersion: rv });
  return { metadata, spec: node === undefined ? {} : { nodeName: node } };
}

describe('ObjectStore', () => {
  it('keys namespaced and cluster-scoped objects', () => {
    expect(objectKey(obj('ns', 'a', '1'))).toBe('ns/a');
    expect(objectKey(obj(undefined, 'node-1', '1'))).toBe('node-1');
    expect(splitKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitKey('node-1')).toEqual({ namespace: undefined, name: 'node-1' });
  });

  it('keeps indexes in step with updates and removals, including an index added later', () => {
    const store = new ObjectStore<ReturnType<typeof obj>>();
    store.upsert(obj('a', 'p1', '1', 'n1'));
    store.upsert(obj('a', 'p2', '1', 'n1'));
    store.upsert(obj('b', 'p3', '1', 'n2'));
    store.addIndex('node', (o) => (o.spec?.nodeName === undefined ? [] : [o.spec.nodeName]));
    expect(store.byIndex('node', 'n1').map(objectKey).sort()).toEqual(['a/p1', 'a/p2']);
    store.upsert(obj('a', 'p2', '2', 'n2'));
    expect(store.byIndex('node', 'n1').map(objectKey)).toEqual(['a/p1']);
    expect(store.byIndex('node', 'n2').map(objectKey).sort()).toEqual(['a/p2', 'b/p3']);
    expect(store.remove('b/p3')).toBeDefined();
    expect(store.byIndex('node', 'n2').map(objectKey)).toEqual(['a/p2']);
    expect(store.listNamespace('b')).toEqual([]);
    expect(store.listNamespace('a')).toHaveLength(2);
    expect(() => store.byIndex('missing', 'x')).toThrow(/no index/);
  });

  it('replace() reports added, updated (by resourceVersion) and deleted objects', () => {
    const store = new ObjectStore<ReturnType<typeof obj>>();
    const same = obj('a', 'same', '1');
    store.upsert(same);
    store.upsert(obj('a', 'changed', '1'));
    store.upsert(obj('a', 'gone', '1'));
    const diff = store.replace([obj('a', 'same', '1'), obj('a', 'changed', '2'), obj('a', 'new', '1')]);
    expect(diff.added.map(objectKey)).toEqual(['a/new']);
    expect(diff.updated.map((u) => [u.old.metadata?.resourceVersion, u.current.metadata?.resourceVersion])).toEqual([['1', '2']]);
    expect(diff.deleted.map(objectKey)).toEqual(['a/gone']);
    // An unchanged object keeps its cached instance.
    expect(store.get('a/same')).toBe(same);
    expect(store.size).toBe(3);
  });
});
