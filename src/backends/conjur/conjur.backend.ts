import {
  InvalidConfigError,
  NotFoundError,
  UnavailableError,
  type BackendContext,
  type BackendError,
  type CallOptions,
  type FetchOutcome,
  type FetchedSecret,
  type SecretBackend,
  type SecretRef,
  type VersionOutcome,
} from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { mapWithConcurrency, throwIfAborted } from '../provider.support.ts';
import { ConjurAuth } from './conjur.auth.ts';
import { ConjurClient, encodeId, statusError, type ConjurRequest, type ConjurResponse } from './conjur.client.ts';
import type { ConjurConfig } from './conjur.config.ts';

/**
 * CyberArk Conjur variables (ADR 0243). Keys are variable ids (`prod/db/password`).
 *
 * - `versions()`: `GET /resources/{account}/variable/{id}`, whose `secrets` list holds the version
 *   numbers of the variable's values — the version without the value (needs `read`);
 * - `fetch()`: the versions first, then every latest value in ONE batch,
 *   `GET /secrets?variable_ids=…` (needs `execute`). Versions first: a write in between labels a
 *   newer value with an older version, which the next check sees as a change and reads again —
 *   never an old value under a new version, which would hide the change. A pinned version is one
 *   `GET /secrets/{account}/variable/{id}?version=N`. Conjur answers a batch with 404 when any
 *   variable is missing or has no value; the provider then reads that batch's variables one by one
 *   to answer per reference;
 * - values are bytes: valid UTF-8 holding a JSON object is `json`, other UTF-8 `text`, anything
 *   else `binary` (Conjur's mime_type defaults to application/octet-stream for every variable, so it
 *   cannot tell). Batches ask for base64 so binary values survive the JSON answer.
 */

const concurrency = 8;
/** Variable ids per batch: keeps the URL well below common 8 KiB request-line limits. */
const maxBatch = 50;

export class ConjurBackend implements SecretBackend {
  readonly provider = 'conjur' as const;
  readonly #config: ConjurConfig;
  readonly #client: ConjurClient;
  readonly #auth: ConjurAuth;

  constructor(config: ConjurConfig, context: BackendContext, now?: () => number) {
    this.#config = config;
    this.#client = new ConjurClient(config.applianceUrl, config.caPem);
    this.#auth = new ConjurAuth(config, context, this.#client, now);
  }

  async fetch(refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]> {
    const { signal } = options;
    throwIfAborted(signal, 'Conjur fetch');
    const outcomes = new Array<FetchOutcome | undefined>(refs.length);
    const latest: { index: number; ref: SecretRef; version: string }[] = [];
    const versions = await this.versions(refs, options);
    await mapWithConcurrency(refs, concurrency, async (ref, index) => {
      const version = versions[index];
      if (version === undefined || !version.ok) {
        outcomes[index] = { ok: false, ref, error: version?.ok === false ? version.error : new UnavailableError('no version') };
        return;
      }
      if (ref.version.kind === 'id') outcomes[index] = await this.#readPinned(ref, version.version, signal);
      else latest.push({ index, ref, version: version.version });
    });
    for (let i = 0; i < latest.length; i += maxBatch) {
      const batch = latest.slice(i, i + maxBatch);
      const values = await this.#readBatch(batch.map((b) => b.ref.key), signal);
      for (const b of batch) {
        const value = values.get(b.ref.key);
        outcomes[b.index] =
          value === undefined
            ? { ok: false, ref: b.ref, error: new NotFoundError(`variable "${b.ref.key}" has no value`) }
            : value instanceof Error
              ? { ok: false, ref: b.ref, error: value }
              : { ok: true, secret: secretOf(b.ref, value, b.version) };
      }
    }
    return outcomes.map((o, i) => o ?? { ok: false, ref: refs[i] as SecretRef, error: new UnavailableError('not read') });
  }

  async versions(refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]> {
    const { signal } = options;
    throwIfAborted(signal, 'Conjur version check');
    return mapWithConcurrency(refs, concurrency, async (ref): Promise<VersionOutcome> => {
      if (ref.version.kind === 'stage') return { ok: false, ref, error: new InvalidConfigError('Conjur has no version stages: use version or nothing') };
      if (ref.version.kind === 'id') {
        if (!/^[1-9][0-9]{0,9}$/.test(ref.version.id)) return { ok: false, ref, error: new InvalidConfigError(`Conjur versions are numbers, not "${ref.version.id}"`) };
        return { ok: true, ref, version: ref.version.id };
      }
      const what = `Conjur version check of "${ref.key}"`;
      const response = await this.#call({ method: 'GET', path: `/resources/${encodeId(this.#config.account)}/variable/${encodeId(ref.key)}`, signal, what });
      if (response.status !== 200) return { ok: false, ref, error: statusError(response.status, what) };
      const version = latestVersion(response.body);
      if (version === undefined) return { ok: false, ref, error: new NotFoundError(`${what}: the variable has no value`) };
      return { ok: true, ref, version };
    });
  }

  async checkConnectivity(options: CallOptions): Promise<void> {
    throwIfAborted(options.signal, 'Conjur connectivity check');
    const what = 'Conjur connectivity check';
    const response = await this.#call({ method: 'GET', path: '/whoami', signal: options.signal, what });
    if (response.status !== 200) throw statusError(response.status, what);
  }

  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }

  /** One authorized call; a 401 (token expired early or revoked) logs in again once. */
  async #call(request: Omit<ConjurRequest, 'headers'> & { readonly headers?: Readonly<Record<string, string>> }): Promise<ConjurResponse> {
    const send = async (): Promise<ConjurResponse> =>
      this.#client.send({ ...request, headers: { ...request.headers, authorization: await this.#auth.header(request.signal) } });
    const first = await send();
    if (first.status !== 401) return first;
    this.#auth.invalidate();
    return send();
  }

  async #readPinned(ref: SecretRef, version: string, signal: AbortSignal): Promise<FetchOutcome> {
    const what = `Conjur read of "${ref.key}" version ${version}`;
    const response = await this.#call({
      method: 'GET',
      path: `/secrets/${encodeId(this.#config.account)}/variable/${encodeId(ref.key)}?version=${encodeURIComponent(version)}`,
      signal,
      what,
    });
    if (response.status !== 200) return { ok: false, ref, error: statusError(response.status, what) };
    return { ok: true, secret: secretOf(ref, response.body, version) };
  }

  /**
   * The latest values of `keys` in one batch call; after a 404 (some variable missing or empty),
   * one read per variable so each gets its own answer.
   */
  async #readBatch(keys: readonly string[], signal: AbortSignal): Promise<Map<string, Buffer | BackendError>> {
    const account = this.#config.account;
    const fullId = (key: string): string => `${account}:variable:${key}`;
    const ids = [...new Set(keys)].map((key) => encodeId(fullId(key))).join(',');
    const what = `Conjur batch read of ${String(keys.length)} variable${keys.length === 1 ? '' : 's'}`;
    const response = await this.#call({ method: 'GET', path: `/secrets?variable_ids=${ids}`, headers: { 'accept-encoding': 'base64' }, signal, what });
    const values = new Map<string, Buffer | BackendError>();
    if (response.status === 404) {
      await mapWithConcurrency([...new Set(keys)], concurrency, async (key) => {
        const one = `Conjur read of "${key}"`;
        const single = await this.#call({ method: 'GET', path: `/secrets/${encodeId(account)}/variable/${encodeId(key)}`, signal, what: one });
        values.set(key, single.status === 200 ? single.body : statusError(single.status, one));
      });
      return values;
    }
    if (response.status !== 200) throw statusError(response.status, what);
    let answer: unknown;
    try {
      answer = JSON.parse(response.body.toString('utf8'));
    } catch {
      throw new UnavailableError(`${what}: the answer is not JSON`);
    }
    if (typeof answer !== 'object' || answer === null) throw new UnavailableError(`${what}: the answer is not a JSON object`);
    const byId = answer as Record<string, unknown>;
    for (const key of keys) {
      const value = byId[fullId(key)];
      if (typeof value === 'string') values.set(key, Buffer.from(value, 'base64'));
    }
    return values;
  }
}

/** The highest version number in a resource's `secrets` list; undefined when it has no value. */
function latestVersion(body: Buffer): string | undefined {
  let resource: unknown;
  try {
    resource = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  const secrets = (resource as { secrets?: unknown }).secrets;
  if (!Array.isArray(secrets)) return undefined;
  const versions = secrets.map((s) => (s as { version?: unknown }).version).filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return versions.length === 0 ? undefined : String(Math.max(...versions));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function secretOf(ref: SecretRef, bytes: Buffer, version: string): FetchedSecret {
  let text: string | undefined;
  try {
    text = utf8.decode(bytes);
  } catch {
    text = undefined;
  }
  if (text === undefined) return { ref, value: SecretValue.fromBytes(bytes), version, encoding: 'binary' };
  return { ref, value: SecretValue.fromString(text), version, encoding: isJsonObject(text) ? 'json' : 'text' };
}

function isJsonObject(text: string): boolean {
  if (!text.trimStart().startsWith('{')) return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  } catch {
    return false;
  }
}
