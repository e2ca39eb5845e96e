import { describe, expect, it } from '@jest/globals';
import { FakeClock } from './fake-clock.ts';
import { FakeLeaseStore } from './fake-lease-store.ts';
import { LeaderElector, leaderIdentity, type ElectionEnd, type LeaseStore } from './leader-election.ts';

class Candidate {
  readonly store: LeaseStore & { broken: boolean };
  readonly log: string[] = [];
  leaderSignal: AbortSignal | undefined;
  readonly elector: LeaderElector;
  readonly stop = new AbortController();
  readonly ended: Promise<ElectionEnd>;

  constructor(name: string, shared: FakeLeaseStore, clock: FakeClock) {
    this.store = shared.view();
    this.elector = new LeaderElector({
      store: this.store,
      identity: name,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock,
      random: () => 0,
      callbacks: {
        onStartedLeading: (signal) => {
          this.leaderSignal = signal;
          this.log.push(`started@${clock.now()}`);
        },
        onStoppedLeading: () => this.log.push(`stopped@${clock.now()}`),
      },
    });
    this.ended = this.elector.run(this.stop.signal);
  }
}

function candidate(name: string, shared: FakeLeaseStore, clock: FakeClock): Candidate {
  return new Candidate(name, shared, clock);
}

describe('LeaderElector', () => {
  it('acquires a free lease and renews it every retry period', async () => {
    const clock = new FakeClock(0);
    const shared = new FakeLeaseStore();
    const a = candidate('a', shared, clock);
    await clock.flush();
    expect(a.elector.isLeader()).toBe(true);
    expect(a.log).toEqual(['started@0']);
    expect(shared.holder).toBe('a');
    const firstRenew = shared.lease?.record.renewTime?.getTime() ?? 0;
    await clock.advance(10_000);
    expect(shared.writes).toBe(6); // create + 5 renewals
    expect((shared.lease?.record.renewTime?.getTime() ?? 0) - firstRenew).toBe(10_000);
    expect(shared.lease?.record.leaseTransitions).toBe(0);
    a.stop.abort();
    expect(await a.ended).toBe('stopped');
  });

  it('leads when its create went through but the answer was lost (the lease already names it)', async () => {
    const clock = new FakeClock(0);
    const shared = new FakeLeaseStore();
    const view = shared.view();
    const store: LeaseStore = {
      description: view.description,
      get: (signal) => view.get(signal),
      update: (record, version, signal) => view.update(record, version, signal),
      // The apiserver stored the lease, the client saw a socket hang up.
      create: (record, signal) => view.create(record, signal).then(() => Promise.reject(new Error('socket hang up'))),
    };
    const started: number[] = [];
    const elector = new LeaderElector({
      store,
      identity: 'a',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock,
      random: () => 0,
      callbacks: { onStartedLeading: () => started.push(clock.now()), onStoppedLeading: () => undefined },
    });
    const stop = new AbortController();
    const ended = elector.run(stop.signal);
    await clock.flush();
    expect(shared.holder).toBe('a');
    await clock.advance(2_000);
    expect(elector.isLeader()).toBe(true);
    expect(started).toEqual([2_000]);
    stop.abort();
    expect(await ended).toBe('stopped');
  });

  it('lets exactly one of two candidates lead while the leader renews', async () => {
    const clock = new FakeClock(0);
    const shared = new FakeLeaseStore();
    const a = candidate('a', shared, clock);
    const b = candidate('b', shared, clock);
    await clock.advance(60_000);
    expect([a.elector.isLeader(), b.elector.isLeader()]).toEqual([true, false]);
    expect(b.log).toEqual([]);
    expect(b.elector.observedLeader()).toBe('a');
    a.stop.abort();
    b.stop.abort();
    await Promise.all([a.ended, b.ended]);
  });

  it('when the leader goes silent, it steps down by the renew deadline and the other takes over after the lease duration', async () => {
    const clock = new FakeClock(0);
    const shared = new FakeLeaseStore();
    const a = candidate('a', shared, clock);
    await clock.flush();
    const b = candidate('b', shared, clock);
    await clock.advance(4_000);
    // a is cut off from the API server (as if frozen or partitioned): it can no longer renew.
    a.store.broken = true;
    const lastRenewal = clock.now();
    await clock.advance(10_000);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leaderSignal?.aborted).toBe(true);
    expect(await a.ended).toBe('lost');
    expect(b.elector.isLeader()).toBe(false);
    await clock.advance(8_000);
    expect(b.elector.isLeader()).toBe(true);
    const takeover = Number(b.log[0]?.split('@')[1]);
    // b waits the full lease duration from its last sight of a renewal, and not much more.
    expect(takeover - lastRenewal).toBeGreaterThanOrEqual(15_000 - 2_000);
    expect(takeover - lastRenewal).toBeLessThanOrEqual(15_000 + 2_000);
    expect(shared.lease?.record.leaseTransitions).toBe(1);
    b.stop.abort();
    await b.ended;
  });

  it('releases the lease on a graceful stop so the other takes over within a retry period', async () => {
    const clock = new FakeClock(0);
    const shared = new FakeLeaseStore();
    const a = candidate('a', shared, clock);
    await clock.flush();
    const b = candidate('b', shared, clock);
    await clock.advance(5_000);
    const stoppedAt = clock.now();
    a.stop.abort();
    expect(await a.ended).toBe('stopped');
    expect(a.log).toEqual(['started@0', `stopped@${stoppedAt}`]);
    expect(shared.holder).toBeUndefined();
    expect(shared.lease?.record.leaseDurationSeconds).toBe(1);
    await clock.advance(2_500);
    expect(b.elector.isLeader()).toBe(true);
    b.stop.abort();
    await b.ended;
  });

  it('steps down at once when it sees another holder', async () => {
    const clock = new FakeClock(0);
    const shared = new FakeLeaseStore();
    const a = candidate('a', shared, clock);
    await clock.flush();
    // Someone else wrote the lease (e.g. an operator forcing a failover).
    const lease = shared.lease;
    if (lease === undefined) throw new Error('no lease');
    shared.lease = { version: 'forced', record: { ...lease.record, holderIdentity: 'intruder' } };
    await clock.advance(2_000);
    expect(a.elector.isLeader()).toBe(false);
    expect(await a.ended).toBe('lost');
    expect(shared.holder).toBe('intruder');
  });

  it('refuses timings that cannot work and makes unique identities', () => {
    const store = new FakeLeaseStore().view();
    const callbacks = { onStartedLeading: () => undefined, onStoppedLeading: () => undefined };
    expect(() => new LeaderElector({ store, identity: 'x', leaseDurationMs: 10_000, renewDeadlineMs: 10_000, callbacks })).toThrow(/lease duration/);
    expect(() => new LeaderElector({ store, identity: 'x', renewDeadlineMs: 2_000, retryPeriodMs: 2_000, callbacks })).toThrow(/renew deadline/);
    expect(leaderIdentity('pod-1')).toMatch(/^pod-1_[0-9a-f]{12}$/);
    expect(leaderIdentity('pod-1')).not.toBe(leaderIdentity('pod-1'));
  });
});
