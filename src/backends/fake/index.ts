import type { BackendProvider } from '../backend.port.ts';
import { realClock } from '../../runtime/clock.ts';
import { FakeBackend } from './fake.backend.ts';
import { parseFakeConfig, type FakeConfig } from './fake.config.ts';
import { FakeSecretStore } from './fake.store.ts';

export { FakeBackend } from './fake.backend.ts';
export { FakeSecretStore, type FakeFailure, type FakeOperation } from './fake.store.ts';
export type { FakeConfig } from './fake.config.ts';

/**
 * The `fake` provider: each client gets its own store with the spec's generated keys. Values and
 * versions are a pure function of (seed, key, field, wall-clock period), so every client and every
 * controller replica sees the same store without sharing any state.
 */
export const fakeProvider: BackendProvider<FakeConfig> = {
  name: 'fake',
  parseConfig: parseFakeConfig,
  create(config) {
    const store = new FakeSecretStore({ clock: realClock, generated: config });
    if (config.unavailable) store.failWith({ kind: 'Unavailable' });
    return new FakeBackend(store);
  },
};
