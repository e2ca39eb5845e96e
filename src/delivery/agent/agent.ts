import type { PublishAnswer } from '../../broker/broker.protocol.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { BrokerRefusal } from '../csi/broker.port.ts';
import { clearFileSet, writeFileSet } from '../files/atomic-writer.ts';
import type { AgentBrokerPort } from './agent-broker.client.ts';

/**
 * The agent inside an agent pod (ADR 0250): fetches each binding's file set from the broker with
 * the pod's own token and writes it into the binding's memory volume with the CSI path's atomic
 * `..data` swap. `once` (init container) writes every binding and returns; `follow` (native
 * sidecar) then keeps the Refresh bindings current from the broker's change stream and empties a
 * revoked one. No Kubernetes client, no backend SDK, no logger or metrics library: what it says
 * goes to its log lines and {@link AgentStatus}.
 */

export interface AgentBinding {
  readonly name: string;
  /** The containers that mount it (for messages only). */
  readonly containers: readonly string[];
  readonly dir: string;
  /** Kept current (Refresh); otherwise written once. */
  readonly follow: boolean;
}

export interface AgentOptions {
  readonly broker: AgentBrokerPort;
  readonly bindings: readonly AgentBinding[];
  readonly mode: 'once' | 'follow';
  /** The pod's fsGroup: files get this group. */
  readonly gid?: number;
  /** How long the first fetch retries an unreachable broker before giving up with the cause. */
  readonly startTimeoutMs: number;
  readonly backoff: { readonly minMs: number; readonly maxMs: number };
  readonly changesWaitSeconds: number;
  readonly log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, string | number | boolean>) => void;
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<boolean>;
}

/** What the sidecar reports on /readyz and /metrics. */
export interface AgentStatus {
  /** Every binding written once. */
  ready: boolean;
  /** The last broker call succeeded (1) or failed (0: the files are kept). */
  brokerReachable: boolean;
  brokerFailures: number;
  fileSetWrites: number;
  revocations: number;
  lastSuccessSeconds: number;
}

/** The broker refused the pod a binding: the pod must not start (exit code 1, termination message). */
export class AgentDenied extends Error {
  constructor(binding: AgentBinding, refusal: BrokerRefusal) {
    super(`secret-binder agent: binding ${binding.name} (for container ${binding.containers.join(', ') || '?'}) was refused: ${refusal.message}`);
    this.name = 'AgentDenied';
  }
}

/** The broker stayed unreachable for the start timeout: exit with the cause, the kubelet retries. */
export class AgentStartFailed extends Error {
  constructor(binding: AgentBinding, cause: string, seconds: number) {
    super(`secret-binder agent: binding ${binding.name} (for container ${binding.containers.join(', ') || '?'}) not fetched within ${String(seconds)} s: ${cause}`);
    this.name = 'AgentStartFailed';
  }
}

const defaultSleep = (ms: number, signal: AbortSignal): Promise<boolean> =>
  new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Read through a call: the type checker narrows `signal.aborted` across awaits it cannot see. */
const isAborted = (signal: AbortSignal): boolean => signal.aborted;

/** Refusals that are final for this pod: entitlement, identity, a binding that does not exist. */
function isFinal(error: unknown): error is BrokerRefusal {
  return error instanceof BrokerRefusal && (error.revokes || error.status === 404 || error.status === 400 || error.status === 422);
}

export class Agent {
  readonly status: AgentStatus = { ready: false, brokerReachable: false, brokerFailures: 0, fileSetWrites: 0, revocations: 0, lastSuccessSeconds: 0 };
  readonly #options: AgentOptions;
  readonly #hashes = new Map<string, string>();
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? defaultSleep;
  }

  /** Writes every binding once; then, in follow mode, keeps them current until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    for (const binding of this.#options.bindings) await this.#first(binding, signal);
    if (signal.aborted) return;
    this.status.ready = true;
    this.#options.log('info', 'files written', { bindings: this.#options.bindings.map((b) => b.name).join(','), mode: this.#options.mode });
    if (this.#options.mode === 'follow' && this.#options.bindings.some((b) => b.follow)) await this.#follow(signal);
  }

  /** The first fetch: retried with backoff while the broker is unreachable, up to the start timeout. */
  async #first(binding: AgentBinding, signal: AbortSignal): Promise<void> {
    const { startTimeoutMs, backoff } = this.#options;
    const deadline = this.#now() + startTimeoutMs;
    let delay = backoff.minMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#fetch(binding);
        return;
      } catch (error) {
        if (isFinal(error)) throw new AgentDenied(binding, error);
        const cause = error instanceof Error ? error.message : String(error);
        this.#failed();
        // Retried: an unreachable broker or an outage (a backend down, no Ready controller) may pass.
        if (this.#now() + delay > deadline) throw new AgentStartFailed(binding, cause, Math.round(startTimeoutMs / 1000));
        this.#options.log('warn', 'broker not reachable yet; retrying', { binding: binding.name, attempt, retryInMs: delay, error: cause });
        if (!(await this.#sleep(delay, signal))) return;
        delay = Math.min(delay * 2, backoff.maxMs);
      }
    }
  }

  async #fetch(binding: AgentBinding): Promise<void> {
    const answer = await this.#options.broker.publish({ binding: binding.name });
    await this.#write(binding, answer);
  }

  async #write(binding: AgentBinding, answer: PublishAnswer): Promise<void> {
    const files = answer.files.map((f) => ({ path: f.path, mode: f.mode, content: SecretValue.fromBytes(Buffer.from(f.contentBase64, 'base64')) }));
    const { changed } = await writeFileSet(binding.dir, files, this.#options.gid === undefined ? {} : { gid: this.#options.gid });
    this.#hashes.set(binding.name, answer.contentHash);
    this.#succeeded();
    if (changed) {
      this.status.fileSetWrites++;
      this.#options.log('info', 'file set written', { binding: binding.name, files: files.length, contentHash: answer.contentHash });
    }
  }

  /**
   * The change stream of the Refresh bindings: a changed hash is fetched and swapped in, a revoked
   * binding is emptied (as the CSI path does); while the broker cannot be reached the files stay
   * as they are (invariant 7) and the log and `brokerReachable` say so.
   */
  async #follow(signal: AbortSignal): Promise<void> {
    const followed = this.#options.bindings.filter((b) => b.follow);
    const byName = new Map(followed.map((b) => [b.name, b]));
    let delay = this.#options.backoff.minMs;
    for (;;) {
      if (signal.aborted) return;
      const active = followed.filter((b) => this.#hashes.has(b.name));
      if (active.length === 0) {
        // Everything revoked: ask again now and then, so a binding created anew serves this pod again.
        if (!(await this.#sleep(this.#options.backoff.maxMs, signal))) return;
        for (const binding of followed) await this.#fetch(binding).catch(() => undefined);
        continue;
      }
      try {
        const answer = await this.#options.broker.changes(
          { bindings: active.map((b) => ({ binding: b.name, contentHash: this.#hashes.get(b.name) ?? '' })), waitSeconds: this.#options.changesWaitSeconds },
          signal,
        );
        this.#succeeded();
        for (const change of answer.changed) {
          const binding = byName.get(change.volumeId);
          if (binding === undefined) continue;
          if (change.revoked) await this.#revoke(binding, 'the broker revoked the binding for this pod');
          else await this.#refetch(binding);
        }
        delay = this.#options.backoff.minMs;
      } catch (error) {
        // A stop aborts the long poll: not a failure.
        if (isAborted(signal)) return;
        this.#failed();
        const cause = error instanceof Error ? error.message : String(error);
        this.#options.log('warn', 'broker unreachable; keeping the last files', { error: cause, retryInMs: delay });
        if (!(await this.#sleep(delay, signal))) return;
        delay = Math.min(delay * 2, this.#options.backoff.maxMs);
      }
    }
  }

  async #refetch(binding: AgentBinding): Promise<void> {
    try {
      await this.#fetch(binding);
    } catch (error) {
      if (error instanceof BrokerRefusal && error.revokes) await this.#revoke(binding, error.message);
      else throw error;
    }
  }

  async #revoke(binding: AgentBinding, why: string): Promise<void> {
    await clearFileSet(binding.dir);
    this.#hashes.delete(binding.name);
    this.status.revocations++;
    this.#options.log('warn', 'files removed: access revoked', { binding: binding.name, reason: why });
  }

  #succeeded(): void {
    this.status.brokerReachable = true;
    this.status.lastSuccessSeconds = Math.floor(this.#now() / 1000);
  }

  #failed(): void {
    this.status.brokerReachable = false;
    this.status.brokerFailures++;
  }
}

/** The Prometheus text of {@link AgentStatus} (four gauges and counters: no client library, ADR 0250). */
export function agentMetricsText(status: AgentStatus): string {
  const lines = [
    ['secretbinder_agent_ready', 'gauge', '1 once every binding has been written.', status.ready ? 1 : 0],
    ['secretbinder_agent_broker_reachable', 'gauge', '1 when the last broker call succeeded; 0 while the broker is unreachable and the last files are kept.', status.brokerReachable ? 1 : 0],
    ['secretbinder_agent_broker_failures_total', 'counter', 'Broker calls that failed (unreachable or an outage).', status.brokerFailures],
    ['secretbinder_agent_file_set_writes_total', 'counter', 'File sets written (first write and every change).', status.fileSetWrites],
    ['secretbinder_agent_revocations_total', 'counter', 'Bindings emptied because the broker revoked them.', status.revocations],
    ['secretbinder_agent_last_success_timestamp_seconds', 'gauge', 'Unix time of the last successful broker call.', status.lastSuccessSeconds],
  ] as const;
  return lines.map(([name, type, help, value]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${String(value)}\n`).join('');
}
