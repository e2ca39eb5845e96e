import { readdir, rm, rmdir, stat } from 'node:fs/promises';
import type { PublishAnswer, PublishRequest } from '../../broker/broker.protocol.ts';
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
  /** How many changed volumes are refreshed at once after a change answer (default 16). */
  readonly refreshConcurrency?: number;
}

const defaultRefreshConcurrency = 16;

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
      swapped = (await writeFileSet(mount.writePath, filesOf(answer), volume.gid === undefined ? {} : { gid: volume.gid })).changed;
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
    await this.#assertMounted(state);
    const { changed } = await writeFileSet(state.writePath, filesOf(answer), state.request.gid === undefined ? {} : { gid: state.request.gid });
    if (changed) state.swaps++;
    state.contentHash = answer.contentHash;
    log.info('volume refreshed', { files: answer.files.length, contentHash: answer.contentHash });
    return 'refreshed';
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
        const applied = { progressed: false };
        // Changed volumes are refreshed a few at a time: one rotation reaches every volume of the
        // node in about one broker round trip per batch, not one per volume (ADR 0105).
        await eachBounded(answer.changed, this.#options.refreshConcurrency ?? defaultRefreshConcurrency, async (change) => {
          const outcome = await this.#serialized(change.volumeId, async (): Promise<'done' | 'noop' | 'failed'> => {
            const state = this.#volumes.get(change.volumeId);
            if (state === undefined) return 'noop';
            if (change.revoked) {
              if (state.contentHash === null && !(await hasFiles(state.targetPath))) return 'noop';
              await this.#empty(state);
              this.#logFor({ ...state.request, volumeId: state.volumeId }).warn('volume revoked: files removed', {});
              return 'done';
            }
            if (change.contentHash === state.contentHash) return 'noop';
            return this.#refresh(state, change.contentHash).then(
              (result) => (result === 'unchanged' ? 'noop' : 'done'),
              () => 'failed' as const,
            );
          });
          if (outcome === 'failed') failed = true;
          if (outcome === 'done') applied.progressed = true;
        });
        // Changes answered but none could be applied (e.g. the publish answer lags the stream's
        // hash): pace the next poll instead of spinning on the same answer.
        if (answer.changed.length > 0 && !applied.progressed) failed = true;
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

/** Runs `task` for every item, at most `limit` at a time. */
async function eachBounded<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) await task(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function filesOf(answer: PublishAnswer): RenderedFile[] {
  return answer.files.map((file) => ({ path: file.path, mode: file.mode, content: SecretValue.fromBytes(Buffer.from(file.contentBase64, 'base64')) }));
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
