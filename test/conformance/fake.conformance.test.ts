import { FakeBackend, FakeSecretStore } from '../../src/backends/fake/index.ts';
import { realClock } from '../../src/runtime/clock.ts';
import { runTag } from './conformance.context.ts';
import { describeBackendConformance } from './conformance.suite.ts';

/**
 * The in-memory fake passes the same suite as the real stores, so tests that use it in place of
 * a real backend test against the same contract. It has no login (nothing to count) and no
 * credentials; "bad credentials" is its AuthFailed failure mode, "hanging" its hold.
 */
describeBackendConformance('fake (in-memory)', { text: true, binary: true, rejectsBadCredentials: true, logsIn: false }, () => {
  const store = new FakeSecretStore({ clock: realClock });
  const tag = runTag();
  return Promise.resolve({
    createBackend: () => ({ backend: new FakeBackend(store), logins: () => 0 }),
    newKey: (label: string) => `conformance/${tag}/${label}`,
    writeJson: (key: string, document: Readonly<Record<string, string>>) => {
      store.setJson(key, document);
      return Promise.resolve();
    },
    writeText: (key: string, text: string) => {
      store.set(key, text, 'text');
      return Promise.resolve();
    },
    writeBinary: (key: string, bytes: Uint8Array) => {
      store.set(key, bytes, 'binary');
      return Promise.resolve();
    },
    badCredentials: () => {
      const rejecting = new FakeSecretStore({ clock: realClock });
      rejecting.failWith({ kind: 'AuthFailed' });
      return Promise.resolve({ backend: new FakeBackend(rejecting), credentials: [], dispose: () => Promise.resolve() });
    },
    hangingBackend: () => {
      const held = new FakeSecretStore({ clock: realClock });
      const release = held.hold();
      return Promise.resolve({
        backend: new FakeBackend(held),
        dispose: () => {
          release();
          return Promise.resolve();
        },
      });
    },
  });
});
