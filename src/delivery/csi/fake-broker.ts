import { createHash } from 'node:crypto';
import type { BrokerError, ChangesAnswer, ChangesRequest, PublishAnswer, PublishBatchAnswer, PublishBatchRequest, PublishRequest, PublishedFile } from '../../broker/broker.protocol.ts';
import { BrokerRefusal, BrokerUnreachable, type NodeBrokerPort } from './broker.port.ts';

/**
 * An in-process {@link NodeBrokerPort} for unit tests (a fake of OUR port, not of any Kubernetes
 * API): bindings hold plain files, pods are entitled per binding, and the broker can be taken down.
 */
export class FakeBroker implements NodeBrokerPort {
  readonly #bindings = new Map<string, { files: { path: string; mode: number; content: string }[]; entitled: Set<string> }>();
  readonly #waiters = new Set<() => void>();
  /** Every publish request received (tests check the pod identity and token passed on). */
  readonly publishes: PublishRequest[] = [];
  /** How many `/v1/publish-batch` requests were received (their volumes are in `publishes` too). */
  batchRequests = 0;
  /** False: answers `/v1/publish-batch` as a broker that predates it (404). */
  batches = true;
  /** How many change polls were received. */
  changePolls = 0;
  down = false;

  /** Sets a binding's files (a rotation when it existed) and wakes change polls. */
  setFiles(namespace: string, binding: string, files: { path: string; mode: number; content: string }[]): void {
    const key = `${namespace}/${binding}`;
    const entry = this.#bindings.get(key);
    if (entry === undefined) this.#bindings.set(key, { files, entitled: new Set() });
    else entry.files = files;
    this.#notify();
  }

  entitle(namespace: string, binding: string, podName: string): void {
    this.#bindings.get(`${namespace}/${binding}`)?.entitled.add(podName);
    this.#notify();
  }

  revoke(namespace: string, binding: string, podName: string): void {
    this.#bindings.get(`${namespace}/${binding}`)?.entitled.delete(podName);
    this.#notify();
  }

  setDown(down: boolean): void {
    this.down = down;
    this.#notify();
  }

  async publish(request: PublishRequest): Promise<PublishAnswer> {
    await Promise.resolve();
    if (this.down) throw new BrokerUnreachable('broker unreachable: connect ECONNREFUSED');
    this.publishes.push(request);
    const entry = this.#bindings.get(`${request.pod.namespace}/${request.binding}`);
    if (entry === undefined) throw new BrokerRefusal(404, 'BindingNotFound', `binding ${request.binding} not found`);
    if (!entry.entitled.has(request.pod.name)) throw new BrokerRefusal(403, 'NotEntitled', 'pod is not entitled to this binding');
    const files: PublishedFile[] = entry.files.map((file) => ({ path: file.path, mode: file.mode, contentBase64: Buffer.from(file.content).toString('base64') }));
    return { volumeId: request.volumeId, contentHash: hashOf(entry.files), files };
  }

  async publishBatch(request: PublishBatchRequest): Promise<PublishBatchAnswer> {
    await Promise.resolve();
    if (this.down) throw new BrokerUnreachable('broker unreachable: connect ECONNREFUSED');
    if (!this.batches) throw new BrokerRefusal(404, 'InvalidSpec', 'no such endpoint');
    this.batchRequests++;
    const fileSets: { contentHash: string; files: PublishedFile[] }[] = [];
    const results: PublishBatchAnswer['results'][number][] = [];
    for (const volume of request.volumes) {
      try {
        const answer = await this.publish(volume);
        let fileSet = fileSets.findIndex((set) => set.contentHash === answer.contentHash);
        if (fileSet < 0) fileSet = fileSets.push({ contentHash: answer.contentHash, files: [...answer.files] }) - 1;
        results.push({ volumeId: volume.volumeId, contentHash: answer.contentHash, fileSet });
      } catch (error) {
        if (!(error instanceof BrokerRefusal)) throw error;
        results.push({ volumeId: volume.volumeId, error: { status: error.status, reason: error.reason as BrokerError['reason'], message: error.message } });
      }
    }
    return { results, fileSets };
  }

  async changes(request: ChangesRequest, signal: AbortSignal): Promise<ChangesAnswer> {
    this.changePolls++;
    const deadline = Date.now() + request.waitSeconds * 1000;
    for (;;) {
      if (signal.aborted) throw new Error('aborted');
      if (this.down) throw new BrokerUnreachable('broker unreachable: connect ECONNREFUSED');
      const changed: ChangesAnswer['changed'][number][] = [];
      for (const volume of request.volumes) {
        const entry = this.#bindings.get(`${volume.namespace}/${volume.binding}`);
        if (entry === undefined || !entry.entitled.has(volume.pod.name)) {
          // Like the real broker: answered `revoked` whatever hash the node sends.
          changed.push({ volumeId: volume.volumeId, contentHash: null, revoked: true });
          continue;
        }
        const hash = hashOf(entry.files);
        if (hash !== volume.contentHash) changed.push({ volumeId: volume.volumeId, contentHash: hash, revoked: false });
      }
      if (changed.length > 0 || Date.now() >= deadline) return { changed };
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
        this.#waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

function hashOf(files: readonly { path: string; mode: number; content: string }[]): string {
  return createHash('sha256').update(JSON.stringify(files)).digest('hex').slice(0, 16);
}
