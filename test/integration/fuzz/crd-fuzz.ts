import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { ApiException, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { group, isReason, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { loadKubeConnection } from '../../../src/kube/kube-connection.ts';
import { createAuditLog } from '../../../src/observability/audit.ts';
import { registerNeedle } from '../../harness/leak-capture.ts';
import { writeKvSecret } from '../../harness/openbao.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig, installCrds } from '../support/cluster.ts';
import { buildInProcessController } from '../support/in-process-controller.ts';
import { fuzzCase, type FuzzCase, type FuzzedKind, type FuzzVocabulary } from './crd-arbitraries.ts';

/**
 * Fuzz 1 of issue #15 item 7: random SecretBindings, SecretBackends and ClusterSecretBackends
 * (crd-arbitraries.ts) created against the world's real API server with the CRDs installed, while
 * an in-process controller reconciles them. The property, per object: the create is refused by the
 * schema or CEL (422 Invalid, or 400), or it is accepted and then reconciled to a status whose
 * Ready condition (and every other condition) carries a reason from the closed list — never
 * InternalError — and the controller's manager keeps running. Used by the integration test (a few
 * hundred cases) and by `npm run bench -- fuzz` (10,000).
 */

export interface CrdFuzzOptions {
  /** Objects to create in all. */
  readonly cases: number;
  /** Objects created at once (one property run); default 10. */
  readonly batch?: number;
  readonly seed?: number;
  /** How long an accepted object may take to get its status; default 30 s. */
  readonly statusTimeoutMs?: number;
  /** Bound on the whole run, shrinking included; default 10 minutes. */
  readonly timeLimitMs?: number;
}

export interface CrdFuzzReport {
  readonly seed: number;
  readonly cases: number;
  readonly refused: Readonly<Record<FuzzedKind, number>>;
  readonly accepted: Readonly<Record<FuzzedKind, number>>;
  /** Ready reasons of the accepted objects. */
  readonly reasons: Readonly<Record<string, number>>;
  /** Accepted objects of the mutated cases (a mutation the schema does not catch, e.g. a dropped optional field). */
  readonly mutatedAccepted: number;
  readonly elapsedMs: number;
  /** Log lines at error level from the controller (reported; the property does not forbid them). */
  readonly errorLines: number;
}

interface Outcome {
  readonly kind: FuzzedKind;
  readonly refused: boolean;
  readonly reason?: string;
  readonly mutated: boolean;
}

type Status = { conditions?: { type?: string; reason?: string; observedGeneration?: number }[]; observedGeneration?: number };
type Obj = { metadata?: { generation?: number }; status?: Status };

export async function runCrdFuzz(options: CrdFuzzOptions): Promise<CrdFuzzReport> {
  const t0 = Date.now();
  const world = currentWorld();
  const bao = world.openbao;
  if (bao === undefined) throw new Error('the world has no OpenBao');
  const kc = adminKubeConfig();
  await installCrds(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const suffix = randomBytes(3).toString('hex');
  const ns = `fuzz-${suffix}`;
  const sysNs = `fuzz-sys-${suffix}`;
  const clusterPrefix = `fuzz-${suffix}`;
  const tmp = mkdtempSync(join(tmpdir(), 'sb-fuzz-'));

  // What the fuzzed objects may refer to: credentials (real and wrong), a service account, a key
  // with a value, and backends that exist (OpenBao, fake, cluster-scoped fake).
  const credentials = { token: bao.rootToken, 'client-secret': `fuzz-client-secret-${suffix}`, accessKeyId: 'fuzz-access-key', secretAccessKey: `fuzz-secret-access-key-${suffix}` };
  for (const value of Object.values(credentials)) registerNeedle(value, 'crd fuzz credentials');
  for (const name of [ns, sysNs]) {
    await core.createNamespace({ body: { metadata: { name } } });
    await core.createNamespacedSecret({ namespace: name, body: { metadata: { name: 'fuzz-credentials' }, stringData: credentials } });
  }
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'fuzz-sa' } } });
  await writeKvSecret(bao, `fuzz-${suffix}/app`, { password: `fuzz-password-${randomBytes(8).toString('hex')}`, user: `fuzz-user-${suffix}` });
  const fixed = {
    vault: { vault: { address: bao.address, mount: bao.kvMount, auth: { token: { secretRef: { name: 'fuzz-credentials', key: 'token' } } } } },
    fake: { fake: { keys: [{ key: `fuzz-${suffix}/app`, fields: ['password', 'user'] }] } },
  };
  for (const [name, spec] of Object.entries(fixed)) {
    await custom.createNamespacedCustomObject({ group, version, plural: resources.SecretBackend.plural, namespace: ns, body: { apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: `fixed-${name}` }, spec } });
  }
  const clusterFixed = `${clusterPrefix}-fixed`;
  await custom.createClusterCustomObject({
    group, version, plural: resources.ClusterSecretBackend.plural,
    body: { apiVersion: `${group}/${version}`, kind: 'ClusterSecretBackend', metadata: { name: clusterFixed }, spec: { ...fixed.fake, access: [{ namespaces: [ns], keyPrefixes: [`fuzz-${suffix}/`] }] } },
  });
  const vocabulary: FuzzVocabulary = {
    backendNames: ['fixed-vault', 'fixed-fake', clusterFixed, 'missing'],
    keys: [`fuzz-${suffix}/app`, `fuzz-${suffix}/missing`, 'elsewhere/key'],
    secretNames: ['fuzz-credentials', 'absent'],
    secretKeys: Object.keys(credentials),
    serviceAccounts: ['fuzz-sa', 'default'],
    namespaces: [ns],
    loopbackUrls: ['http://127.0.0.1:1', 'https://127.0.0.1:1', bao.address],
  };

  let errorLines = 0;
  const errors = new Writable({
    write(_chunk, _encoding, callback) {
      errorLines += 1;
      callback();
    },
  });
  const registry = new Registry();
  const audit = createAuditLog({ destination: { kind: 'stream', stream: new Writable({ write: (_c, _e, cb) => { cb(); } }) } });
  const { operator } = buildInProcessController({
    dir: tmp, name: 'crd-fuzz', identity: `crd-fuzz-${suffix}`, namespace: sysNs, watchNamespaces: [ns], nodePluginServiceAccount: `${sysNs}:node-plugin`,
    // As main.ts builds it: the controller's own pooled connection (ADRs 0142, 0200).
    kubeConfig: await loadKubeConnection({ kind: 'file', path: world.kube.kubeconfigPath }, {}),
    log: { stream: errors, level: 'error' }, registry, audit,
  });
  const stop = new AbortController();
  let managerError: unknown;
  let managerDone = false;
  const running = operator.manager.run(stop.signal).then(
    () => { managerDone = true; },
    (error: unknown) => { managerDone = true; managerError = error; },
  );

  const outcomes: Outcome[] = [];
  let counter = 0;
  const batch = options.batch ?? 10;
  const statusTimeoutMs = options.statusTimeoutMs ?? 30_000;
  const seed = options.seed ?? Date.now() % 2 ** 31;

  const create = async (c: FuzzCase, name: string): Promise<Obj> => {
    const body = { apiVersion: `${group}/${version}`, kind: c.kind, metadata: { name }, spec: c.spec };
    if (c.kind === 'ClusterSecretBackend') return (await custom.createClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, body })) as Obj;
    return (await custom.createNamespacedCustomObject({ group, version, plural: resources[c.kind].plural, namespace: ns, body })) as Obj;
  };
  const read = async (kind: FuzzedKind, name: string): Promise<Obj> =>
    kind === 'ClusterSecretBackend'
      ? ((await custom.getClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name })) as Obj)
      : ((await custom.getNamespacedCustomObject({ group, version, plural: resources[kind].plural, namespace: ns, name })) as Obj);
  const remove = async (kind: FuzzedKind, name: string): Promise<void> => {
    await (kind === 'ClusterSecretBackend'
      ? custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name })
      : custom.deleteNamespacedCustomObject({ group, version, plural: resources[kind].plural, namespace: ns, name })
    ).catch(() => undefined);
  };

  /** The Ready reason once the controller reconciled this generation; throws after the timeout. */
  const reconciledReason = async (kind: FuzzedKind, name: string, generation: number, c: FuzzCase): Promise<string> => {
    const deadline = Date.now() + statusTimeoutMs;
    for (;;) {
      const status = (await read(kind, name)).status;
      const ready = status?.conditions?.find((x) => x.type === 'Ready');
      const observed = status?.observedGeneration ?? ready?.observedGeneration;
      if (ready?.reason !== undefined && (observed === undefined || observed >= generation)) {
        for (const condition of status?.conditions ?? []) {
          if (condition.reason === undefined || !isReason(condition.reason)) throw new Error(`${kind} ${name}: condition ${String(condition.type)} has reason ${String(condition.reason)}, not one of the closed list`);
        }
        return ready.reason;
      }
      if (managerDone) throw new Error(`the controller's manager stopped: ${managerError instanceof Error ? managerError.message : JSON.stringify(managerError)}`);
      if (Date.now() > deadline) throw new Error(`${kind} ${name} was accepted but not reconciled within ${String(statusTimeoutMs)} ms: ${JSON.stringify(c.spec)} → status ${JSON.stringify(status)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const property = fc.asyncProperty(fc.array(fuzzCase(vocabulary), { minLength: batch, maxLength: batch }), async (cases) => {
    const created: { kind: FuzzedKind; name: string }[] = [];
    try {
      const results = await Promise.all(
        cases.map(async (c): Promise<Outcome> => {
          counter += 1;
          const name = c.kind === 'ClusterSecretBackend' ? `${clusterPrefix}-${String(counter)}` : `f-${String(counter)}`;
          let object: Obj;
          try {
            object = await create(c, name);
          } catch (error) {
            // Refused by the schema or CEL: the property's first half.
            if (error instanceof ApiException && (error.code === 422 || error.code === 400)) return { kind: c.kind, refused: true, mutated: c.mutated };
            throw new Error(`${c.kind} ${name}: create failed other than with 422/400: ${error instanceof ApiException ? `${String(error.code)} ${JSON.stringify(error.body)}` : String(error)}`);
          }
          created.push({ kind: c.kind, name });
          const reason = await reconciledReason(c.kind, name, object.metadata?.generation ?? 1, c);
          if (reason === 'InternalError') throw new Error(`${c.kind} ${name} reconciled to InternalError: ${JSON.stringify(c.spec)}`);
          return { kind: c.kind, refused: false, reason, mutated: c.mutated };
        }),
      );
      outcomes.push(...results);
    } finally {
      await Promise.all(created.map((o) => remove(o.kind, o.name)));
    }
  });

  try {
    // A failing batch waits for statuses that never come: its shrinking is bounded in time, and
    // an interrupted run counts as a failure (the counterexample found so far is reported).
    await fc.assert(property, { numRuns: Math.max(1, Math.ceil(options.cases / batch)), seed, interruptAfterTimeLimit: options.timeLimitMs ?? 600_000, markInterruptAsFailure: true });
  } finally {
    stop.abort();
    await running;
    await operator.close();
    await audit.close();
    await custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name: clusterFixed }).catch(() => undefined);
    for (const name of [ns, sysNs]) await core.deleteNamespace({ name }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
  const zero = (): Record<FuzzedKind, number> => ({ SecretBinding: 0, SecretBackend: 0, ClusterSecretBackend: 0 });
  const refused = zero();
  const accepted = zero();
  const reasons: Record<string, number> = {};
  let mutatedAccepted = 0;
  for (const o of outcomes) {
    if (o.refused) refused[o.kind] += 1;
    else {
      accepted[o.kind] += 1;
      reasons[o.reason ?? '?'] = (reasons[o.reason ?? '?'] ?? 0) + 1;
      if (o.mutated) mutatedAccepted += 1;
    }
  }
  if (managerError !== undefined) throw new Error(`the controller's manager failed: ${managerError instanceof Error ? managerError.message : JSON.stringify(managerError)}`);
  return { seed, cases: outcomes.length, refused, accepted, reasons, mutatedAccepted, elapsedMs: Date.now() - t0, errorLines };
}
