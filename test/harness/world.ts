import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { startControlPlane } from './control-plane.ts';
import type { ControlPlane } from './control-plane.ts';
import { startAzureKeyVault } from './keyvault-double.ts';
import { startMoto } from './moto.ts';
import { cleanUpRealNodeHost, realNodeDir, realNodePodSubnet } from './node/real-node.ts';
import { configureOpenBaoKubernetesAuth, startOpenBao } from './openbao.ts';
import { configureOpenBaoEngines, configureOpenBaoPki, startPostgres } from './postgres.ts';
import { isAlive, probeReadiness, stopProcess, tailLog } from './process.ts';
import type { ProcessRecord } from './process.ts';
import { setUpWorldNetwork, tearDownWorldNetwork } from './world-network.ts';
import { assertNoLiveWorld, lockWorldDir, type WorldDirLock } from './world-lock.ts';
import { writeWorldState } from './world-state.ts';
import type { KubeEndpoint, WorldState } from './world-state.ts';

/**
 * The test world: the control plane and the backend servers, started together, recorded in
 * `<dir>/world.json`, stopped by `down` (ADR 0013).
 */

/**
 * `azureKeyVault` is Lowkey Vault when its jar is installed, else the Key Vault double
 * (ADR 0070); world.json says which (`azureKeyVault.kind`, `.reason`).
 */
export type BackendName = 'openbao' | 'moto' | 'azureKeyVault' | 'postgres';
/**
 * `postgres` (issue 21) starts beside the others in under a second from a cached data directory;
 * with OpenBao, the world mounts OpenBao's database engine on it.
 */
export const allBackends: readonly BackendName[] = ['openbao', 'moto', 'azureKeyVault', 'postgres'];

export interface UpOptions {
  /** Backend servers to start (default: all). */
  readonly backends?: readonly BackendName[];
  /** World directory (created if missing); default: a new directory under the OS temp dir. */
  readonly dir?: string;
  /** Hard limit on every server's life (coreutils `timeout`); default 3 hours. */
  readonly maxLifetimeSeconds?: number;
  /** Progress lines, e.g. `console.error`; default: silent. */
  readonly log?: (line: string) => void;
  /**
   * The caller's lock on `dir`, when it took one to look at the directory first (the CLI);
   * otherwise `up` takes and releases its own (ADR 0168).
   */
  readonly lock?: WorldDirLock;
}

/** A world that did not come up; everything it had started is already stopped. */
export class WorldStartError extends Error {
  readonly logDir: string;
  constructor(message: string, logDir: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'WorldStartError';
    this.logDir = logDir;
  }
}

/** An admin client configuration for a world's apiserver. */
export function adminKubeConfig(kube: KubeEndpoint): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(kube.kubeconfigPath);
  return config;
}

function isStatus(error: unknown, code: number): boolean {
  return error instanceof ApiException && error.code === code;
}

/** Creates `body` unless it exists already (409). */
async function ensure(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (error) {
    if (!isStatus(error, 409)) throw error;
  }
}

/**
 * Waits until kube-controller-manager has done its first work: the `default` ServiceAccount in
 * `default` exists, so pods can be admitted and tests need not race the controllers.
 */
async function waitForControllers(kube: KubeEndpoint, timeoutMs: number): Promise<void> {
  const core = adminKubeConfig(kube).makeApiClient(CoreV1Api);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
      return;
    } catch (error) {
      if (!isStatus(error, 404) || Date.now() > deadline) {
        throw new Error(`kube-controller-manager did not create default/default within ${timeoutMs} ms`, { cause: error });
      }
    }
    await sleep(100);
  }
}

/** Namespace and ServiceAccount whose token OpenBao uses to call TokenReview. */
export const tokenReviewer = { namespace: 'secret-binder-world', serviceAccount: 'openbao-token-reviewer' } as const;

/**
 * Ensures the token reviewer ServiceAccount (bound to `system:auth-delegator`) and mints a token
 * for it with TokenRequest, valid for the apiserver's own audience for `lifetimeSeconds`.
 */
export async function mintTokenReviewerJwt(kube: KubeEndpoint, lifetimeSeconds: number): Promise<string> {
  const config = adminKubeConfig(kube);
  const core = config.makeApiClient(CoreV1Api);
  const rbac = config.makeApiClient(RbacAuthorizationV1Api);
  const { namespace, serviceAccount: name } = tokenReviewer;
  await ensure(() => core.createNamespace({ body: { metadata: { name: namespace } } }));
  await ensure(() => core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }));
  await ensure(() =>
    rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `secret-binder-world:${name}` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    }),
  );
  const answer = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [kube.serviceAccountIssuer], expirationSeconds: lifetimeSeconds } },
  });
  const token = answer.status?.token;
  if (token === undefined || token === '') throw new Error('TokenRequest for the token reviewer returned no token');
  return token;
}

/** Points OpenBao's kubernetes auth method at the world's apiserver, with a fresh reviewer token. */
export async function configureOpenBaoAuth(state: Pick<WorldState, 'kube' | 'openbao'>, lifetimeSeconds: number): Promise<void> {
  if (state.openbao === undefined) return;
  const tokenReviewerJwt = await mintTokenReviewerJwt(state.kube, lifetimeSeconds);
  await configureOpenBaoKubernetesAuth(state.openbao, {
    host: state.kube.server,
    caPem: state.kube.caPem,
    issuer: state.kube.serviceAccountIssuer,
    tokenReviewerJwt,
  });
}

const defaultLifetimeSeconds = 3 * 3600;

/**
 * Starts a world: the control plane and the requested backends at the same time (they do not
 * depend on each other), then wires OpenBao's kubernetes auth to the apiserver. If anything fails,
 * everything already started is stopped before the error (a `WorldStartError`) propagates.
 *
 * A directory holds one world: `up` refuses (a `WorldDirBusyError`, nothing started) when another
 * run is starting one there or one is running there (ADR 0168).
 */
export async function up(options: UpOptions = {}): Promise<WorldState> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'secret-binder-world-'));
  if (options.lock !== undefined && options.lock.dir !== dir) throw new Error(`the lock given to up() is for ${options.lock.dir}, not ${dir}`);
  const lock = options.lock ?? lockWorldDir(dir);
  try {
    assertNoLiveWorld(dir);
    return await startWorld(dir, options);
  } finally {
    if (options.lock === undefined) lock.release();
  }
}

async function startWorld(dir: string, options: UpOptions): Promise<WorldState> {
  const t0 = Date.now();
  const log = (line: string): void => options.log?.(`[world +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  const backends = new Set(options.backends ?? allBackends);
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const lifetime = options.maxLifetimeSeconds ?? defaultLifetimeSeconds;
  const started: ProcessRecord[] = [];
  const note = (record: ProcessRecord): void => {
    started.push(record);
    log(`started ${record.name} (pid ${record.pid})`);
  };

  try {
    // Before the API server: a ClusterIP nothing translates must go nowhere, never out (ADR 0180).
    const network = setUpWorldNetwork(dir, [realNodePodSubnet(dir)]);
    log(network.sink === undefined ? `Service range ${network.serviceRange}: ${network.unrouted ?? ''}` : `Service range ${network.serviceRange} routed to ${network.sink.kind} ${network.sink.name}`);
    const { serviceRange, kubernetesServiceIp } = network;
    const controlPlane = startControlPlane({ dir, logDir, maxLifetimeSeconds: lifetime, onStarted: note, serviceRange, kubernetesServiceIp }).then(
      async (cp): Promise<ControlPlane> => {
        log(`control plane ready at ${cp.kube.server}`);
        await waitForControllers(cp.kube, 30_000);
        log('controllers ready');
        return cp;
      },
    );
    const backendOptions = { dir, logDir };
    // Each starter stops its own server if it does not become ready (process.ts waitReady).
    const startBackend = async <R extends { record: ProcessRecord }>(name: BackendName, start: () => Promise<R>) => {
      if (!backends.has(name)) return undefined;
      const result = await start();
      note(result.record);
      log(`${name} ready`);
      return result;
    };
    const openbao = startBackend('openbao', () => startOpenBao(backendOptions));
    const moto = startBackend('moto', () => startMoto(backendOptions));
    const postgres = startBackend('postgres', () => startPostgres(backendOptions));
    // The Key Vault double trusts the cluster's service-account tokens (workload identity), so it
    // starts once the control plane has its issuer and key; if the control plane fails, that
    // failure is reported once, by `controlPlane` itself.
    const azureKeyVault = controlPlane.then(
      (cp) =>
        startBackend('azureKeyVault', async () => {
          const started = await startAzureKeyVault({
            ...backendOptions,
            federation: { issuer: cp.kube.serviceAccountIssuer, publicKeyPath: cp.pki.serviceAccount.publicKeyPath },
          });
          log(`Azure Key Vault server: ${started.endpoint.kind === 'lowkey' ? 'Lowkey Vault' : 'the Key Vault double'} (${started.endpoint.reason})`);
          return started;
        }),
      () => undefined,
    );
    const settled = await Promise.allSettled([controlPlane, openbao, moto, azureKeyVault, postgres]);
    const failures = settled.filter((s) => s.status === 'rejected').map((s) => s.reason as unknown);
    if (failures.length > 0) throw failures.length === 1 ? failures[0] : new AggregateError(failures, 'several servers failed to start');
    const [cp, bao, aws, azure, pg] = await Promise.all([controlPlane, openbao, moto, azureKeyVault, postgres]);

    const state: WorldState = {
      dir,
      logDir,
      kube: cp.kube,
      network,
      ...(bao === undefined ? {} : { openbao: bao.endpoint }),
      ...(aws === undefined ? {} : { moto: aws.endpoint }),
      ...(pg === undefined ? {} : { postgres: pg.endpoint }),
      ...(azure === undefined ? {} : { azureKeyVault: azure.endpoint }),
      ...(azure?.endpoint.kind === 'lowkey' ? { lowkeyVault: azure.endpoint } : {}),
      // Control plane first, backends after: `down` stops in reverse, so the apiserver goes last
      // but etcd.
      processes: [...cp.processes, ...[pg, bao, aws, azure].flatMap((b) => (b === undefined ? [] : [b.record]))],
    };
    if (state.openbao !== undefined) {
      await configureOpenBaoAuth(state, lifetime + 3600);
      log('openbao kubernetes auth configured');
      await configureOpenBaoPki(state.openbao);
      log('openbao pki engine configured');
    }
    if (state.openbao !== undefined && state.postgres !== undefined) {
      await configureOpenBaoEngines(state.openbao, state.postgres);
      log('openbao database engine configured');
    }
    writeWorldState(state);
    log(`world ready in ${dir}`);
    return state;
  } catch (error) {
    const tails = started.map((r) => `--- ${r.name} (${r.logPath}) ---\n${tailLog(r, 25)}`).join('\n');
    await stopAll([...started].reverse());
    tearDownWorldNetwork(dir);
    const message = error instanceof Error ? error.message : String(error);
    throw new WorldStartError(`the test world did not start: ${message}\nlogs: ${logDir}\n${tails}`, logDir, { cause: error });
  }
}

async function stopAll(records: readonly ProcessRecord[]): Promise<void> {
  for (const record of records) await stopProcess(record);
}

/**
 * Stops every recorded process of a world, in reverse start order. Removes nothing: the logs
 * stay in `state.logDir`, the data in `state.dir`.
 */
export async function down(state: WorldState): Promise<void> {
  await stopAll([...state.processes].reverse());
  // A real node (tier 2) leaves mounts and a bridge behind if its suite died before stopping it.
  cleanUpRealNodeHost(realNodeDir(state.dir));
  tearDownWorldNetwork(state.dir);
}

/** Which recorded processes run, and whether each passes its readiness probe. */
export async function worldStatus(state: WorldState): Promise<{ name: string; pid: number; alive: boolean; ready: boolean | undefined }[]> {
  return Promise.all(
    state.processes.map(async (record) => {
      const alive = isAlive(record);
      const readiness = record.spec?.readiness;
      const ready = !alive || readiness === undefined ? undefined : await probeReadiness(readiness).catch(() => false);
      return { name: record.name, pid: record.pid, alive, ready };
    }),
  );
}

/** True when every recorded process runs and passes its readiness probe. */
export async function isWorldAlive(state: WorldState): Promise<boolean> {
  const status = await worldStatus(state);
  return status.length > 0 && status.every((s) => s.alive && s.ready !== false);
}
