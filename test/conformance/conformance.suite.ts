import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  AuthFailedError,
  BackendError,
  NotFoundError,
  UnavailableError,
  type FetchOutcome,
  type FetchedSecret,
  type SecretBackend,
  type SecretRef,
  type VersionOutcome,
} from '../../src/backends/backend.port.ts';
import { sanitizeError } from '../../src/observability/sanitize.ts';

/**
 * The one conformance suite every backend passes against its real server (STYLE 13): OpenBao,
 * moto, Lowkey Vault — and the in-memory fake. A subject says how to create the backend and how to
 * change the store behind it; the suite checks what the port promises (ADR 0066).
 */
export interface ConformanceSubject {
  /** A backend with working credentials, and how many logins its context has seen. */
  createBackend(): { readonly backend: SecretBackend; readonly logins: () => number };
  /** A key that does not exist yet, unique to this run, shaped for the store (path, name). */
  newKey(label: string): string;
  /** Writes a JSON object document as a new version of `key` (creating it if needed). */
  writeJson(key: string, document: Readonly<Record<string, string>>): Promise<void>;
  /** Writes a plain-text document; absent for stores whose documents are always maps (Vault KV). */
  readonly writeText?: (key: string, text: string) => Promise<void>;
  /** Writes raw bytes; absent for stores without binary secrets (Vault KV; see ADR 0065). */
  readonly writeBinary?: (key: string, bytes: Uint8Array) => Promise<void>;
  /**
   * A backend whose credentials the store rejects, and the credential strings that must never
   * appear in an error. Absent where the server does not authenticate at all (Lowkey Vault).
   */
  readonly badCredentials?: () => Promise<{
    readonly backend: SecretBackend;
    readonly credentials: readonly string[];
    dispose(): Promise<void>;
  }>;
  /** A backend whose server accepts connections and never answers. */
  hangingBackend(): Promise<{ readonly backend: SecretBackend; dispose(): Promise<void> }>;
  dispose?(): Promise<void>;
}

const latest = (key: string): SecretRef => ({ key, version: { kind: 'latest' } });
const pinned = (key: string, id: string): SecretRef => ({ key, version: { kind: 'id', id } });
const opts = (ms = 15_000): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(ms) });

function found(outcome: FetchOutcome | undefined): FetchedSecret {
  if (outcome === undefined) throw new Error('no outcome');
  if (!outcome.ok) throw new Error(`expected a value, got ${outcome.error.name}: ${outcome.error.message}`);
  return outcome.secret;
}

function versionOf(outcome: VersionOutcome | undefined): string {
  if (outcome === undefined) throw new Error('no outcome');
  if (!outcome.ok) throw new Error(`expected a version, got ${outcome.error.name}: ${outcome.error.message}`);
  return outcome.version;
}

function parsed(secret: FetchedSecret): unknown {
  return JSON.parse(secret.value.revealText());
}

/** Everything an error could show in a log, a status condition or an Event. */
function everyRendering(error: unknown): string {
  const e = error as Error;
  return [String(error), e.message, e.stack ?? '', JSON.stringify(sanitizeError(error)), JSON.stringify(error)].join('\n');
}

/**
 * What the store behind a subject can do; cases for missing capabilities are not generated (and
 * each subject's test file says why).
 */
export interface ConformanceCapabilities {
  /** Plain-text documents (Vault KV documents are always maps). */
  readonly text: boolean;
  /** Raw bytes (Vault KV stores JSON; ADR 0065). */
  readonly binary: boolean;
  /** The server authenticates callers (Lowkey Vault accepts any bearer token by design). */
  readonly rejectsBadCredentials: boolean;
  /** The backend logs in and reports it through `onLogin` (the in-memory fake has no login). */
  readonly logsIn: boolean;
}

export function describeBackendConformance(
  title: string,
  capabilities: ConformanceCapabilities,
  makeSubject: () => Promise<ConformanceSubject>,
): void {
  describe(`backend conformance: ${title}`, () => {
    let subject: ConformanceSubject;
    let backend: SecretBackend;
    let logins: () => number;

    beforeAll(async () => {
      subject = await makeSubject();
      ({ backend, logins } = subject.createBackend());
    });

    afterAll(async () => {
      await backend.close();
      await subject.dispose?.();
    });

    it('fetches a document with its version, and proves connectivity', async () => {
      const key = subject.newKey('basic');
      await subject.writeJson(key, { user: 'app', password: 's3cr3t-basic' });
      await backend.checkConnectivity(opts());
      const [outcome] = await backend.fetch([latest(key)], opts());
      const secret = found(outcome);
      expect(secret.ref).toEqual(latest(key));
      expect(secret.version).not.toBe('');
      expect(secret.encoding).toBe('json');
      expect(parsed(secret)).toEqual({ user: 'app', password: 's3cr3t-basic' });
      // The value never prints itself.
      expect(String(secret.value)).toBe('[REDACTED]');
      expect(JSON.stringify(secret)).not.toContain('s3cr3t-basic');
    });

    it('answers NotFound for a missing key, per reference, next to a found one', async () => {
      const present = subject.newKey('present');
      const missing = subject.newKey('missing');
      await subject.writeJson(present, { a: '1' });
      const outcomes = await backend.fetch([latest(missing), latest(present)], opts());
      expect(outcomes).toHaveLength(2);
      const [first, second] = outcomes;
      expect(first?.ok).toBe(false);
      if (first?.ok === false) {
        expect(first.ref).toEqual(latest(missing));
        expect(first.error).toBeInstanceOf(NotFoundError);
      }
      expect(parsed(found(second))).toEqual({ a: '1' });
      const [version] = await backend.versions([latest(missing)], opts());
      expect(version?.ok).toBe(false);
      if (version?.ok === false) expect(version.error).toBeInstanceOf(NotFoundError);
    });

    it('returns JSON documents as json (property paths are the resolver’s job)', async () => {
      const key = subject.newKey('json');
      await subject.writeJson(key, { 'db.host': 'db.internal', port: '5432', 'nested/key': 'x' });
      const secret = found((await backend.fetch([latest(key)], opts()))[0]);
      expect(secret.encoding).toBe('json');
      expect(parsed(secret)).toEqual({ 'db.host': 'db.internal', port: '5432', 'nested/key': 'x' });
    });

    it('pins versions: the latest moves, a pin keeps its value', async () => {
      const key = subject.newKey('pins');
      await subject.writeJson(key, { v: 'one' });
      const first = found((await backend.fetch([latest(key)], opts()))[0]);
      await subject.writeJson(key, { v: 'two' });
      const [now, old] = await backend.fetch([latest(key), pinned(key, first.version)], opts());
      const second = found(now);
      expect(second.version).not.toBe(first.version);
      expect(parsed(second)).toEqual({ v: 'two' });
      const pinnedSecret = found(old);
      expect(pinnedSecret.version).toBe(first.version);
      expect(parsed(pinnedSecret)).toEqual({ v: 'one' });
      // A pinned reference reports its pin.
      expect(versionOf((await backend.versions([pinned(key, first.version)], opts()))[0])).toBe(first.version);
    });

    it('sees a new version through versions() after a write, and fetch agrees', async () => {
      const key = subject.newKey('rotation');
      await subject.writeJson(key, { token: 'before' });
      const before = versionOf((await backend.versions([latest(key)], opts()))[0]);
      expect(found((await backend.fetch([latest(key)], opts()))[0]).version).toBe(before);
      expect(versionOf((await backend.versions([latest(key)], opts()))[0])).toBe(before);
      await subject.writeJson(key, { token: 'after' });
      const after = versionOf((await backend.versions([latest(key)], opts()))[0]);
      expect(after).not.toBe(before);
      const secret = found((await backend.fetch([latest(key)], opts()))[0]);
      expect(secret.version).toBe(after);
      expect(parsed(secret)).toEqual({ token: 'after' });
    });

    it('fetches many references in one call, in order', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => subject.newKey(`many-${i}`));
      for (const [i, key] of keys.entries()) await subject.writeJson(key, { i: String(i) });
      const outcomes = await backend.fetch(keys.map(latest), opts(30_000));
      expect(outcomes.map((o) => parsed(found(o)))).toEqual(keys.map((_, i) => ({ i: String(i) })));
    });

    if (capabilities.logsIn) it('logs in once for many calls (credentials are cached, not fetched per call)', async () => {
      const key = subject.newKey('login-once');
      await subject.writeJson(key, { a: 'b' });
      await backend.fetch([latest(key)], opts());
      const after = logins();
      for (let i = 0; i < 5; i++) {
        await backend.fetch([latest(key)], opts());
        await backend.versions([latest(key)], opts());
      }
      expect(after).toBeGreaterThanOrEqual(1);
      expect(logins()).toBe(after);
    });

    it('honours an already-aborted signal without calling the store', async () => {
      const controller = new AbortController();
      controller.abort();
      const key = subject.newKey('aborted');
      await expect(backend.fetch([latest(key)], { signal: controller.signal })).rejects.toBeInstanceOf(UnavailableError);
      await expect(backend.versions([latest(key)], { signal: controller.signal })).rejects.toBeInstanceOf(UnavailableError);
      await expect(backend.checkConnectivity({ signal: controller.signal })).rejects.toBeInstanceOf(UnavailableError);
    });

    it('gives up on a server that never answers when the timeout fires', async () => {
      const hanging = await subject.hangingBackend();
      try {
        const key = subject.newKey('hang');
        const fetching = hanging.backend.fetch([latest(key)], { signal: AbortSignal.timeout(400) });
        await expect(fetching).rejects.toBeInstanceOf(UnavailableError);
        await expect(fetching).rejects.toThrow(/timed out|aborted/);
        await expect(hanging.backend.versions([latest(key)], { signal: AbortSignal.timeout(400) })).rejects.toBeInstanceOf(UnavailableError);
        await expect(hanging.backend.checkConnectivity({ signal: AbortSignal.timeout(400) })).rejects.toBeInstanceOf(UnavailableError);
      } finally {
        await hanging.backend.close();
        await hanging.dispose();
      }
    }, 20_000);

    if (capabilities.text) {
      it('round-trips text documents as text', async () => {
        const writeText = required(subject.writeText, 'writeText');
        const key = subject.newKey('text');
        await writeText(key, 'plain text, not {json}\n');
        const secret = found((await backend.fetch([latest(key)], opts()))[0]);
        expect(secret.encoding).toBe('text');
        expect(secret.value.revealText()).toBe('plain text, not {json}\n');
      });
    }

    if (capabilities.binary) {
      it('round-trips binary values byte for byte', async () => {
        const writeBinary = required(subject.writeBinary, 'writeBinary');
        const key = subject.newKey('binary');
        // Not valid UTF-8 (0xff, 0xfe, lone continuation bytes), with NULs.
        const bytes = Uint8Array.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x00, 0xc3, 0x28, 10, 13, 0x7f]);
        await writeBinary(key, bytes);
        const secret = found((await backend.fetch([latest(key)], opts()))[0]);
        expect(secret.encoding).toBe('binary');
        expect([...secret.value.reveal()]).toEqual([...bytes]);
      });
    }

    if (capabilities.rejectsBadCredentials) {
      it('rejects bad credentials with AuthFailed, never showing them', async () => {
        const bad = await required(subject.badCredentials, 'badCredentials')();
        try {
          const key = subject.newKey('bad-credentials');
          const calls = [
            () => bad.backend.fetch([latest(key)], opts()),
            () => bad.backend.versions([latest(key)], opts()),
            () => bad.backend.checkConnectivity(opts()),
          ];
          for (const call of calls) {
            const error = await call().then(
              () => new Error('the call succeeded with bad credentials'),
              (e: unknown) => e,
            );
            expect(error).toBeInstanceOf(AuthFailedError);
            expect((error as BackendError).retryable).toBe(false);
            const shown = everyRendering(error);
            for (const credential of bad.credentials) expect(shown).not.toContain(credential);
          }
        } finally {
          await bad.backend.close();
          await bad.dispose();
        }
      }, 60_000);
    }
  });
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the subject declares the capability but has no ${what}`);
  return value;
}
