import {
  BatchGetSecretValueCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  SecretsManagerClient,
  type GetSecretValueCommandInput,
  type SecretValueEntry,
} from '@aws-sdk/client-secrets-manager';
import {
  AuthFailedError,
  InvalidConfigError,
  NotFoundError,
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
import { mapWithConcurrency, raceWithSignal, throwIfAborted } from '../provider.support.ts';
import { awsCredentials, type KnownCredentials } from './aws.auth.ts';
import type { AwsConfig } from './aws.config.ts';
import { mapAwsError } from './aws.errors.ts';

/**
 * AWS Secrets Manager. Current versions are read with BatchGetSecretValue, 20 ids per call (it
 * takes a SecretIdList or Filters, never both, and returns only AWSCURRENT); pinned references
 * (VersionId or a staging label) are read one by one with GetSecretValue, always naming a
 * VersionId or VersionStage. Version checks use DescribeSecret (VersionIdsToStages), which reads
 * no value. If the identity may not call BatchGetSecretValue (it needs its own IAM action), we
 * fall back to GetSecretValue per id and retry the batch call after a while. ADR 0063.
 *
 * The SDK's own retries are off (maxAttempts 1): the registry owns retry, backoff and the rate
 * budget, and throttling must reach it as ThrottledError rather than be slept away here.
 */

const batchSize = 20;
const concurrency = 8;
const batchConcurrency = 4;
/** After BatchGetSecretValue was refused, use single reads for this long before trying again. */
const batchDeniedRetryMs = 30 * 60_000;

export class AwsSecretsManagerBackend implements SecretBackend {
  readonly provider = 'awsSecretsManager' as const;
  readonly #client: SecretsManagerClient;
  readonly #known: KnownCredentials;
  readonly #now: () => number;
  #batchDeniedUntil = 0;

  constructor(config: AwsConfig, context: BackendContext, now: () => number = Date.now) {
    const credentials = awsCredentials(config, context, now);
    this.#known = credentials.known;
    this.#now = now;
    this.#client = new SecretsManagerClient({
      region: config.region,
      maxAttempts: 1,
      ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
      ...(credentials.provider === undefined ? {} : { credentials: credentials.provider }),
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    });
  }

  async fetch(refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]> {
    const signal = options.signal;
    throwIfAborted(signal, 'AWS fetch');
    const outcomes = new Array<FetchOutcome | undefined>(refs.length);
    const latest: number[] = [];
    refs.forEach((ref, i) => {
      const invalid = invalidRef(ref);
      if (invalid !== undefined) outcomes[i] = { ok: false, ref, error: invalid };
      else if (ref.version.kind === 'latest') latest.push(i);
    });
    const single: number[] = refs.flatMap((ref, i) => (outcomes[i] === undefined && ref.version.kind !== 'latest' ? [i] : []));

    let batchRefused = false;
    if (latest.length > 0 && this.#now() >= this.#batchDeniedUntil) {
      const batch = await this.#batchLatest(refs, latest, outcomes, signal);
      single.push(...batch.unresolved);
      batchRefused = batch.refused;
    } else {
      single.push(...latest);
    }
    let singles: FetchOutcome[];
    try {
      singles = await mapWithConcurrency(single, concurrency, (i) => this.#getOne(refs[i] as SecretRef, signal));
    } catch (error) {
      // Single reads refused too: the credentials are at fault, not the batch permission.
      if (batchRefused && error instanceof AuthFailedError) this.#batchDeniedUntil = 0;
      throw error;
    }
    single.forEach((refIndex, j) => {
      outcomes[refIndex] = singles[j];
    });
    return outcomes.map((o, i) => o ?? { ok: false, ref: refs[i] as SecretRef, error: new NotFoundError('AWS: no answer for this secret') });
  }

  async versions(refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]> {
    const signal = options.signal;
    throwIfAborted(signal, 'AWS version check');
    return mapWithConcurrency(refs, concurrency, async (ref): Promise<VersionOutcome> => {
      const invalid = invalidRef(ref);
      if (invalid !== undefined) return { ok: false, ref, error: invalid };
      // A VersionId is immutable: the pin is the version.
      if (ref.version.kind === 'id') return { ok: true, ref, version: ref.version.id };
      const stage = ref.version.kind === 'stage' ? ref.version.stage : 'AWSCURRENT';
      try {
        const described = await this.#race(this.#client.send(new DescribeSecretCommand({ SecretId: ref.key }), { abortSignal: signal }), signal, 'DescribeSecret');
        if (described.DeletedDate !== undefined) return { ok: false, ref, error: new NotFoundError(`AWS DescribeSecret of "${ref.key}": marked for deletion`) };
        const entry = Object.entries(described.VersionIdsToStages ?? {}).find(([, stages]) => stages.includes(stage));
        if (entry === undefined) return { ok: false, ref, error: new NotFoundError(`AWS secret "${ref.key}" has no version with stage ${stage}`) };
        return { ok: true, ref, version: entry[0] };
      } catch (error) {
        return { ok: false, ref, error: this.#perRefOrThrow(error, 'DescribeSecret', ref.key, signal) };
      }
    });
  }

  async checkConnectivity(options: CallOptions): Promise<void> {
    throwIfAborted(options.signal, 'AWS connectivity check');
    // Credentials and endpoint: a describe of a name that cannot exist must answer NotFound.
    try {
      await this.#race(this.#client.send(new DescribeSecretCommand({ SecretId: 'secret-binder-connectivity-check' }), { abortSignal: options.signal }), options.signal, 'DescribeSecret');
    } catch (error) {
      const mapped = mapAwsError(error, { operation: 'connectivity check', signal: options.signal, credentials: this.#known.current() });
      if (mapped instanceof NotFoundError) return;
      throw mapped;
    }
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }

  /**
   * Reads the current version of `indexes` by batches of 20; fills `outcomes`, returns the indexes
   * the batch could not answer (refused calls, partial ARNs it did not echo back), to be read one
   * by one, and whether a batch call was refused.
   */
  async #batchLatest(
    refs: readonly SecretRef[],
    indexes: readonly number[],
    outcomes: (FetchOutcome | undefined)[],
    signal: AbortSignal,
  ): Promise<{ unresolved: number[]; refused: boolean }> {
    const keys = [...new Set(indexes.map((i) => (refs[i] as SecretRef).key))];
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += batchSize) chunks.push(keys.slice(i, i + batchSize));
    const answers = new Map<string, { entry: SecretValueEntry } | { error: BackendError }>();
    let refused = false;
    await mapWithConcurrency(chunks, batchConcurrency, async (chunk) => {
      let answer;
      try {
        answer = await this.#race(this.#client.send(new BatchGetSecretValueCommand({ SecretIdList: chunk }), { abortSignal: signal }), signal, 'BatchGetSecretValue');
      } catch (error) {
        const mapped = mapAwsError(error, { operation: 'BatchGetSecretValue', signal, credentials: this.#known.current() });
        if (mapped instanceof AuthFailedError) {
          // The identity may lack secretsmanager:BatchGetSecretValue (its own IAM action); single
          // reads may still work. If they fail too, fetch() clears this again.
          this.#batchDeniedUntil = this.#now() + batchDeniedRetryMs;
          refused = true;
          return;
        }
        throw mapped;
      }
      const values = answer.SecretValues ?? [];
      for (const key of chunk) {
        const entry = values.find((v) => v.Name === key || v.ARN === key) ?? values.find((v) => isPartialArnOf(key, v.ARN));
        const error = (answer.Errors ?? []).find((e) => e.SecretId === key);
        if (entry !== undefined) answers.set(key, { entry });
        else if (error !== undefined) {
          const synthetic = Object.assign(new Error(error.Message ?? ''), { name: error.ErrorCode ?? 'Error' });
          answers.set(key, { error: this.#perRefOrThrow(synthetic, 'BatchGetSecretValue', key, signal) });
        }
      }
    });
    const unresolved: number[] = [];
    for (const i of indexes) {
      const ref = refs[i] as SecretRef;
      const answer = answers.get(ref.key);
      if (answer === undefined) unresolved.push(i);
      else outcomes[i] = 'entry' in answer ? toOutcome(ref, answer.entry) : { ok: false, ref, error: answer.error };
    }
    return { unresolved, refused };
  }

  async #getOne(ref: SecretRef, signal: AbortSignal): Promise<FetchOutcome> {
    const input: GetSecretValueCommandInput =
      ref.version.kind === 'id'
        ? { SecretId: ref.key, VersionId: ref.version.id }
        : { SecretId: ref.key, VersionStage: ref.version.kind === 'stage' ? ref.version.stage : 'AWSCURRENT' };
    try {
      return toOutcome(ref, await this.#race(this.#client.send(new GetSecretValueCommand(input), { abortSignal: signal }), signal, 'GetSecretValue'));
    } catch (error) {
      return { ok: false, ref, error: this.#perRefOrThrow(error, 'GetSecretValue', ref.key, signal) };
    }
  }

  /**
   * Errors that concern one secret (not found, denied by its policy, bad version, KMS) are
   * returned; errors that concern the whole backend (credentials, throttling, outage) throw.
   */
  #perRefOrThrow(error: unknown, operation: string, key: string, signal: AbortSignal): BackendError {
    const mapped = mapAwsError(error, { operation, key, signal, credentials: this.#known.current() });
    const perRef =
      mapped instanceof NotFoundError ||
      mapped instanceof InvalidConfigError ||
      (mapped instanceof AuthFailedError && /AccessDenied|DecryptionFailure|KMS/.test(mapped.message));
    if (!perRef) throw mapped;
    return mapped;
  }

  /**
   * The abortSignal stops the HTTP request; the race also covers credential resolution (STS),
   * which the SDK does not abort.
   */
  #race<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
    return raceWithSignal(work, signal, `AWS ${what}`);
  }
}

function toOutcome(ref: SecretRef, entry: { SecretString?: string | undefined; SecretBinary?: Uint8Array | undefined; VersionId?: string | undefined }): FetchOutcome {
  const version = entry.VersionId;
  if (version === undefined || version === '') {
    return { ok: false, ref, error: new NotFoundError(`AWS secret "${ref.key}": answer without a version id`) };
  }
  let secret: FetchedSecret;
  if (entry.SecretBinary !== undefined) {
    secret = { ref, value: SecretValue.fromBytes(entry.SecretBinary), version, encoding: 'binary' };
  } else if (entry.SecretString !== undefined) {
    secret = { ref, value: SecretValue.fromString(entry.SecretString), version, encoding: isJsonObject(entry.SecretString) ? 'json' : 'text' };
  } else {
    return { ok: false, ref, error: new NotFoundError(`AWS secret "${ref.key}" version ${version} has no value`) };
  }
  return { ok: true, secret };
}

/** `json` only for an object: property selection needs fields (a bare "42" or "[...]" is text). */
function isJsonObject(text: string): boolean {
  const t = text.trimStart();
  if (!t.startsWith('{')) return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  } catch {
    return false;
  }
}

/** A partial ARN (without the random 6-character suffix AWS appends to secret ARNs). */
function isPartialArnOf(key: string, arn: string | undefined): boolean {
  return key.startsWith('arn:') && arn !== undefined && arn.startsWith(`${key}-`) && arn.length === key.length + 7;
}

function invalidRef(ref: SecretRef): InvalidConfigError | undefined {
  if (ref.key === '' || ref.key.length > 2048) return new InvalidConfigError('AWS secret id must be 1 to 2048 characters');
  if (ref.version.kind === 'id' && !/^[A-Za-z0-9-]{32,64}$/.test(ref.version.id)) {
    return new InvalidConfigError(`AWS VersionId "${ref.version.id.slice(0, 64)}" is not a version id (32–64 letters, digits, dashes)`);
  }
  if (ref.version.kind === 'stage' && !/^[A-Za-z0-9_+=,.@-]{1,256}$/.test(ref.version.stage)) {
    return new InvalidConfigError(`AWS VersionStage "${ref.version.stage.slice(0, 64)}" is not a staging label`);
  }
  return undefined;
}
