import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, CoreV1Api, KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { currentWorld } from '../../harness/world-state.ts';

/**
 * Lease-based leader election between two real processes against the real apiserver: exactly one
 * leads; when the leader is SIGKILLed (no release), the other takes over within 15 s; a leader
 * stopped with SIGTERM releases the lease.
 */

const childScript = fileURLToPath(new URL('./leader-elector.child.ts', import.meta.url));

interface ChildEvent {
  readonly event: string;
  readonly identity: string;
  readonly at: number;
  readonly end?: string;
}

class Candidate {
  readonly events: ChildEvent[] = [];
  readonly stderr: string[] = [];
  readonly process: ChildProcessByStdio<null, Readable, Readable>;
  readonly exited: Promise<number | null>;

  constructor(kubeconfigPath: string, namespace: string, lease: string, name: string) {
    this.process = spawn(process.execPath, [childScript, kubeconfigPath, namespace, lease, name], { stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface(this.process.stdout).on('line', (line) => {
      this.events.push(JSON.parse(line) as ChildEvent);
    });
    createInterface(this.process.stderr).on('line', (line) => {
      this.stderr.push(line);
    });
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code) => {
        resolve(code);
      });
    });
  }

  get identity(): string | undefined {
    return this.events[0]?.identity;
  }

  has(event: string): ChildEvent | undefined {
    return this.events.find((e) => e.event === event);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill(signal);
  }
}

async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, diagnostics: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${diagnostics()}`);
    await sleep(100);
  }
}

describe('leader election between two processes', () => {
  let kubeconfigPath: string;
  let core: CoreV1Api;
  let coordination: CoordinationV1Api;
  const namespace = `rt-le-${randomBytes(4).toString('hex')}`;
  const leaseName = 'runtime-test-leader';
  const candidates: Candidate[] = [];

  const diagnostics = (): string =>
    candidates.map((c, i) => `candidate ${i} (${c.identity ?? '?'}):\n  events ${JSON.stringify(c.events)}\n  ${c.stderr.slice(-15).join('\n  ')}`).join('\n');
  const readLease = (): Promise<V1Lease> => coordination.readNamespacedLease({ namespace, name: leaseName });

  beforeAll(async () => {
    const world = currentWorld();
    kubeconfigPath = world.kube.kubeconfigPath;
    const config = new KubeConfig();
    config.loadFromFile(kubeconfigPath);
    core = config.makeApiClient(CoreV1Api);
    coordination = config.makeApiClient(CoordinationV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  }, 30_000);

  afterAll(async () => {
    for (const c of candidates) c.kill('SIGKILL');
    await Promise.all(candidates.map((c) => c.exited));
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  }, 30_000);

  it('elects exactly one leader, and the other takes over within 15 s when the leader is killed', async () => {
    candidates.push(new Candidate(kubeconfigPath, namespace, leaseName, 'alpha'), new Candidate(kubeconfigPath, namespace, leaseName, 'beta'));
    const first = await eventually('a leader', () => candidates.find((c) => c.has('started') !== undefined), 30_000, diagnostics);
    const other = candidates.find((c) => c !== first);
    if (other === undefined) throw new Error('no second candidate');
    // Several renew periods later there is still exactly one leader, and the Lease names it.
    await eventually('both campaigning', () => (other.has('campaigning') === undefined ? undefined : true), 30_000, diagnostics);
    await sleep(4_000);
    expect(candidates.filter((c) => c.has('started') !== undefined)).toEqual([first]);
    const held = await readLease();
    expect(held.spec?.holderIdentity).toBe(first.identity);
    expect(held.spec?.leaseDurationSeconds).toBe(6);

    // Crash: no release. The other must wait out the lease, and not much longer.
    first.kill('SIGKILL');
    const killedAt = Date.now();
    await first.exited;
    const takeover = await eventually('takeover', () => other.has('started'), 20_000, diagnostics);
    const takeoverMs = takeover.at - killedAt;
    expect(takeoverMs).toBeLessThanOrEqual(15_000);
    // Not before the lease (6 s) could have expired: the crashed leader renewed ≤ 1 s before dying.
    expect(takeoverMs).toBeGreaterThanOrEqual(4_000);
    const taken = await readLease();
    expect(taken.spec?.holderIdentity).toBe(other.identity);
    expect(taken.spec?.leaseTransitions).toBeGreaterThanOrEqual(1);

    // A graceful stop releases the lease at once.
    other.kill('SIGTERM');
    expect(await other.exited).toBe(0);
    expect(other.events.map((e) => e.event)).toEqual(['campaigning', 'started', 'stopped', 'exit']);
    expect(other.has('exit')?.end).toBe('stopped');
    const released = await readLease();
    expect(released.spec?.holderIdentity ?? undefined).toBeUndefined();
    expect(released.spec?.leaseDurationSeconds).toBe(1);
  }, 90_000);
});
