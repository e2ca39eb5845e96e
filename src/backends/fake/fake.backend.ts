import { UnavailableError, type CallOptions, type FetchOutcome, type SecretBackend, type SecretRef, type VersionOutcome } from '../backend.port.ts';
import type { FakeSecretStore } from './fake.store.ts';

/** A {@link SecretBackend} client over a {@link FakeSecretStore}; several clients may share a store. */
export class FakeBackend implements SecretBackend {
  readonly provider = 'fake';
  readonly store: FakeSecretStore;
  #closed = false;

  constructor(store: FakeSecretStore) {
    this.store = store;
  }

  async fetch(refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]> {
    this.#checkOpen();
    return this.store.fetch(refs, options.signal);
  }

  async versions(refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]> {
    this.#checkOpen();
    return this.store.versions(refs, options.signal);
  }

  async checkConnectivity(options: CallOptions): Promise<void> {
    this.#checkOpen();
    await this.store.checkConnectivity(options.signal);
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw new UnavailableError('fake: client is closed');
  }
}
