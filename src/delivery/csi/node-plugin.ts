import { readdir, rm, rmdir, stat } from 'node:fs/promises';
import pLimit, { type LimitFunction } from 'p-limit';
import { maxPublishBatch, type ChangesAnswer, type PublishAnswer, type PublishBatchAnswer, type PublishedFile, type PublishRequest } from '../../broker/broker.protocol.ts';
import { publishWithNodeKey } from './node-key.ts';
import type { Logger } from '../../observability/logger.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { sanitizeError } from '../../observability/sanitize.ts';
import { writeFileSet } from '../files/atomic-writer.ts';
import type { RenderedFile } from '../files/file-set.ts';
import { BrokerRefusal, type NodeBrokerPort } from './broker.port.ts';
import { mountVolume, unmountVolume, type Mounter, type VolumeMount } from './tmpfs.mounter.ts';
import type { PodVolume } from './volume-context.ts';

export interface NodePluginOptions {
  readonly broker: NodeBrokerPort;
  readonly mounter: Mounter;
  readonly logger: Logger;
  /** Size limit of every volume's tmpfs. */
  readonly tmpfsSizeBytes: number;
  /** How long one change long-poll may be held open by the broker. */
  readonly changesWaitSeconds: number;
  /** Backoff after a failed change poll or refresh: from `min` doubling up to `max`, jittered. */
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  /** How many changed volumes' file sets are written at once after a change answer (default 32). */
  readonly refreshConcurrency?: number;
  /** How many changed volumes one `/v1/publish-batch` request asks for (default 64, at most 256; ADR 0224). */
  readonly refreshBatchSize?: number;
}

const defaultRefreshConcurrency = 32;
const defaultRefreshBatchSize = 64;
/** Batch requests of one change answer in flight at once. */
const batchesInFlight = 4;

type Change = ChangesAnswer['changed'][number];
type Outcome = 'done' | 'noop' | 'failed';

export interface PublishVolume extends PodVolume {
  readonly volumeId: string;
  readonly targetPath: string;
  /** NodePublishVolume's `readonly` (or a reader-only access mode): the pod's view is read-only. */
  readonly readOnly: boolean;
}

/** A volume this plugin holds. `contentHash` is null while the volume is empty (revoked). */
interface VolumeState {
  readonly volumeId: string;
  readonly targetPath: string;
  /** Where the files are written: the target, or the writable view of a read-only one (ADR 0165). */
  readonly writePath: string;
  /** The device of our tmpfs at `writePath`: another device there means the mount is gone. */
  readonly device: number;
  readonly request: PodVolume;
  contentHash: string | null;
  /** How many file sets the atomic writer has switched in (`..data` swaps), first publish included. */
  swaps: number;
}

/**
 * The node plugin's behaviour, apart from the gRPC transport (ADR 0088): publishes a volume (tmpfs +
 * atomic file set), refreshes it on republish and on the broker's change stream, empties it on
 * revocation, and never removes or damages files because the broker is unreachable (invariant 7).
 * Calls for one volume are serialized.
 */
export class NodePlugin {
  readonly #options: NodePluginOptions;
  readonly #volumes = new Map<string, VolumeState>();
  readonly #locks = new Map<string, Promise<unknown>>();
  #wake: AbortController = new AbortController();
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(options: NodePluginOptions) {
    this.#options = options;
  }

  /** NodePublishVolume: first publish, or a republish (CSIDriver `requiresRepublish`). */
  async publish(volume: PublishVolume): Promise<void> {
    await this.#serialized(volume.volumeId, async () => {
      const existing = this.#volumes.get(volume.volumeId);
      if (existing !== undefined && existing.targetPath === volume.targetPath) {
        const state: VolumeState = { ...existing, request: volume };
        this.#volumes.set(volume.volumeId, state);
        // A republish that cannot reach the broker still succeeds: the pod keeps its files (last
        // known good, invariant 7) and the change stream retries; the failure is logged in #refresh.
        await this.#refresh(state, null).catch(() => undefined);
        return;
      }
      await this.#firstPublish(volume);
    });
    this.#wakeLoop();
  }

  /** NodeUnpublishVolume: wipes the files, unmounts and removes the target; idempotent. */
  async unpublish(volumeId: string, targetPath: string): Promise<void> {
    await this.#serialized(volumeId, async () => {
      await unmountVolume(this.#options.mounter, targetPath);
      await rmdir(targetPath).catch(async (err: unknown) => {
        if (errnoOf(err) === 'ENOENT') return;
        if (errnoOf(err) !== 'ENOTEMPTY') throw err;
        // Not a mount (any more) but files remain, e.g. from a failed unmount earlier: ours to wipe.
        await rm(targetPath, { recursive: true, force: true });
      });
      this.#volumes.delete(volumeId);
      this.#options.logger.info('volume unpublished', { volumeId });
    });
    this.#wakeLoop();
  }

  /** The volumes held now (for diagnostics and tests); no tokens. */
  volumes(): { volumeId: string; targetPath: string; contentHash: string | null; swaps: number }[] {
    return [...this.#volumes.values()].map(({ volumeId, targetPath, contentHash, swaps }) => ({ volumeId, targetPath, contentHash, swaps }));
  }

  /** Starts following the broker's change stream. */
  start(): void {
    this.#loop ??= this.#followChanges();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake.abort();
    await this.#loop;
    await Promise.allSettled([...this.#locks.values()]);
  }

  async #firstPublish(volume: PublishVolume): Promise<void> {
    const log = this.#logFor(volume);
    let mount: VolumeMount | undefined;
    let answer: PublishAnswer;
    let swapped: boolean;
    try {
      mount = await mountVolume(this.#options.mounter, volume.targetPath, {
        sizeBytes: this.#options.tmpfsSizeBytes,
        mode: 0o755,
        readOnly: volume.readOnly,
        ...(volume.gid === undefined ? {} : { gid: volume.gid }),
      });
      answer = await this.#publish(this.#publishRequest(volume.volumeId, volume), null);
      swapped = (await writeFileSet(mount.writePath, filesOf(answer.files), volume.gid === undefined ? {} : { gid: volume.gid })).changed;
    } catch (err) {
      // Nothing is served yet: leave no mount behind; the kubelet retries the call. A mount found
      // from before (plugin restart) keeps its files (invariant 7).
      if (mount?.mountedNow === true) await unmountVolume(this.#options.mounter, volume.targetPath).catch(() => undefined);
      // Fails (EBUSY) for a mount found from before, as it should.
      if (mount?.mountedNow !== false) await rmdir(volume.targetPath).catch(() => undefined);
      log.warn('publish refused or failed', { error: sanitizeError(err) });
      throw err;
    }
    const device = (await stat(mount.writePath)).dev;
    this.#volumes.set(volume.volumeId, { volumeId: volume.volumeId, targetPath: volume.targetPath, writePath: mount.writePath, device, request: volume, contentHash: answer.contentHash, swaps: swapped ? 1 : 0 });
    log.info('volume published', { files: answer.files.length, contentHash: answer.contentHash });
  }

  /**
   * Re-reads the volume's file set and rewrites it when its hash differs. A refusal that revokes
   * empties the volume; any other failure keeps the files and is reported to the caller.
   */
  async #refresh(state: VolumeState, expectedHash: string | null): Promise<'refreshed' | 'unchanged' | 'revoked'> {
    const log = this.#logFor({ ...state.request, volumeId: state.volumeId });
    let answer: PublishAnswer;
    try {
      answer = await this.#publish(this.#publishRequest(state.volumeId, state.request), state.contentHash);
    } catch (err) {
      if (err instanceof BrokerRefusal && err.revokes) {
        await this.#empty(state);
        log.warn('volume revoked by the broker: files removed', { reason: err.reason });
        return 'revoked';
      }
      log.warn('refresh failed: keeping the current files', { error: sanitizeError(err) });
      throw err;
    }
    if (answer.contentHash === state.contentHash) return 'unchanged';
    if (expectedHash !== null && answer.contentHash !== expectedHash) log.debug('content moved on again', { contentHash: answer.contentHash });
    await this.#write(state, filesOf(answer.files), answer.contentHash, log);
    return 'refreshed';
  }

  /** Switches the volume to `files` (atomic file set) and remembers their hash. */
  async #write(state: VolumeState, files: readonly RenderedFile[], contentHash: string, log: Logger): Promise<void> {
    await this.#assertMounted(state);
    // The hash differs from the one the files were written with: no need to compare them byte by byte.
    const knownChanged = state.contentHash !== null && state.contentHash !== contentHash;
    const { changed } = await writeFileSet(state.writePath, files, { knownChanged, ...(state.request.gid === undefined ? {} : { gid: state.request.gid }) });
    if (changed) state.swaps++;
    state.contentHash = contentHash;
    log.info('volume refreshed', { files: files.length, contentHash });
  }

  /**
   * Applies one change answer: revocations empty their volumes; changed volumes are re-read in
   * batches (one broker request per batch, not per volume) and written a few at a time (ADR 0224).
   * Every volume's write stays serialized with its publish/unpublish calls.
   */
  async #apply(changes: readonly Change[]): Promise<Set<Outcome>> {
    const outcomes = new Set<Outcome>();
    const writes = pLimit(this.#options.refreshConcurrency ?? defaultRefreshConcurrency);
    const toRead: { change: Change; state: VolumeState; heldHash: string | null }[] = [];
    for (const change of changes) {
      const state = this.#volumes.get(change.volumeId);
      if (state === undefined || (!change.revoked && change.contentHash === state.contentHash)) outcomes.add('noop');
      else if (!change.revoked) toRead.push({ change, state, heldHash: state.contentHash });
    }
    const revocations = writes.map(
      changes.filter((c) => c.revoked),
      (change) =>
        this.#serialized(change.volumeId, async (): Promise<Outcome> => {
          const state = this.#volumes.get(change.volumeId);
          if (state === undefined || (state.contentHash === null && !(await hasFiles(state.targetPath)))) return 'noop';
          await this.#empty(state);
          this.#logFor({ ...state.request, volumeId: state.volumeId }).warn('volume revoked: files removed', {});
          return 'done';
        }),
    );
    const size = Math.max(1, Math.min(maxPublishBatch, this.#options.refreshBatchSize ?? defaultRefreshBatchSize));
    const batches = Array.from({ length: Math.ceil(toRead.length / size) }, (_, i) => toRead.slice(i * size, (i + 1) * size));
    const reads = pLimit(batchesInFlight).map(batches, (batch) => this.#refreshBatch(batch, writes));
    for (const outcome of [...(await revocations), ...(await reads).flat()]) outcomes.add(outcome);
    return outcomes;
  }

  /**
   * Re-reads a batch of volumes with one broker request and writes each answer. A volume whose
   * hash moved while the batch was read (a republish wrote it) is left alone: that write read the
   * content later than this batch. A broker without `/v1/publish-batch` (404: an older controller
   * during an upgrade) gets one publish per volume, as before.
   */
  async #refreshBatch(batch: readonly { change: Change; state: VolumeState; heldHash: string | null }[], writes: LimitFunction): Promise<Outcome[]> {
    let answer: PublishBatchAnswer;
    try {
      answer = await this.#options.broker.publishBatch({ volumes: batch.map(({ state }) => this.#publishRequest(state.volumeId, state.request)) });
    } catch (err) {
      if (err instanceof BrokerRefusal && err.status === 404) {
        return writes.map(batch, ({ change }) =>
          this.#serialized(change.volumeId, async (): Promise<Outcome> => {
            const state = this.#volumes.get(change.volumeId);
            if (state === undefined || change.contentHash === state.contentHash) return 'noop';
            return this.#refresh(state, change.contentHash).then(
              (result) => (result === 'unchanged' ? 'noop' : 'done'),
              () => 'failed' as const,
            );
          }),
        );
      }
      this.#options.logger.warn('refresh failed: keeping the current files', { volumes: batch.length, error: sanitizeError(err) });
      return ['failed'];
    }
    const fileSets = answer.fileSets.map((set) => filesOf(set.files));
    return writes.map(batch, ({ state: asked, heldHash }, i) =>
      this.#serialized(asked.volumeId, async (): Promise<Outcome> => {
        const result = answer.results[i];
        const state = this.#volumes.get(asked.volumeId);
        if (state === undefined || state.contentHash !== heldHash) return 'noop';
        const log = this.#logFor({ ...state.request, volumeId: state.volumeId });
        if (result?.volumeId !== state.volumeId) {
          log.warn('refresh failed: keeping the current files', { error: 'the broker answered another volume' });
          return 'failed';
        }
        if ('error' in result) {
          const refusal = new BrokerRefusal(result.error.status, result.error.reason, result.error.message);
          if (refusal.revokes) {
            await this.#empty(state);
            log.warn('volume revoked by the broker: files removed', { reason: refusal.reason });
            return 'done';
          }
          log.warn('refresh failed: keeping the current files', { error: sanitizeError(refusal) });
          return 'failed';
        }
        if (result.contentHash === state.contentHash) return 'noop';
        if ('certificateRequest' in result) {
          // A pki volume: a new key and CSR need a publish of its own (ADR 0263).
          return this.#refresh(state, result.contentHash).then(
            (outcome) => (outcome === 'unchanged' ? 'noop' : 'done'),
            () => 'failed' as const,
          );
        }
        const files = fileSets[result.fileSet];
        if (files === undefined) return 'failed';
        try {
          await this.#write(state, files, result.contentHash, log);
          return 'done';
        } catch (err) {
          log.warn('refresh failed: keeping the current files', { error: sanitizeError(err) });
          return 'failed';
        }
      }),
    );
  }

  async #empty(state: VolumeState): Promise<void> {
    // The mount stays (the pod keeps running); only the files go.
    await this.#assertMounted(state);
    if ((await writeFileSet(state.writePath, [])).changed) state.swaps++;
    state.contentHash = null;
  }

  /**
   * Files are written only into our tmpfs: if the mount we write through was removed behind our
   * back, its directory is plain disk now (invariant 2). Refusing keeps whatever the pod has.
   */
  async #assertMounted(state: VolumeState): Promise<void> {
    // One stat, not a mount table read: refreshes of hundreds of volumes stay cheap.
    if ((await stat(state.writePath).catch(() => undefined))?.dev === state.device) return;
    this.#logFor({ ...state.request, volumeId: state.volumeId }).warn('volume is no longer mounted: not writing its files', { path: state.writePath });
    throw new Error(`${state.writePath} is no longer a tmpfs mount: not writing to it`);
  }

  async #followChanges(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const wake = this.#wake;
      // An emptied (revoked) volume leaves the poll: the broker answers `revoked` for it at once,
      // every time. The kubelet's next republish brings it back when the pod is entitled again.
      const held = [...this.#volumes.values()].filter((v) => v.contentHash !== null);
      if (held.length === 0) {
        await waitFor(wake.signal);
        this.#rearm(wake);
        continue;
      }
      let failed = false;
      try {
        const answer = await this.#options.broker.changes(
          {
            volumes: held.map((v) => ({
              volumeId: v.volumeId,
              namespace: v.request.pod.namespace,
              binding: v.request.binding,
              contentHash: v.contentHash ?? '',
              pod: { name: v.request.pod.name, uid: v.request.pod.uid },
            })),
            waitSeconds: this.#options.changesWaitSeconds,
          },
          wake.signal,
        );
        const outcomes = await this.#apply(answer.changed);
        // Changes answered but none could be applied (e.g. the publish answer lags the stream's
        // hash): pace the next poll instead of spinning on the same answer.
        if (outcomes.has('failed') || (answer.changed.length > 0 && !outcomes.has('done'))) failed = true;
      } catch (err) {
        if (wake.signal.aborted) {
          this.#rearm(wake);
          continue;
        }
        failed = true;
        this.#options.logger.warn('change stream failed: keeping every volume as it is', { error: sanitizeError(err) });
      }
      if (failed) {
        // Retry with backoff: the broker (or a backend behind it) is down, and hammering it helps no one.
        failures++;
        await sleep(backoffMs(failures, this.#options.backoff), wake.signal);
        if (wake.signal.aborted) this.#rearm(wake);
      } else failures = 0;
    }
  }

  #rearm(fired: AbortController): void {
    if (this.#wake === fired && !this.#stopped) this.#wake = new AbortController();
  }

  #wakeLoop(): void {
    this.#wake.abort();
  }

  /** One publish; for a pki volume, the key pair is made here and only a CSR is sent (ADR 0263). */
  #publish(request: PublishRequest, heldHash: string | null): Promise<PublishAnswer> {
    return publishWithNodeKey((r) => this.#options.broker.publish(r), request, heldHash);
  }

  #publishRequest(volumeId: string, volume: PodVolume): { volumeId: string; pod: PodVolume['pod']; binding: string; podToken: string } {
    return { volumeId, pod: volume.pod, binding: volume.binding, podToken: volume.podToken };
  }

  #logFor(volume: PodVolume & { volumeId: string }): Logger {
    return this.#options.logger.child({ volumeId: volume.volumeId, pod: `${volume.pod.namespace}/${volume.pod.name}`, binding: volume.binding });
  }

  async #serialized<T>(volumeId: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(volumeId) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.#locks.set(volumeId, settled);
    try {
      return await next;
    } finally {
      if (this.#locks.get(volumeId) === settled) this.#locks.delete(volumeId);
    }
  }
}

function filesOf(files: readonly PublishedFile[]): RenderedFile[] {
  return files.map((file) => ({ path: file.path, mode: file.mode, content: SecretValue.fromBytes(Buffer.from(file.contentBase64, 'base64')) }));
}

async function hasFiles(dir: string): Promise<boolean> {
  return (await readdir(dir).catch(() => [] as string[])).some((entry) => !entry.startsWith('..'));
}

function backoffMs(failures: number, backoff: { minMs: number; maxMs: number }): number {
  const base = Math.min(backoff.maxMs, backoff.minMs * 2 ** Math.min(failures - 1, 20));
  return base / 2 + Math.random() * (base / 2);
}

function waitFor(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    signal.addEventListener(
      'abort',
      () => {
        resolve();
      },
      { once: true },
    );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function errnoOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}
