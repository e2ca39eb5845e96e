import { describe, expect, it } from '@jest/globals';
import { FakeClock } from './fake-clock.ts';
import { FakeListWatch, type FakeObject } from './fake-list-watch.ts';
import { Informer } from './informer.ts';
import { NamespacedInformers } from './namespaced-informers.ts';

describe('NamespacedInformers', () => {
  it('caches only the namespaces in its set, changing at run time, read as one cache', async () => {
    const clock = new FakeClock(0);
    const sources = new Map<string, FakeListWatch>();
    for (const ns of ['a', 'b', 'c']) {
      const source = new FakeListWatch(() => clock.now(), `pods in ${ns}`);
      source.put(ns, `${ns}-pod`, {}, { labels: { app: 'x' } });
      sources.set(ns, source);
    }
    const started: string[] = [];
    const set = new NamespacedInformers<FakeObject>({
      resource: 'pods',
      newInformer: (ns) => {
        started.push(ns);
        const source = sources.get(ns);
        if (source === undefined) throw new Error(`no source for ${ns}`);
        return new Informer<FakeObject>({ resource: 'pods', source, clock, relistPeriodMs: 0 });
      },
    });
    const events: string[] = [];
    set.addHandler({ add: (o) => events.push(`add ${o.metadata?.name}`), delete: (o) => events.push(`delete ${o.metadata?.name}`) });
    set.addIndex('app', (o) => [o.metadata?.labels?.app ?? '']);
    set.addNamespace('a');
    expect(set.hasSynced()).toBe(false); // not running yet

    const abort = new AbortController();
    const done = set.start(abort.signal);
    await clock.flush();
    expect(set.hasSynced()).toBe(true);
    expect(events).toEqual(['add a-pod']);

    expect(await set.whenNamespaceSynced('a')).toBe(true);
    expect(await set.whenNamespaceSynced('c')).toBe(false); // not in the set
    set.setNamespaces(['a', 'b']);
    expect(set.hasSynced()).toBe(false);
    let bSynced: boolean | undefined;
    void set.whenNamespaceSynced('b').then((synced) => { bSynced = synced; });
    await Promise.resolve();
    expect(bSynced).toBeUndefined();
    await clock.flush();
    expect(bSynced).toBe(true);
    expect(set.hasSynced()).toBe(true);
    expect(set.namespaces()).toEqual(['a', 'b']);
    expect(events).toEqual(['add a-pod', 'add b-pod']);
    expect(set.get('b/b-pod')?.metadata?.name).toBe('b-pod');
    expect(set.get('c/c-pod')).toBeUndefined();
    expect(set.byIndex('app', 'x').map((o) => o.metadata?.name).sort()).toEqual(['a-pod', 'b-pod']);
    sources.get('b')?.put('b', 'b-pod-2', {});
    expect(set.listNamespace('b')).toHaveLength(2);

    // Removing a namespace stops its watch and drops its cache without delete events.
    set.removeNamespace('a');
    await clock.flush();
    expect(sources.get('a')?.watching).toBe(false);
    expect(set.get('a/a-pod')).toBeUndefined();
    expect(set.list().map((o) => o.metadata?.name).sort()).toEqual(['b-pod', 'b-pod-2']);
    expect(events.filter((e) => e.startsWith('delete'))).toEqual([]);
    sources.get('a')?.put('a', 'a-late', {});
    expect(events).not.toContain('add a-late');

    abort.abort();
    await done;
    expect(sources.get('b')?.watching).toBe(false);
    expect(started).toEqual(['a', 'b']);
  });

  it('reports the stalest member', async () => {
    const clock = new FakeClock(0);
    const sources = new Map([
      ['a', new FakeListWatch(() => clock.now())],
      ['b', new FakeListWatch(() => clock.now())],
    ]);
    const set = new NamespacedInformers<FakeObject>({
      resource: 'pods',
      newInformer: (ns) => new Informer<FakeObject>({ resource: 'pods', source: sources.get(ns) ?? new FakeListWatch(() => 0), clock, relistPeriodMs: 0 }),
    });
    expect(set.staleness()).toBe(0);
    set.setNamespaces(['a', 'b']);
    const abort = new AbortController();
    const done = set.start(abort.signal);
    await clock.advance(10_000);
    sources.get('a')?.bookmark();
    expect(set.staleness()).toBe(10_000);
    abort.abort();
    await done;
  });
});
