import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { captureActive, captureText } from './leak-capture.ts';
import { isAlive, signalProcess, startProcess, stopProcess, type ProcessRecord } from './process.ts';
import type { WorldState } from './world-state.ts';

const root = process.cwd();

export const operatorNamespace = 'secret-binder-system';

export interface LeaseTiming {
  readonly durationSeconds: number;
  readonly renewDeadlineSeconds: number;
  readonly retryPeriodSeconds: number;
}

/**
 * Lease timings for suites that run several controllers. Leaders hold on through 20 s without the
 * API server (a kube-apiserver restart under load takes up to ~10 s); a failover test starts its
 * standby with the quick lease instead, since a candidate measures expiry with its own duration.
 */
export const patientLease: LeaseTiming = { durationSeconds: 25, renewDeadlineSeconds: 20, retryPeriodSeconds: 1 };
export const quickLease: LeaseTiming = { durationSeconds: 8, renewDeadlineSeconds: 6, retryPeriodSeconds: 1 };

/** Who holds the Lease `name` in `namespace`; undefined while nobody does or it does not exist. */
export async function leaseHolder(kc: KubeConfig, name: string, namespace: string = operatorNamespace): Promise<string | undefined> {
  try {
    const lease = await kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name, namespace });
    return lease.spec?.holderIdentity ?? undefined;
  } catch {
    return undefined;
  }
}

export interface ControllerOptions {
  /** Unique per process: leader identity, log file name. */
  readonly identity: string;
  /** Namespaces the controller serves (isolates a suite from other suites' objects). */
  readonly watchNamespaces: readonly string[];
  /** A lease per suite, so suites never elect each other's controllers. */
  readonly leaseName: string;
  readonly leaderElect?: boolean;
  /** Ignored in a captured test run, where every controller logs at debug for the leak scan (ADR 0177). */
  readonly logLevel?: 'info' | 'debug';
  /** Further flags (e.g. the broker's). */
  readonly extraArgs?: readonly string[];
  /** Flags for node itself, before the script (e.g. `--max-old-space-size=192`). */
  readonly nodeOptions?: readonly string[];
  /** Lease timing in seconds; default 10 / 8 / 1 (takeover ~11 s after a crash). */
  readonly lease?: LeaseTiming;
  /** Another identity than the world's admin (e.g. the chart's service account); default the admin kubeconfig. */
  readonly kubeconfigPath?: string;
  /** The operator namespace (its Lease, credentials); default secret-binder-system. */
  readonly namespace?: string;
  /**
   * The content-HMAC key from this Secret of the operator namespace, created by the controller if
   * absent (`--hmac-key-secret`, as the chart's Deployment); default the world's key file.
   */
  readonly hmacKeySecret?: string;
}

/** A controller (`node src/main.ts`) running against the world as its own process, like in a pod. */
export interface ControllerProcess {
  readonly identity: string;
  readonly record: ProcessRecord;
  /** The log so far (JSON lines). */
  log(): string;
  /** The port of /healthz, /readyz, /metrics, once listening. */
  healthPort(): Promise<number>;
  /** A metric from /metrics, summed over every series whose labels contain `labels`. */
  metric(name: string, labels?: string): Promise<number>;
  /** SIGTERM: graceful stop (drain, release the lease). */
  stop(): Promise<void>;
  /** SIGKILL: a crash, no cleanup. */
  kill(): Promise<void>;
  alive(): boolean;
}

/** The world's content-HMAC key: one per world, so restarts of the controller keep their hashes. */
export function hmacKeyFile(world: WorldState): string {
  const path = join(world.dir, 'content-hmac.key');
  if (!existsSync(path)) writeFileSync(path, randomBytes(32), { mode: 0o600, flag: 'wx' });
  return path;
}

export function startController(world: WorldState, options: ControllerOptions): ControllerProcess {
  const record = startProcess({
    name: `controller-${options.identity}`,
    command: process.execPath,
    args: [
      ...(options.nodeOptions ?? []),
      join(root, 'src/main.ts'),
      '--kubeconfig', options.kubeconfigPath ?? world.kube.kubeconfigPath,
      '--namespace', options.namespace ?? operatorNamespace,
      '--identity', options.identity,
      '--watch-namespaces', options.watchNamespaces.join(','),
      '--leader-elect', String(options.leaderElect ?? true),
      '--lease-name', options.leaseName,
      '--lease-duration', String(options.lease?.durationSeconds ?? 10),
      '--renew-deadline', String(options.lease?.renewDeadlineSeconds ?? 8),
      '--retry-period', String(options.lease?.retryPeriodSeconds ?? 1),
      '--http-address', '127.0.0.1:0',
      ...(options.hmacKeySecret === undefined ? ['--hmac-key-file', hmacKeyFile(world)] : ['--hmac-key-secret', options.hmacKeySecret]),
      '--log-level', captureActive() ? 'debug' : (options.logLevel ?? 'debug'),
      ...(options.extraArgs ?? []),
    ],
    // No cloud credential discovery may leave this machine (the AWS default chain would ask the
    // EC2 metadata address).
    env: { AWS_EC2_METADATA_DISABLED: 'true' },
    logDir: world.logDir,
    maxLifetimeSeconds: 1800,
  });
  const log = (): string => processLog(record);
  const healthPort = (): Promise<number> => waitForHealthPort(record, options.identity, 30_000);
  // The leak capture keeps a last scrape of /metrics (its log is in the world's log directory already).
  const captureMetrics = async (): Promise<void> => {
    if (!captureActive() || !isAlive(record)) return;
    try {
      const port = loggedHealthPort(log());
      if (port === undefined) return;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      captureText(`metrics/controller-${options.identity}.txt`, text);
    } catch {
      // Not listening (any more): nothing to scrape.
    }
  };
  return {
    identity: options.identity,
    record,
    log,
    alive: () => isAlive(record),
    healthPort,
    metric: async (name: string, labels = '') => {
      const text = await (await fetch(`http://127.0.0.1:${await healthPort()}/metrics`)).text();
      return text
        .split('\n')
        .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    },
    stop: async () => {
      await captureMetrics();
      await stopProcess(record, 30_000);
    },
    kill: async () => {
      await captureMetrics();
      signalProcess(record, 'SIGKILL');
      while (isAlive(record)) await sleep(20);
    },
  };
}

/** A controller process's log so far ('' before it wrote one). */
export function processLog(record: ProcessRecord): string {
  try {
    return readFileSync(record.logPath, 'utf8');
  } catch {
    return '';
  }
}

/** The health server's port, from the controller's "health server listening" log line. */
function loggedHealthPort(log: string): number | undefined {
  const match = /"message":"health server listening","port":(\d+)/.exec(log) ?? /"port":(\d+)[^\n]*"message":"health server listening"/.exec(log);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** Waits for the controller's health port to appear in its log; throws with the log's tail if it exits first. */
export async function waitForHealthPort(record: ProcessRecord, identity: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const port = loggedHealthPort(processLog(record));
    if (port !== undefined) return port;
    if (!isAlive(record)) throw new Error(`controller ${identity} exited:\n${processLog(record).slice(-3000)}`);
    await sleep(100);
  }
  throw new Error(`controller ${identity}: no health port in its log`);
}
