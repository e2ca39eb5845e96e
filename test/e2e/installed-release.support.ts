import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import type { RealNode } from '../harness/node/real-node.ts';
import { openBaoRequest } from '../harness/openbao.ts';
import { currentWorld } from '../harness/world-state.ts';
import { eventually } from '../integration/support/cluster.ts';
import { chartRelease } from '../integration/packaging/chart-release.support.ts';
import { command, kubectlPath, type CommandResult } from '../integration/packaging/helm.support.ts';

/**
 * The release the install suite (`install.test.ts`) makes with the README quick start, and what its
 * tests and the fault drills (`installed-release.drills.ts`) ask of it: the README's names, its
 * pods' files read with `kubectl exec`, OpenBao's current value. Values are compared here and never
 * printed.
 */

// The README's names; the suites read them, never edit them.
export const chart = chartRelease('secret-binder', 'secret-binder-system');
export const shopNs = 'shop';
export const vaultNs = 'vault';
export const secretPath = 'shop/db';
export const mountPath = '/var/run/secrets/secretbinder/shop-db';

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

export function bao(): NonNullable<ReturnType<typeof currentWorld>['openbao']> {
  const endpoint = currentWorld().openbao;
  if (endpoint === undefined) throw new Error('the world has no OpenBao (SECRET_BINDER_WORLD_BACKENDS must include openbao)');
  return endpoint;
}

export const isReady = (p: V1Pod): boolean =>
  p.metadata?.deletionTimestamp === undefined && p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** What the install suite's `beforeAll` made: the node, the admin clients, the README's shell environment. */
export interface ReleaseWorld {
  readonly node: RealNode;
  readonly kc: KubeConfig;
  /** PATH (the `helm` wrapper, `kubectl`, `vault`), KUBECONFIG, VAULT_*, IMAGE_* as the README expects. */
  readonly env: Record<string, string>;
}

interface Attached extends ReleaseWorld {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
}

/** The installed release as the install suite's tests and the drills use it; attached in `beforeAll`. */
export class InstalledRelease {
  #attached: Attached | undefined;

  attach(world: ReleaseWorld): void {
    this.#attached = { ...world, core: world.kc.makeApiClient(CoreV1Api), custom: world.kc.makeApiClient(CustomObjectsApi) };
  }

  #state(): Attached {
    if (this.#attached === undefined) throw new Error('the install suite has not set up its release (beforeAll failed?)');
    return this.#attached;
  }

  get node(): RealNode {
    return this.#state().node;
  }

  get kc(): KubeConfig {
    return this.#state().kc;
  }

  get env(): Record<string, string> {
    return this.#state().env;
  }

  get core(): CoreV1Api {
    return this.#state().core;
  }

  get custom(): CustomObjectsApi {
    return this.#state().custom;
  }

  async sh(script: string): Promise<CommandResult> {
    return command('/bin/bash', ['-euo', 'pipefail', '-c', script], undefined, { env: this.env, timeoutMs: 200_000 });
  }

  /** A README command, printed with what it printed; a failure throws with both streams. */
  async readmeCommand(script: string): Promise<CommandResult> {
    say(`[readme] $ ${script.split('\n').join('\n[readme]   ')}`);
    const result = await this.sh(script);
    for (const line of `${result.stdout}${result.stderr}`.trimEnd().split('\n')) say(`[readme] > ${line}`);
    if (result.code !== 0) throw new Error(`README command failed (exit ${String(result.code)}):\n${script}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`);
    return result;
  }

  async kubectlExec(pod: string, args: readonly string[]): Promise<string> {
    const result = await command(kubectlPath, ['--kubeconfig', currentWorld().kube.kubeconfigPath, '-n', shopNs, 'exec', pod, '-c', 'app', '--', ...args]);
    if (result.code !== 0) throw new Error(`kubectl exec ${pod} -- ${args.join(' ')}: ${result.stderr}`);
    return result.stdout;
  }

  async readyPods(namespace: string, selector: string): Promise<V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: selector })).items.filter(isReady);
  }

  /** The 2 pods of the README's Deployment, once both are Ready and no other `app=shop` pod is left. */
  async shopPods(): Promise<string[]> {
    const pods = await eventually('2 shop pods Ready', async () => {
      const all = (await this.core.listNamespacedPod({ namespace: shopNs, labelSelector: 'app=shop' })).items;
      const ready = all.filter(isReady);
      return ready.length === 2 && all.length === 2 ? ready : undefined;
    }, 180_000);
    return pods.map((p) => p.metadata?.name ?? '');
  }

  /** db.env of a pod as name → value (dotenv, values double-quoted); held by the test, never printed. */
  async dotenvIn(pod: string): Promise<Map<string, string>> {
    const content = await this.kubectlExec(pod, ['cat', `${mountPath}/db.env`]);
    return new Map(content.split('\n').flatMap((line) => {
      const match = /^([A-Z_]+)="(.*)"$/.exec(line);
      return match === null ? [] : [[match[1] ?? '', JSON.parse(`"${match[2] ?? ''}"`) as string] as const];
    }));
  }

  /** Whether a pod's DB_PASSWORD is `expected` (compared here, so no value reaches a failure message). */
  async holds(pod: string, expected: string): Promise<boolean> {
    return (await this.dotenvIn(pod)).get('DB_PASSWORD') === expected;
  }

  async storedPassword(): Promise<string> {
    const stored = (await openBaoRequest(bao(), 'GET', `${bao().kvMount}/data/${secretPath}`)) as { data?: { data?: { password?: string } } };
    return stored.data?.data?.password ?? '';
  }

  async patchBinding(patch: object): Promise<void> {
    await this.custom.patchNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: shopNs, name: 'shop-db', body: patch }, mergePatch);
  }
}
