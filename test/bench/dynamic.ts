/**
 * `npm run bench -- --tier dynamic [--consumers N] [--ttl S] [--minutes M]` (issue 21): renewals
 * and backend writes per minute for N perPod consumers of one database binding, through the real
 * LeaseKeeper and Vault adapter over a real OpenBao whose database engine creates real PostgreSQL
 * roles (a world with `openbao,postgres` started for the run and stopped after). The broker's
 * issue path runs once per consumer; then the binding controller's lifecycle pass runs whenever a
 * renewal is due, as it would. Counts come from OpenBao's own audit log. Not a test: nothing asserts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { AnyBackend, SecretBinding } from '../../src/api/v1alpha1/index.ts';
import { createBackendMetrics } from '../../src/backends/backends.metrics.ts';
import { createBackend, parseBackendSpec } from '../../src/backends/registry.ts';
import { SecretResolver } from '../../src/backends/resolver/resolver.ts';
import { BackendPool } from '../../src/controllers/backend/backend-pool.ts';
import { LeaseKeeper } from '../../src/dynamic/lease-keeper.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { CapturedOutput } from '../../src/observability/captured-output.ts';
import { SecretValue } from '../../src/observability/secret-value.ts';
import { realClock } from '../../src/runtime/clock.ts';
import { ObjectStore } from '../../src/runtime/object-store.ts';
import { openBaoRequest } from '../harness/openbao.ts';
import { down, up } from '../harness/world.ts';

function flag(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  const value = i < 0 ? undefined : Number(args[i + 1]);
  return value === undefined || !Number.isFinite(value) ? fallback : value;
}

/** OpenBao's audit responses from byte `from`: the path of each request that wrote (not GET/LIST). */
function writesSince(auditLogPath: string, from: number): string[] {
  return readFileSync(auditLogPath)
    .subarray(from)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { type?: string; request?: { operation?: string; path?: string } })
    .filter((e) => e.type === 'response' && ['create', 'update', 'delete'].includes(e.request?.operation ?? ''))
    .map((e) => e.request?.path ?? '');
}

export async function runDynamicBench(args: readonly string[]): Promise<string> {
  const consumers = flag(args, 'consumers', 1000);
  const ttlSeconds = flag(args, 'ttl', 30);
  const minutes = flag(args, 'minutes', 1);
  const world = await up({ dir: mkdtempSync(join(tmpdir(), 'sb-bench-dynamic-')), backends: ['openbao', 'postgres'], maxLifetimeSeconds: 3600 });
  try {
    const bao = world.openbao;
    if (bao === undefined) throw new Error('no OpenBao');
    const role = 'bench';
    await openBaoRequest(bao, 'POST', `database/roles/${role}`, {
      db_name: 'world',
      creation_statements: [`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`],
      default_ttl: ttlSeconds,
      max_ttl: 24 * 3600,
    });
    const contentKey = SecretValue.fromBytes(randomBytes(32));
    const resolver = new SecretResolver({ clock: realClock, metrics: createBackendMetrics(new Registry()), contentKey });
    const pool = new BackendPool(resolver, { parseBackendSpec, createBackend }, () => ({
      namespace: 'bench',
      requestServiceAccountToken: () => Promise.reject(new Error('unused')),
      readOperatorSecret: () => Promise.resolve(SecretValue.fromString(bao.rootToken)),
      onLogin: () => undefined,
    }));
    const backends = new ObjectStore<AnyBackend>();
    backends.upsert({
      apiVersion: 'secretbinder.dev/v1alpha1',
      kind: 'SecretBackend',
      metadata: { name: 'openbao', namespace: 'bench', uid: 'bench-backend', generation: 1 },
      spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'bao', key: 'token' } } } } },
    } as unknown as AnyBackend);
    const binding = {
      apiVersion: 'secretbinder.dev/v1alpha1',
      kind: 'SecretBinding',
      metadata: { name: 'db', namespace: 'bench', uid: 'bench-binding', generation: 1 },
      spec: {
        backendRef: { kind: 'SecretBackend', name: 'openbao' },
        podSelector: { matchLabels: { app: 'bench' } },
        containers: ['app'],
        files: [],
        dynamic: { path: `database/creds/${role}`, scope: 'perPod', files: [{ path: 'username', field: 'username' }, { path: 'password', field: 'password' }] },
      },
    } as unknown as SecretBinding;
    const held = new Map<string, string>();
    const keeper = new LeaseKeeper({
      clusterBackends: new ObjectStore<AnyBackend>(),
      namespacedBackends: backends,
      namespaces: new ObjectStore<V1Namespace>(),
      pool,
      contentKey,
      // The nodes hold what they are told to (every delivery succeeds at once).
      delivery: { expect: (_ns, _b, pod, hash) => { held.set(pod.uid, hash); }, heldBy: (_ns, _b, uid) => held.get(uid) },
      logger: createLogger({ level: 'warn', component: 'bench', stream: new CapturedOutput() }),
    });
    const pods: V1Pod[] = Array.from({ length: consumers }, (_, i) => ({
      metadata: { name: `p${String(i)}`, namespace: 'bench', uid: `uid-${String(i)}`, labels: { app: 'bench' } },
      spec: { containers: [{ name: 'app' }] },
    }));
    const signal = new AbortController().signal;
    const issueStarted = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < pods.length) {
        const pod = pods[next++] as V1Pod;
        const content = await keeper.contentFor(binding, pod, signal);
        if (content.kind !== 'resolved') throw new Error(`issue failed: ${content.reason} ${content.message}`);
      }
    }));
    const issueSeconds = (performance.now() - issueStarted) / 1000;
    // Measure from a quiet point: every lease issued; the lifecycle pass runs when the keeper says.
    const from = statSync(bao.auditLogPath).size;
    const measureStarted = performance.now();
    const passes: number[] = [];
    while (performance.now() - measureStarted < minutes * 60_000) {
      const t = performance.now();
      const outcome = await keeper.reconcile(binding, pods, signal);
      if (!('ok' in outcome)) throw new Error(`lifecycle pass failed: ${outcome.reason} ${outcome.message}`);
      passes.push(performance.now() - t);
      const wait = Math.min(outcome.result.nextDueMs ?? 1000, minutes * 60_000 - (performance.now() - measureStarted));
      if (wait > 0) await sleep(wait);
    }
    const elapsedMinutes = (performance.now() - measureStarted) / 60_000;
    const writes = writesSince(bao.auditLogPath, from);
    const renewals = writes.filter((p) => p === 'sys/leases/renew').length;
    const recordWrites = writes.filter((p) => p.includes('/secret-binder/leases/')).length;
    const other = writes.length - renewals - recordWrites;
    const sortedPasses = [...passes].sort((a, b) => a - b);
    const load = readFileSync('/proc/loadavg', 'utf8').trim();
    await pool.close();
    await resolver.close();
    const row = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
    return [
      `secret-binder bench, tier dynamic: ${String(consumers)} perPod consumers of one database binding, lease TTL ${String(ttlSeconds)} s, measured ${elapsedMinutes.toFixed(2)} min (load average ${load})`,
      '',
      row(['scenario', 'per minute', 'total', 'note']),
      row(['---', '---', '---', '---']),
      row([`issue ${String(consumers)} credentials (broker path, 16 at once)`, (consumers / (issueSeconds / 60)).toFixed(0), `${issueSeconds.toFixed(1)} s`, 'PostgreSQL role + lease + KV record each']),
      row(['lease renewals (sys/leases/renew)', (renewals / elapsedMinutes).toFixed(0), String(renewals), `expected ${(consumers * 60 / (ttlSeconds * 2 / 3)).toFixed(0)}/min: one per consumer every 2/3 TTL`]),
      row(['backend writes: lease records (KV)', (recordWrites / elapsedMinutes).toFixed(0), String(recordWrites), 'one per renewal']),
      row(['backend writes: other', (other / elapsedMinutes).toFixed(0), String(other), 'issues, revocations']),
      row(['lifecycle passes', (passes.length / elapsedMinutes).toFixed(1), String(passes.length), `median ${(sortedPasses[Math.floor(sortedPasses.length / 2)] ?? 0).toFixed(0)} ms, max ${(sortedPasses.at(-1) ?? 0).toFixed(0)} ms`]),
      '',
    ].join('\n');
  } finally {
    await down(world);
  }
}
