import { describe, expect, it } from '@jest/globals';
import { FakeClock } from '../../runtime/fake-clock.ts';
import { InvalidConfigError, type BackendContext, type FetchOutcome, type SecretRef } from '../backend.port.ts';
import { FakeBackend } from './fake.backend.ts';
import { FakeSecretStore } from './fake.store.ts';
import { fakeProvider } from './index.ts';
import { parseDurationMs } from '../../api/v1alpha1/duration.ts';

const latest = (key: string): SecretRef => ({ key, version: { kind: 'latest' } });
const pinned = (key: string, id: string): SecretRef => ({ key, version: { kind: 'id', id } });
const opts = () => ({ signal: new AbortController().signal });

function text(outcome: FetchOutcome | undefined): string {
  if (outcome?.ok !== true) throw new Error(`expected a value, got ${outcome?.ok === false ? outcome.error.kind : 'nothing'}`);
  return outcome.secret.value.revealText();
}

function setup() {
  const clock = new FakeClock();
  const store = new FakeSecretStore({ clock });
  return { clock, store, backend: new FakeBackend(store) };
}

const context: BackendContext = {
  namespace: 'ns',
  requestServiceAccountToken: () => Promise.reject(new Error('unused')),
  readOperatorSecret: () => Promise.reject(new Error('unused')),
  onLogin: () => undefined,
};

describe('FakeSecretStore / FakeBackend', () => {
  it('keeps a version history: latest and pinned reads', async () => {
    const { store, backend } = setup();
    expect(store.set('app/db', 'one')).toBe('1');
    expect(store.set('app/db', 'two')).toBe('2');
    const [cur, first, second] = await backend.fetch([latest('app/db'), pinned('app/db', '1'), pinned('app/db', '2')], opts());
    expect(text(cur)).toBe('two');
    expect(cur?.ok === true && cur.secret.version).toBe('2');
    expect(text(first)).toBe('one');
    expect(text(second)).toBe('two');
    expect(store.stats.reads).toBe(3);
    expect(store.readsOf('app/db')).toBe(3);
  });

  it('reports NotFound per reference for missing keys and versions', async () => {
    const { store, backend } = setup();
    store.set('a', 'x');
    const outcomes = await backend.fetch([latest('missing'), pinned('a', '2'), pinned('a', 'abc'), latest('a')], opts());
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.error.kind))).toEqual(['NotFound', 'NotFound', 'NotFound', 'ok']);
    store.delete('a');
    const [gone] = await backend.fetch([latest('a')], opts());
    expect(gone?.ok === false && gone.error.kind).toBe('NotFound');
  });

  it('answers versions() without reading values', async () => {
    const { store, backend } = setup();
    store.set('a', 'x');
    store.setJson('b', { user: 'u' });
    store.set('b', '{"user":"v"}', 'json');
    const outcomes = await backend.versions([latest('a'), latest('b'), pinned('b', '1'), latest('nope')], opts());
    expect(outcomes.map((o) => (o.ok ? o.version : o.error.kind))).toEqual(['1', '2', '1', 'NotFound']);
    expect(store.stats.reads).toBe(0);
    expect(store.stats.versionCalls).toBe(1);
  });

  it('supports the AWS staging labels and refuses others', async () => {
    const { store, backend } = setup();
    store.set('s', 'old');
    store.set('s', 'new');
    const [cur, prev, other] = await backend.fetch(
      [
        { key: 's', version: { kind: 'stage', stage: 'AWSCURRENT' } },
        { key: 's', version: { kind: 'stage', stage: 'AWSPREVIOUS' } },
        { key: 's', version: { kind: 'stage', stage: 'CUSTOM' } },
      ],
      opts(),
    );
    expect(text(cur)).toBe('new');
    expect(text(prev)).toBe('old');
    expect(other?.ok === false && other.error.kind).toBe('InvalidConfig');
  });

  it('simulates outages, throttling and auth failures, for a number of calls or until recovered', async () => {
    const { store, backend } = setup();
    store.set('a', 'x');
    store.failWith({ kind: 'Throttled', retryAfterMs: 1500, times: 2 });
    await expect(backend.fetch([latest('a')], opts())).rejects.toMatchObject({ kind: 'Throttled', retryAfterMs: 1500 });
    await expect(backend.versions([latest('a')], opts())).rejects.toMatchObject({ kind: 'Throttled' });
    expect(text((await backend.fetch([latest('a')], opts()))[0])).toBe('x');

    store.failWith({ kind: 'Unavailable', operations: ['fetch'] });
    await expect(backend.fetch([latest('a')], opts())).rejects.toMatchObject({ kind: 'Unavailable', retryable: true });
    await expect(backend.versions([latest('a')], opts())).resolves.toHaveLength(1);
    store.failWith({ kind: 'AuthFailed' });
    await expect(backend.checkConnectivity(opts())).rejects.toMatchObject({ kind: 'AuthFailed', retryable: false });
    store.recover();
    await expect(backend.checkConnectivity(opts())).resolves.toBeUndefined();
  });

  it('fails only the named keys, as outcomes, when asked', async () => {
    const { store, backend } = setup();
    store.set('a', 'x');
    store.set('b', 'y');
    store.failWith({ kind: 'Throttled', keys: ['b'], times: 1 });
    const outcomes = await backend.fetch([latest('a'), latest('b')], opts());
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.error.kind))).toEqual(['ok', 'Throttled']);
    expect(text((await backend.fetch([latest('b')], opts()))[0])).toBe('y');
  });

  it('parks calls while held, counts them in flight, and lets an abort through', async () => {
    const { clock, store, backend } = setup();
    store.set('a', 'x');
    const release = store.hold();
    const first = backend.fetch([latest('a')], opts());
    const second = backend.fetch([latest('a')], opts());
    const aborter = new AbortController();
    const third = backend.fetch([latest('a')], { signal: aborter.signal });
    await clock.flush();
    expect(store.stats.inFlight).toBe(3);
    aborter.abort();
    await expect(third).rejects.toMatchObject({ kind: 'Unavailable' });
    release();
    await expect(first).resolves.toHaveLength(1);
    await expect(second).resolves.toHaveLength(1);
    expect(store.stats.maxInFlight).toBe(3);
    expect(store.calls.map((c) => c.operation)).toEqual(['fetch', 'fetch', 'fetch']);
  });

  it('takes virtual time with a latency', async () => {
    const { clock, store, backend } = setup();
    store.set('a', 'x');
    store.latencyMs = 250;
    let done = false;
    const call = backend.fetch([latest('a')], opts()).then(() => {
      done = true;
    });
    await clock.advance(249);
    expect(done).toBe(false);
    await clock.advance(1);
    await call;
    expect(done).toBe(true);
  });

  it('can behave like a store without versions (Vault KV v1)', async () => {
    const clock = new FakeClock();
    const store = new FakeSecretStore({ clock, unversioned: true });
    const backend = new FakeBackend(store);
    store.set('a', 'one');
    store.set('a', 'two');
    const [v] = await backend.versions([latest('a')], opts());
    const [f, p] = await backend.fetch([latest('a'), pinned('a', '1')], opts());
    expect(v?.ok === true && v.version).toBe('unversioned');
    expect(f?.ok === true && f.secret.version).toBe('unversioned');
    expect(text(f)).toBe('two');
    expect(p?.ok === false && p.error.kind).toBe('InvalidConfig');
  });

  it('refuses calls after close', async () => {
    const { backend } = setup();
    await backend.close();
    await expect(backend.fetch([latest('a')], opts())).rejects.toMatchObject({ kind: 'Unavailable' });
  });
});

describe('generated keys (the fake block of a backend)', () => {
  const spec = { seed: 'demo', keys: [{ key: 'app/db', fields: ['username', 'password'] }, { key: 'app/api-key' }], rotationPeriod: '2m' };

  it('derives the same values and versions in every client, from the seed and the wall clock', async () => {
    const clock = new FakeClock(0, Date.UTC(2030, 0, 1));
    const config = fakeProvider.parseConfig(spec);
    const one = new FakeBackend(new FakeSecretStore({ clock, generated: config }));
    const two = new FakeBackend(new FakeSecretStore({ clock, generated: config }));
    const [db1, key1] = await one.fetch([latest('app/db'), latest('app/api-key')], opts());
    const [db2] = await two.fetch([latest('app/db')], opts());
    expect(text(db1)).toBe(text(db2));
    expect(db1?.ok === true && db1.secret.encoding).toBe('json');
    expect(Object.keys(JSON.parse(text(db1)) as object)).toEqual(['username', 'password']);
    expect(key1?.ok === true && key1.secret.encoding).toBe('text');
    expect(text(key1)).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const version = db1?.ok === true ? Number(db1.secret.version) : 0;
    expect(version).toBe(1 + Math.floor(Date.UTC(2030, 0, 1) / 120_000));

    await clock.advance(120_000);
    const [rotated] = await one.fetch([latest('app/db')], opts());
    expect(rotated?.ok === true && rotated.secret.version).toBe(String(version + 1));
    expect(text(rotated)).not.toBe(text(db1));
    const [old] = await one.fetch([pinned('app/db', String(version))], opts());
    expect(text(old)).toBe(text(db1));
    const [other] = await one.fetch([latest('app/other')], opts());
    expect(other?.ok === false && other.error.kind).toBe('NotFound');
  });

  it('keeps version 1 without a rotation period; a different seed gives different values', async () => {
    const clock = new FakeClock();
    const a = new FakeBackend(new FakeSecretStore({ clock, generated: fakeProvider.parseConfig({ keys: [{ key: 'k' }] }) }));
    const b = new FakeBackend(new FakeSecretStore({ clock, generated: fakeProvider.parseConfig({ seed: 'x', keys: [{ key: 'k' }] }) }));
    const [va] = await a.fetch([latest('k')], opts());
    const [vb] = await b.fetch([latest('k')], opts());
    expect(va?.ok === true && va.secret.version).toBe('1');
    expect(text(va)).not.toBe(text(vb));
  });

  it('validates the block with messages fit for a condition', () => {
    expect(() => fakeProvider.parseConfig({ keys: [{ key: 'a' }], rotationPeriod: '5 minutes' })).toThrow(InvalidConfigError);
    expect(() => fakeProvider.parseConfig({ keys: [{ key: 'a' }], rotationPeriod: '500ms' })).toThrow(/at least 1s/);
    expect(() => fakeProvider.parseConfig({ keys: [{ key: 'a' }, { key: 'a' }] })).toThrow(/keys must be unique/);
    expect(() => fakeProvider.parseConfig({ keys: [{ key: 'a', value: 'no values here' }] })).toThrow(/fake: keys\.0/);
    expect(() => fakeProvider.parseConfig({})).toThrow(/keys/);
    expect(parseDurationMs('1h30m')).toBe(5_400_000);
    expect(parseDurationMs('1.5s')).toBe(1500);
  });

  it('simulates an outage from the spec', async () => {
    const backend = fakeProvider.create(fakeProvider.parseConfig({ keys: [{ key: 'a' }], unavailable: true }), context);
    await expect(backend.fetch([latest('a')], opts())).rejects.toMatchObject({ kind: 'Unavailable' });
    await backend.close();
  });
});
