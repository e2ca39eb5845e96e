import {
  AuthFailedError,
  InvalidConfigError,
  NotFoundError,
  unversioned,
  type BackendContext,
  type BackendError,
  type CallOptions,
  type FetchOutcome,
  type SecretBackend,
  type SecretRef,
  type VersionOutcome,
} from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { mapWithConcurrency, throwIfAborted } from '../provider.support.ts';
import { encodeMount, VaultSession } from './vault.auth.ts';
import { encodeSecretPath, VaultClient, type VaultResponse } from './vault.client.ts';
import type { VaultConfig } from './vault.config.ts';
import { VaultLeases } from './vault.leases.ts';
import { mapVaultError, type VaultOperation } from './vault.errors.ts';

/**
 * Reads a KV secrets engine (v2 or v1) of Vault / OpenBao. One HTTP call per document (Vault has
 * no batch read), a few in flight at once. Documents come back as the JSON of the data map.
 *
 * Failures of one path (not found, denied by policy, bad version) are outcomes of that reference;
 * failures of the server (unreachable, 5xx, rate limited, aborted) and of the login throw. A 403
 * first makes us ask Vault whether our token is still valid: if not, we log in again and retry
 * those references once.
 */

/** Requests in flight per fetch/versions call (the registry's rate budget caps it further). */
const concurrency = 8;

type Attempt<O> = { readonly outcome: O; readonly denied: boolean };

export class VaultBackend implements SecretBackend {
  readonly provider = 'vault' as const;
  readonly #config: VaultConfig;
  readonly #client: VaultClient;
  readonly #session: VaultSession;
  readonly #mount: string;
  /** Dynamic secrets through the same client and login (issue 21). */
  readonly leasing: VaultLeases;

  constructor(config: VaultConfig, context: BackendContext, now?: () => number) {
    this.#config = config;
    this.#client = new VaultClient({ address: config.address, namespace: config.namespace, caPem: config.caPem });
    this.#session = new VaultSession(config.auth, this.#client, context, now);
    this.#mount = encodeMount(config.mount);
    this.leasing = new VaultLeases(this.#client, this.#session, this.#mount, config.kvVersion);
  }

  async fetch(refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]> {
    return this.#withToken(refs, options.signal, (ref, token) => this.#fetchOne(ref, token, options.signal));
  }

  async versions(refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]> {
    throwIfAborted(options.signal, 'Vault version check');
    // Answers that need no call: pins, KV v1, refused selectors.
    const answered = refs.map((ref) => this.#versionWithoutCall(ref));
    const pending = refs.filter((_, i) => answered[i] === undefined);
    const read = pending.length === 0 ? [] : await this.#withToken(pending, options.signal, (ref, token) => this.#currentVersion(ref, token, options.signal));
    let next = 0;
    return answered.map((a) => a ?? (read[next++] as VersionOutcome));
  }

  async checkConnectivity(options: CallOptions): Promise<void> {
    throwIfAborted(options.signal, 'Vault connectivity check');
    const token = await this.#session.token(options.signal);
    try {
      await this.#client.read('auth/token/lookup-self', { token: token.revealText(), signal: options.signal });
    } catch (error) {
      const mapped = mapVaultError(error, { operation: 'token lookup', signal: options.signal });
      if (mapped instanceof AuthFailedError) this.#session.invalidate(token);
      throw mapped;
    }
  }

  async close(): Promise<void> {
    await this.#session.close();
    this.#client.close();
  }

  /**
   * Runs `one` for each reference with the session's token. References denied with 403 are
   * retried once with a fresh login if Vault says the token itself is no longer valid.
   */
  async #withToken<O extends FetchOutcome | VersionOutcome>(
    refs: readonly SecretRef[],
    signal: AbortSignal,
    one: (ref: SecretRef, token: string) => Promise<Attempt<O>>,
  ): Promise<O[]> {
    throwIfAborted(signal, 'Vault read');
    if (refs.length === 0) return [];
    const token = await this.#session.token(signal);
    const first = await mapWithConcurrency(refs, concurrency, (ref) => one(ref, token.revealText()));
    const deniedAt = first.flatMap((attempt, i) => (attempt.denied ? [i] : []));
    if (deniedAt.length === 0 || (await this.#tokenStillValid(token, signal))) return first.map((a) => a.outcome);
    this.#session.invalidate(token);
    const fresh = await this.#session.token(signal);
    const retried = await mapWithConcurrency(deniedAt, concurrency, (i) => one(refs[i] as SecretRef, fresh.revealText()));
    const outcomes = first.map((a) => a.outcome);
    deniedAt.forEach((refIndex, j) => {
      outcomes[refIndex] = (retried[j] as Attempt<O>).outcome;
    });
    return outcomes;
  }

  /** lookup-self answers 403 exactly when the token is invalid (expired, revoked). */
  async #tokenStillValid(token: SecretValue, signal: AbortSignal): Promise<boolean> {
    try {
      await this.#client.read('auth/token/lookup-self', { token: token.revealText(), signal });
      return true;
    } catch (error) {
      const mapped = mapVaultError(error, { operation: 'token lookup', signal });
      if (mapped instanceof AuthFailedError) return false;
      throw mapped;
    }
  }

  async #fetchOne(ref: SecretRef, token: string, signal: AbortSignal): Promise<Attempt<FetchOutcome>> {
    const path = encodeSecretPath(ref.key);
    if (path === undefined) return refused(ref, invalidKey(ref));
    let url: string;
    if (this.#config.kvVersion === 2) {
      if (ref.version.kind === 'stage') return refused(ref, stageRefused());
      if (ref.version.kind === 'id' && !isVersionNumber(ref.version.id)) return refused(ref, badPin(ref.version.id));
      url = `${this.#mount}/data/${path}${ref.version.kind === 'id' ? `?version=${ref.version.id}` : ''}`;
    } else {
      if (ref.version.kind !== 'latest') return refused(ref, kv1Pin());
      url = `${this.#mount}/${path}`;
    }
    const answer = await this.#read(url, token, signal, 'read', ref);
    if (!answer.ok) return answer.attempt;
    const payload = answer.response.data;
    let map: unknown;
    let version: string;
    if (this.#config.kvVersion === 2) {
      const { data, metadata } = (payload ?? {}) as { data?: unknown; metadata?: { version?: unknown } };
      map = data;
      version = typeof metadata?.version === 'number' ? String(metadata.version) : '';
    } else {
      map = payload;
      version = unversioned;
    }
    // A KV v2 version that was deleted reads as data: null.
    if (map === null || map === undefined) return refused(ref, new NotFoundError(`Vault read of "${ref.key}": not found (deleted)`));
    if (typeof map !== 'object' || version === '') {
      return refused(ref, new InvalidConfigError(`Vault read of "${ref.key}": not a KV v${this.#config.kvVersion} answer; check mount and kvVersion`));
    }
    const secret = { ref, value: SecretValue.fromString(JSON.stringify(map)), version, encoding: 'json' as const };
    return { outcome: { ok: true, secret }, denied: false };
  }

  #versionWithoutCall(ref: SecretRef): VersionOutcome | undefined {
    if (encodeSecretPath(ref.key) === undefined) return { ok: false, ref, error: invalidKey(ref) };
    if (this.#config.kvVersion === 1) {
      return ref.version.kind === 'latest' ? { ok: true, ref, version: unversioned } : { ok: false, ref, error: kv1Pin() };
    }
    if (ref.version.kind === 'stage') return { ok: false, ref, error: stageRefused() };
    if (ref.version.kind === 'id') {
      // A KV v2 version number is immutable: the pin is the version.
      return isVersionNumber(ref.version.id) ? { ok: true, ref, version: ref.version.id } : { ok: false, ref, error: badPin(ref.version.id) };
    }
    return undefined;
  }

  /**
   * KV v2 metadata: `current_version` without reading the value. If the policy grants the data
   * path but not the metadata path, we fall back to reading the data and keeping only its version
   * (ADR 0060; grant `read` on `<mount>/metadata/*` to avoid it).
   */
  async #currentVersion(ref: SecretRef, token: string, signal: AbortSignal): Promise<Attempt<VersionOutcome>> {
    const path = encodeSecretPath(ref.key) as string;
    const answer = await this.#read(`${this.#mount}/metadata/${path}`, token, signal, 'metadata read', ref);
    if (!answer.ok) {
      if (!answer.attempt.denied) return { outcome: answer.attempt.outcome, denied: false };
      const viaData = await this.#fetchOne(ref, token, signal);
      const o = viaData.outcome;
      return { outcome: o.ok ? { ok: true, ref, version: o.secret.version } : o, denied: viaData.denied };
    }
    const meta = (answer.response.data ?? {}) as { current_version?: unknown; versions?: unknown };
    const current = typeof meta.current_version === 'number' ? meta.current_version : 0;
    const versions = (typeof meta.versions === 'object' && meta.versions !== null ? meta.versions : {}) as Record<string, unknown>;
    const entry = versions[String(current)] as { deletion_time?: unknown; destroyed?: unknown } | undefined;
    const deleted = entry === undefined || entry.destroyed === true || (typeof entry.deletion_time === 'string' && entry.deletion_time !== '');
    if (current === 0 || deleted) {
      return { outcome: { ok: false, ref, error: new NotFoundError(`Vault metadata of "${ref.key}": current version is deleted`) }, denied: false };
    }
    return { outcome: { ok: true, ref, version: String(current) }, denied: false };
  }

  /** One GET; per-path failures become refused attempts, server-wide failures throw. */
  async #read(
    url: string,
    token: string,
    signal: AbortSignal,
    operation: VaultOperation,
    ref: SecretRef,
  ): Promise<{ ok: true; response: VaultResponse } | { ok: false; attempt: Attempt<{ ok: false; ref: SecretRef; error: BackendError }> }> {
    try {
      return { ok: true, response: await this.#client.read(url, { token, signal }) };
    } catch (error) {
      const mapped = mapVaultError(error, { operation, path: ref.key, signal, credentials: [token] });
      if (!isPathFailure(error, mapped)) throw mapped;
      return { ok: false, attempt: { outcome: { ok: false, ref, error: mapped }, denied: mapped instanceof AuthFailedError } };
    }
  }
}

/** 4xx answers (but 429) concern the path; everything else concerns the server and fails the call. */
function isPathFailure(raw: unknown, mapped: BackendError): boolean {
  const status = (raw as { response?: { statusCode?: unknown } } | null)?.response?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 429 && !mapped.retryable;
}

function refused(ref: SecretRef, error: BackendError): Attempt<FetchOutcome> {
  return { outcome: { ok: false, ref, error }, denied: false };
}

function isVersionNumber(id: string): boolean {
  return /^[1-9][0-9]{0,9}$/.test(id);
}

function invalidKey(ref: SecretRef): InvalidConfigError {
  return new InvalidConfigError(`Vault key "${ref.key.slice(0, 200)}" is not a valid secret path (no leading/trailing "/", no empty, "." or ".." segments)`);
}

function stageRefused(): InvalidConfigError {
  return new InvalidConfigError('Vault has no version stages; pin a KV v2 version number instead');
}

function badPin(id: string): InvalidConfigError {
  return new InvalidConfigError(`Vault KV v2 version "${id.slice(0, 40)}" is not a positive version number`);
}

function kv1Pin(): InvalidConfigError {
  return new InvalidConfigError('Vault KV v1 has no versions; a version pin needs a KV v2 mount');
}
