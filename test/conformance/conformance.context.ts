import { createServer, type Socket } from 'node:net';
import type { BackendContext, ProviderName } from '../../src/backends/backend.port.ts';
import { SecretValue } from '../../src/observability/secret-value.ts';

/**
 * Test doubles of our own port {@link BackendContext} (not of any server): operator Secrets held in
 * a map, service-account tokens from a function the test supplies (the real TokenRequest API of
 * the world's apiserver where a test needs one), and a login counter.
 */
export interface TestContext extends BackendContext {
  /** Logins reported through `onLogin` so far. */
  readonly logins: () => number;
  /** Replaces one key of an operator Secret (a credential rotation). */
  setSecret(name: string, key: string, value: string): void;
}

export function testContext(options: {
  readonly namespace?: string;
  readonly secrets?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly requestServiceAccountToken?: BackendContext['requestServiceAccountToken'];
}): TestContext {
  const secrets = new Map<string, Map<string, string>>();
  for (const [name, data] of Object.entries(options.secrets ?? {})) secrets.set(name, new Map(Object.entries(data)));
  let logins = 0;
  const namespace = options.namespace ?? 'secret-binder-system';
  return {
    namespace,
    requestServiceAccountToken:
      options.requestServiceAccountToken ??
      (() => Promise.reject(new Error('this test context mints no service-account tokens'))),
    readOperatorSecret(name, key) {
      const value = secrets.get(name)?.get(key);
      if (value === undefined) return Promise.reject(new Error(`Secret ${namespace}/${name} has no key "${key}"`));
      return Promise.resolve(SecretValue.fromString(value));
    },
    onLogin(_provider: ProviderName) {
      logins++;
    },
    logins: () => logins,
    setSecret(name, key, value) {
      const data = secrets.get(name) ?? new Map<string, string>();
      data.set(key, value);
      secrets.set(name, data);
    },
  };
}

/**
 * A TCP server on 127.0.0.1 that accepts connections and never answers (no HTTP, no TLS
 * handshake): what a hung backend looks like to a client.
 */
export async function startHangingServer(): Promise<{ readonly port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('hanging server: no port');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A short random tag, so keys of one run never collide with those of another in a reused world. */
export function runTag(): string {
  return Math.random().toString(36).slice(2, 10);
}
