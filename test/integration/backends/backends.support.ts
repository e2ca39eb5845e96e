import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateSecretCommand, DeleteSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { group, resources, version, type Condition } from '../../../src/api/v1alpha1/index.ts';
import { backendsAnnotation } from '../../../src/backends/token-minter.ts';
import { operatorNamespace, startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { startFaultProxy, type FaultProxy } from '../../harness/fault-proxy.ts';
import { registerNeedlesIn } from '../../harness/leak-capture.ts';
import { currentWorld, type MotoEndpoint } from '../../harness/world-state.ts';
import { adminKubeConfig, installCrds } from '../support/cluster.ts';

/**
 * Shared by the backend acceptance suites: a fleet of namespaces with SecretBindings that all
 * read through one ClusterSecretBackend, served by a controller process, and its cleanup.
 */

export type Obj = KubernetesObject & {
  spec?: Record<string, unknown>;
  status?: { conditions?: Condition[]; contentHmac?: string } & Record<string, unknown>;
};

const bindingsRef = { group, version, plural: resources.SecretBinding.plural };
const clusterBackendsRef = { group, version, plural: resources.ClusterSecretBackend.plural };

export interface FleetOptions {
  /** Unique per suite run; prefixes every name and labels every object. */
  readonly name: string;
  readonly namespaces: number;
  readonly bindingsPerNamespace: number;
  /** The keys bindings read; binding j reads keys[j] and keys[j+1] (mod length), property `value`. */
  readonly keys: readonly string[];
  /** The ClusterSecretBackend's provider spec (`vault`, `awsSecretsManager`...) and other fields. */
  readonly backendSpec: Record<string, unknown>;
}

export class Fleet {
  readonly kc: KubeConfig;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly options: FleetOptions;
  readonly namespaces: readonly string[];
  readonly label: string;
  controller: ControllerProcess | undefined;
  readonly #operatorObjects: (() => Promise<unknown>)[] = [];

  constructor(options: FleetOptions) {
    this.options = options;
    this.kc = adminKubeConfig();
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.custom = this.kc.makeApiClient(CustomObjectsApi);
    this.namespaces = Array.from({ length: options.namespaces }, (_, i) => `${options.name}-${String(i).padStart(2, '0')}`);
    this.label = `secretbinder.test/${options.name}`;
  }

  get total(): number {
    return this.options.namespaces * this.options.bindingsPerNamespace;
  }

  /** CRDs and the operator namespace (shared by suites, never deleted here). */
  async prepare(): Promise<void> {
    await installCrds(this.kc);
    await this.core.createNamespace({ body: { metadata: { name: operatorNamespace } } }).catch(() => undefined);
  }

  /** A Secret in the operator namespace, deleted by {@link Fleet.cleanup}. */
  async operatorSecret(name: string, stringData: Record<string, string>): Promise<void> {
    await this.core.createNamespacedSecret({ namespace: operatorNamespace, body: { metadata: { name }, stringData } });
    this.#operatorObjects.push(() => this.core.deleteNamespacedSecret({ name, namespace: operatorNamespace }));
  }

  /**
   * A ServiceAccount in the operator namespace that opts in to the fleet's ClusterSecretBackend
   * (ADR 0150), deleted by {@link Fleet.cleanup}.
   */
  async operatorServiceAccount(name: string): Promise<void> {
    const annotations = { [backendsAnnotation]: `ClusterSecretBackend/${this.options.name}` };
    await this.core.createNamespacedServiceAccount({ namespace: operatorNamespace, body: { metadata: { name, annotations } } });
    this.#operatorObjects.push(() => this.core.deleteNamespacedServiceAccount({ name, namespace: operatorNamespace }));
  }

  /** The ClusterSecretBackend (named like the fleet), admitting the fleet's namespaces by label. */
  async createBackend(): Promise<void> {
    await this.custom.createClusterCustomObject({
      ...clusterBackendsRef,
      body: {
        apiVersion: `${group}/${version}`,
        kind: 'ClusterSecretBackend',
        metadata: { name: this.options.name },
        spec: {
          ...this.options.backendSpec,
          access: [{ namespaceSelector: { matchLabels: { [this.label]: 'true' } }, keyPrefixes: [''] }],
        },
      },
    });
  }

  async createBindings(): Promise<void> {
    const { keys, bindingsPerNamespace } = this.options;
    for (const namespace of this.namespaces) {
      await this.core.createNamespace({ body: { metadata: { name: namespace, labels: { [this.label]: 'true' } } } });
    }
    await Promise.all(
      this.namespaces.map(async (namespace) => {
        for (let j = 0; j < bindingsPerNamespace; j++) {
          const first = keys[j % keys.length] ?? '';
          const second = keys[(j + 1) % keys.length] ?? '';
          await this.custom.createNamespacedCustomObject({
            ...bindingsRef,
            namespace,
            body: {
              apiVersion: `${group}/${version}`,
              kind: 'SecretBinding',
              metadata: { name: `b${j}`, labels: { [this.label]: 'true' } },
              spec: {
                backendRef: { kind: 'ClusterSecretBackend', name: this.options.name },
                podSelector: { matchLabels: { app: `b${j}` } },
                containers: ['app'],
                files: [
                  { path: 'first', key: first, property: 'value' },
                  { path: 'second', key: second, property: 'value' },
                ],
              },
            },
          });
        }
      }),
    );
  }

  startController(): ControllerProcess {
    this.controller = startController(currentWorld(), {
      identity: this.options.name,
      watchNamespaces: this.namespaces,
      leaseName: this.options.name,
      logLevel: 'info',
      // The world's backends listen on plain http on loopback (ADR 0150's development flag).
      extraArgs: ['--allow-http-loopback-token-endpoints=true'],
    });
    return this.controller;
  }

  /** Every binding of the fleet, across its namespaces. */
  async bindings(): Promise<Obj[]> {
    const list = (await this.custom.listClusterCustomObject({ ...bindingsRef, labelSelector: `${this.label}=true` })) as { items: Obj[] };
    return list.items;
  }

  /** Polls until `done(bindings)` holds; throws with `describe(bindings)` after `timeoutMs`. */
  async waitFor(what: string, done: (bindings: Obj[]) => boolean, timeoutMs: number, describe: (bindings: Obj[]) => string = summary): Promise<Obj[]> {
    const deadline = Date.now() + timeoutMs;
    let last: Obj[] = [];
    for (;;) {
      last = await this.bindings();
      if (last.length === this.total && done(last)) return last;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; ${describe(last)}`);
      await sleep(1_000);
    }
  }

  waitAllReady(timeoutMs: number): Promise<Obj[]> {
    return this.waitFor(`all ${this.total} bindings Ready`, (items) => items.every((b) => condition(b, 'Ready')?.status === 'True'), timeoutMs);
  }

  /** Stops the controller, deletes the fleet's namespaces, backend and operator objects. */
  async cleanup(): Promise<void> {
    await this.controller?.stop();
    await Promise.all(this.namespaces.map((name) => this.core.deleteNamespace({ name }).catch(ignoreNotFound)));
    await this.custom.deleteClusterCustomObject({ ...clusterBackendsRef, name: this.options.name }).catch(ignoreNotFound);
    for (const remove of this.#operatorObjects) await remove().catch(ignoreNotFound);
  }
}

export function condition(object: Obj | undefined, type: string): Condition | undefined {
  return object?.status?.conditions?.find((c) => c.type === type);
}

/** Counts of Ready / Degraded statuses and reasons, for failure messages. */
export function summary(bindings: readonly Obj[]): string {
  const counts = new Map<string, number>();
  for (const b of bindings) {
    const ready = condition(b, 'Ready');
    const degraded = condition(b, 'Degraded');
    const key = `Ready=${ready?.status ?? '-'}/${ready?.reason ?? '-'} Degraded=${degraded?.status ?? '-'}/${degraded?.reason ?? '-'}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return `${bindings.length} bindings: ${[...counts].map(([k, n]) => `${n}× ${k}`).join(', ')}`;
}

function ignoreNotFound(error: unknown): void {
  if (error instanceof ApiException && (error as ApiException<unknown>).code === 404) return;
  throw error;
}

/** A Secrets Manager client straight to moto (not through a proxy), for setup and cleanup. */
export function motoAdmin(moto: MotoEndpoint): SecretsManagerClient {
  const client = new SecretsManagerClient({
    endpoint: moto.endpoint,
    region: moto.region,
    credentials: { accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey },
  });
  // Every value written through this client is a needle of the leak scan (ADR 0177).
  client.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { SecretString?: unknown; Name?: unknown; SecretId?: unknown };
      if (typeof input.SecretString === 'string') registerNeedlesIn(input.SecretString, `moto:${String(input.Name ?? input.SecretId)}`);
      return next(args);
    },
    { step: 'initialize', name: 'registerLeakNeedles' },
  );
  return client;
}

/**
 * A fleet reading moto through a counting proxy (`FaultProxy`): its secrets created with random
 * values, the ClusterSecretBackend pointed at the proxy with static keys, bindings created, the
 * controller started. Created first and started after, so `cleanup` (in `afterAll`) removes what a
 * failed start left: the fleet, the proxy, the secrets.
 */
export class MotoFleet {
  readonly #name: string;
  readonly #keys: readonly string[];
  readonly #admin: SecretsManagerClient;
  #proxy: FaultProxy | undefined;
  #fleet: Fleet | undefined;

  constructor(name: string, keys: readonly string[]) {
    const moto = currentWorld().moto;
    if (moto === undefined) throw new Error('the world has no moto');
    this.#name = name;
    this.#keys = keys;
    this.#admin = motoAdmin(moto);
  }

  /** `backend` joins the `awsSecretsManager` provider spec (refreshInterval, rateLimit...). */
  async start(shape: { readonly namespaces: number; readonly bindingsPerNamespace: number; readonly backend: Record<string, unknown> }): Promise<{ fleet: Fleet; proxy: FaultProxy }> {
    const moto = currentWorld().moto;
    if (moto === undefined) throw new Error('the world has no moto');
    for (const key of this.#keys) await this.#admin.send(new CreateSecretCommand({ Name: key, SecretString: JSON.stringify({ value: randomBytes(12).toString('hex') }) }));
    const proxy = await startFaultProxy({ target: moto.endpoint, maxLifetimeMs: 600_000 });
    this.#proxy = proxy;
    const fleet = new Fleet({
      name: this.#name,
      namespaces: shape.namespaces,
      bindingsPerNamespace: shape.bindingsPerNamespace,
      keys: this.#keys,
      backendSpec: { awsSecretsManager: { region: moto.region, endpoint: proxy.url, auth: { staticKeys: { secretRef: { name: this.#name } } } }, ...shape.backend },
    });
    this.#fleet = fleet;
    await fleet.prepare();
    await fleet.operatorSecret(this.#name, { accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey });
    await fleet.createBackend();
    await fleet.createBindings();
    return { fleet, proxy };
  }

  async cleanup(): Promise<void> {
    await this.#fleet?.cleanup();
    await this.#proxy?.stop();
    for (const key of this.#keys) await this.#admin.send(new DeleteSecretCommand({ SecretId: key, ForceDeleteWithoutRecovery: true })).catch(() => undefined);
    this.#admin.destroy();
  }
}
