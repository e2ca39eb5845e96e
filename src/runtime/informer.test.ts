import { describe, expect, it } from '@jest/globals';
import { V1ManagedFieldsEntry } from '@kubernetes/client-node';
import { FakeClock } from './fake-clock.ts';
import { FakeListWatch, type FakeObject } from './fake-list-watch.ts';
import { enqueueHandlers, Informer, type InformerObserver } from './informer.ts';

interface Harness {
  readonly clock: FakeClock;
  readonly source: FakeListWatch;
  readonly informer: Informer<FakeObject>;
  readonly events: string[];
  readonly restarts: string[];
  readonly lists: string[];
  stop(): Promise<void>;
}

function start(options: { relistPeriodMs?: number; seed?: (s: FakeListWatch) => void } = {}): Harness {
  const clock = new FakeClock(0);
  const source = new FakeListWatch(() => clock.now());
  options.seed?.(source);
  const restarts: string[] = [];
  const lists: string[] = [];
  const observer: InformerObserver = { informerRestarted: (r) => restarts.push(r), informerListed: (r) => lists.push(r) };
  const informer = new Informer<FakeObject>({
    resource: 'things',
    source,
    clock,
    random: () => 0.5,
    observer,
    relistPeriodMs: options.relistPeriodMs ?? 0,
    backoff: { baseMs: 1000, capMs: 8000 },
  });
  const events: string[] = [];
  informer.addHandler({
    add: (o) => events.push(`add ${o.metadata?.name}`),
    update: (old, o) => events.push(`update ${o.metadata?.name} ${old.data?.v}->${o.data?.v}`),
    delete: (o) => events.push(`delete ${o.metadata?.name}`),
  });
  const abort = new AbortController();
  const done = informer.start(abort.signal);
  return {
    clock,
    source,
    informer,
    events,
    restarts,
    lists,
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

describe('Informer', () => {
  it('lists into a cache stripped of managedFields, then follows the watch', async () => {
    const h = start({
      seed: (s) => {
        s.put('a', 'one', { v: '1' }, {
          managedFields: [Object.assign(new V1ManagedFieldsEntry(), { manager: 'kubectl', operation: 'Apply' })],
          annotations: { keep: 'me', 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"copy"}' },
        });
        s.put('b', 'two', { v: '1' }, { labels: { tier: 'x' } });
      },
    });
    h.informer.addIndex('tier', (o) => (o.metadata?.labels?.tier === undefined ? [] : [o.metadata.labels.tier]));
    expect(h.informer.hasSynced()).toBe(false);
    expect(h.informer.staleness()).toBe(Infinity);
    await h.clock.flush();
    expect(h.informer.hasSynced()).toBe(true);
    expect(h.events).toEqual(['add one', 'add two']);
    const one = h.informer.get('a/one');
    expect(one?.metadata?.managedFields).toBeUndefined();
    expect(one?.metadata?.annotations).toEqual({ keep: 'me' });
    expect(h.informer.listNamespace('b').map((o) => o.metadata?.name)).toEqual(['two']);
    expect(h.informer.byIndex('tier', 'x').map((o) => o.metadata?.name)).toEqual(['two']);
    expect(h.source.watchCalls).toEqual(['102']);

    h.source.put('a', 'one', { v: '2' }, { managedFields: [Object.assign(new V1ManagedFieldsEntry(), { manager: 'x' })] });
    h.source.put('a', 'three', { v: '1' });
    h.source.remove('b', 'two');
    expect(h.events.slice(2)).toEqual(['update one 1->2', 'add three', 'delete two']);
    expect(h.informer.get('a/one')?.data?.v).toBe('2');
    expect(h.informer.get('a/one')?.metadata?.managedFields).toBeUndefined();
    expect(h.informer.get('b/two')).toBeUndefined();
    expect(h.informer.byIndex('tier', 'x')).toEqual([]);
    expect(h.informer.list().map((o) => o.metadata?.name).sort()).toEqual(['one', 'three']);
    expect(h.informer.resourceVersion).toBe('105');
    await h.stop();
  });

  it('after a broken watch, backs off, re-watches from the last version and sees changes made meanwhile', async () => {
    const h = start({ seed: (s) => s.put('a', 'one', { v: '1' }) });
    await h.clock.flush();
    h.source.failWatches = 2;
    h.source.breakWatch();
    h.source.put('a', 'one', { v: '2' }); // during the outage: no watch to deliver it
    await h.clock.flush();
    expect(h.restarts).toEqual(['things']);
    expect(h.events).toEqual(['add one']);
    // backoff 1000 ms (random 0.5, no jitter configured → exact), then 2000 ms, then it connects.
    await h.clock.advance(999);
    expect(h.source.watchCalls).toEqual(['101']);
    await h.clock.advance(1);
    expect(h.source.watchCalls).toEqual(['101', '101']);
    await h.clock.advance(2000);
    expect(h.source.watchCalls).toEqual(['101', '101', '101']);
    await h.clock.advance(4000);
    expect(h.source.watchCalls).toEqual(['101', '101', '101', '101']);
    expect(h.restarts).toEqual(['things', 'things', 'things']);
    expect(h.source.listCalls).toHaveLength(1);
    // Reported as lists: only the first; the re-watches resumed from the last version.
    expect(h.lists).toEqual(['things']);
    expect(h.events).toEqual(['add one', 'update one 1->2']);
    await h.stop();
  });

  it('relists on 410 Gone and reports what changed while it was away as events', async () => {
    const h = start({
      seed: (s) => {
        s.put('a', 'stays', { v: '1' });
        s.put('a', 'changes', { v: '1' });
        s.put('a', 'goes', { v: '1' });
      },
    });
    await h.clock.flush();
    h.source.failWatches = 1;
    h.source.breakWatch();
    h.source.put('a', 'changes', { v: '2' });
    h.source.remove('a', 'goes');
    h.source.put('a', 'new', { v: '1' });
    h.source.compact();
    await h.clock.advance(1000);
    await h.clock.advance(2000);
    expect(h.source.listCalls).toHaveLength(2);
    expect(h.events.slice(3)).toEqual(['add new', 'update changes 1->2', 'delete goes']);
    expect(h.informer.list().map((o) => o.metadata?.name).sort()).toEqual(['changes', 'new', 'stays']);
    // 410 is not a failure: only the broken and the refused watch counted as restarts.
    expect(h.restarts).toEqual(['things', 'things']);
    expect(h.lists).toEqual(['things', 'things']);
    expect(h.source.watching).toBe(true);
    await h.stop();
  });

  it('restarts a failed list with exponential backoff up to the cap', async () => {
    const h = start({
      seed: (s) => {
        s.failLists = 6;
      },
    });
    await h.clock.advance(60_000);
    expect(h.source.listCalls).toEqual([0, 1000, 3000, 7000, 15_000, 23_000, 31_000]);
    expect(h.informer.hasSynced()).toBe(true);
    expect(h.restarts).toHaveLength(6);
    await h.stop();
  });

  it('treats a watch ERROR event other than 410 as a failure', async () => {
    const h = start();
    await h.clock.flush();
    h.source.errorEvent(500);
    await h.clock.flush();
    expect(h.restarts).toEqual(['things']);
    await h.clock.advance(1000);
    expect(h.source.watching).toBe(true);
    await h.stop();
  });

  it('does not loop tightly when the server closes every watch at once', async () => {
    const h = start();
    await h.clock.advance(5000);
    h.source.closeWatchesImmediately = 3;
    h.source.closeWatch();
    await h.clock.advance(10_000);
    // The normal close re-watches at once; the three instant closes each back off.
    expect(h.source.watchCalls).toHaveLength(5);
    expect(h.restarts).toHaveLength(3);
    await h.stop();
  });

  it('relists periodically and heals a missed change', async () => {
    const h = start({ relistPeriodMs: 60_000, seed: (s) => s.put('a', 'one', { v: '1' }) });
    await h.clock.flush();
    expect(h.source.listCalls).toEqual([0]);
    await h.clock.advance(59_999);
    expect(h.source.listCalls).toEqual([0]);
    await h.clock.advance(1);
    expect(h.source.listCalls).toEqual([0, 60_000]);
    expect(h.source.watching).toBe(true);
    await h.stop();
  });

  it('reports staleness: fresh on list, watch start, events and bookmarks; growing during an outage', async () => {
    const h = start();
    await h.clock.flush();
    expect(h.informer.staleness()).toBe(0);
    await h.clock.advance(5000);
    expect(h.informer.staleness()).toBe(5000);
    h.source.bookmark();
    expect(h.informer.staleness()).toBe(0);
    await h.clock.advance(3000);
    h.source.put('a', 'x', {});
    expect(h.informer.staleness()).toBe(0);
    h.source.failWatches = 100;
    h.source.breakWatch();
    await h.clock.advance(40_000);
    expect(h.informer.staleness()).toBe(40_000);
    expect(h.informer.hasSynced()).toBe(true);
    h.source.failWatches = 0;
    await h.clock.advance(8000);
    expect(h.informer.staleness()).toBeLessThan(8000);
    await h.stop();
  });

  it('keeps going when a handler throws', async () => {
    const h = start();
    h.informer.addHandler({
      add: () => {
        throw new Error('handler bug');
      },
    });
    await h.clock.flush();
    h.source.put('a', 'one', {});
    h.source.put('a', 'two', {});
    expect(h.events).toEqual(['add one', 'add two']);
    expect(h.informer.list()).toHaveLength(2);
    await h.stop();
  });

  it('whenSynced resolves after the first list, or false when aborted first', async () => {
    const h = start({
      seed: (s) => {
        s.failLists = 1;
      },
    });
    const abort = new AbortController();
    const early = h.informer.whenSynced(abort.signal);
    abort.abort();
    expect(await early).toBe(false);
    const synced = h.informer.whenSynced();
    await h.clock.advance(1000);
    expect(await synced).toBe(true);
    await h.stop();
  });
});

describe('enqueueHandlers', () => {
  it('enqueues the keys of old and new objects on every event', async () => {
    const clock = new FakeClock(0);
    const source = new FakeListWatch(() => clock.now());
    source.put('a', 'pod', { owner: 'x' });
    const informer = new Informer<FakeObject>({ resource: 'pods', source, clock, relistPeriodMs: 0 });
    const keys: string[] = [];
    informer.addHandler(enqueueHandlers<FakeObject>((k) => keys.push(k), (o) => [`a/binding-${o.data?.owner ?? ''}`]));
    const own: string[] = [];
    informer.addHandler(enqueueHandlers<FakeObject>((k) => own.push(k)));
    const stop = new AbortController();
    const done = informer.start(stop.signal);
    await clock.flush();
    source.put('a', 'pod', { owner: 'y' });
    source.remove('a', 'pod');
    expect(keys).toEqual(['a/binding-x', 'a/binding-x', 'a/binding-y', 'a/binding-y']);
    expect(own).toEqual(['a/pod', 'a/pod', 'a/pod', 'a/pod']);
    stop.abort();
    await done;
  });
});
