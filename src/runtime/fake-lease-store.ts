import type { LeaderRecord, LeaseStore, ObservedLease } from './leader-election.ts';

/** An in-memory lease with optimistic concurrency: a fake of our LeaseStore port, for unit tests. */
export class FakeLeaseStore {
  readonly description = 'memory lease';
  lease: ObservedLease | undefined;
  #version = 0;
  writes = 0;

  /** A view of the store for one candidate, whose calls can be made to fail (a partitioned replica). */
  view(): LeaseStore & { broken: boolean } {
    const view = {
      description: this.description,
      broken: false,
      get: (_signal: AbortSignal): Promise<ObservedLease | undefined> => (view.broken ? Promise.reject(new Error('unreachable')) : Promise.resolve(this.lease)),
      create: (record: LeaderRecord, _signal: AbortSignal): Promise<ObservedLease> => {
        if (view.broken) return Promise.reject(new Error('unreachable'));
        if (this.lease !== undefined) return Promise.reject(new Error('AlreadyExists'));
        return Promise.resolve(this.#write(record));
      },
      update: (record: LeaderRecord, version: string, _signal: AbortSignal): Promise<ObservedLease> => {
        if (view.broken) return Promise.reject(new Error('unreachable'));
        if (this.lease?.version !== version) return Promise.reject(new Error('Conflict'));
        return Promise.resolve(this.#write(record));
      },
    };
    return view;
  }

  get holder(): string | undefined {
    return this.lease?.record.holderIdentity;
  }

  #write(record: LeaderRecord): ObservedLease {
    this.writes++;
    this.lease = { record, version: String(++this.#version) };
    return this.lease;
  }
}
