import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ApiException, CoreV1Api, CustomObjectsApi, type KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { group, resources, version, type Condition, type ResourceKind } from '../../../src/api/v1alpha1/index.ts';
import { backendsAnnotation } from '../../../src/backends/token-minter.ts';
import { startController, type ControllerProcess } from '../../harness/controller-process.ts';
import { createKubernetesRole, kubernetesAuthAudience, openBaoRequest } from '../../harness/openbao.ts';
import { currentWorld, type OpenBaoEndpoint } from '../../harness/world-state.ts';
import { chartRelease, installChart, refusedRequest, uninstallChart } from '../packaging/chart-release.support.ts';
import { serviceAccountKubeConfig } from '../packaging/identity.support.ts';
import { adminKubeConfig, eventually } from '../support/cluster.ts';

/**
 * Issue #15 item 10, "token minting cannot become token theft" (ADR 0150), against the real API
 * server: a controller process under the chart's own service account and RBAC refuses — with a
 * reason of the closed list on the backend, and an audit line — every way a backend's author could
 * have a service-account token sent somewhere: an audience the API server itself accepts (as it
 * answers TokenReview, not a list we keep), an account that did not opt in, the controller's and
 * the node plugin's own accounts (from a ClusterSecretBackend and from a SecretBackend in the
 * release namespace), and plain http — allowed to loopback only with the development flag.
 *
 * The refused backends point at `https://127.0.0.1:1`, where nothing listens: a refusal happens
 * before any token exists, so the address is never contacted.
 */

const suffix = randomBytes(3).toString('hex');
const tenant = `mint-${suffix}`;
const chart = chartRelease(`mint-${suffix}`, `mint-rel-${suffix}`, `sbmint-${suffix}`);
const nowhere = 'https://127.0.0.1:1';
const role = `mint-${suffix}`;

let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let bao: OpenBaoEndpoint;
let controllerKubeconfig: string;
let controller: ControllerProcess | undefined;
const clusterBackends: string[] = [];

type Backend = { metadata?: { name?: string; generation?: number }; status?: { conditions?: Condition[]; observedGeneration?: number } };

function vaultSpec(address: string, serviceAccount: string, audience = kubernetesAuthAudience): Record<string, unknown> {
  return { vault: { address, auth: { kubernetes: { role, serviceAccountRef: { name: serviceAccount }, audience } } }, refreshInterval: '10s' };
}

async function createBackend(kind: ResourceKind, name: string, spec: Record<string, unknown>, namespace = tenant): Promise<void> {
  const body = { apiVersion: `${group}/${version}`, kind, metadata: { name }, spec };
  const plural = resources[kind].plural;
  if (resources[kind].namespaced) {
    await custom.createNamespacedCustomObject({ group, version, plural, namespace, body });
  } else {
    clusterBackends.push(name);
    await custom.createClusterCustomObject({ group, version, plural, body: { ...body, spec: { ...spec, access: [{ namespaces: [tenant], keyPrefixes: [''] }] } } });
  }
}

async function readyOf(kind: ResourceKind, name: string, namespace = tenant): Promise<Condition | undefined> {
  const plural = resources[kind].plural;
  const object = (resources[kind].namespaced
    ? await custom.getNamespacedCustomObject({ group, version, plural, namespace, name })
    : await custom.getClusterCustomObject({ group, version, plural, name })) as Backend;
  return object.status?.conditions?.find((c) => c.type === 'Ready');
}

/** Waits until the backend's Ready condition has `reason`; returns it. */
async function waitReason(kind: ResourceKind, name: string, reason: string, namespace = tenant): Promise<Condition> {
  let last = 'no condition';
  try {
    return await eventually(
      `${kind} ${name} reason ${reason}`,
      async () => {
        const ready = await readyOf(kind, name, namespace);
        last = ready === undefined ? 'no condition' : `${ready.status} ${ready.reason}: ${ready.message}`;
        return ready?.reason === reason ? ready : undefined;
      },
      30_000,
    );
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; last: ${last}; controller log: ${controller?.log().slice(-2000) ?? ''}`);
  }
}

async function serviceAccount(namespace: string, name: string, optIn?: string): Promise<void> {
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name, ...(optIn === undefined ? {} : { annotations: { [backendsAnnotation]: optIn } }) } } });
}

/** The audit lines (JSON) of the controller so far. */
function auditLines(): Record<string, unknown>[] {
  return (controller?.log() ?? '')
    .split('\n')
    .filter((line) => line.includes('"audit":true'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function start(extraArgs: readonly string[]): ControllerProcess {
  controller = startController(currentWorld(), {
    identity: `mint-${suffix}-${randomBytes(2).toString('hex')}`,
    watchNamespaces: [tenant, chart.namespace],
    leaseName: chart.leaseName,
    // One replica at a time: no election, so the second phase starts at once.
    leaderElect: false,
    kubeconfigPath: controllerKubeconfig,
    namespace: chart.namespace,
    logLevel: 'info',
    extraArgs: [`--node-plugin-service-account=${chart.namespace}:${chart.nodeServiceAccount}`, ...extraArgs],
  });
  return controller;
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  const endpoint = currentWorld().openbao;
  if (endpoint === undefined) throw new Error('the world has no OpenBao');
  bao = endpoint;
  await installChart(chart, { fullnameOverride: chart.fullname, csiDriver: { create: false }, webhook: { enabled: false } });
  controllerKubeconfig = (await serviceAccountKubeConfig(core, chart.namespace, chart.controllerServiceAccount)).path;
  await core.createNamespace({ body: { metadata: { name: tenant } } });
  // The namespace owner's opt-in (docs/rbac.md): SecretBackends here may use credentials here.
  await kc.makeApiClient(RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace: tenant,
    body: {
      metadata: { name: 'secret-binder-credentials' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${chart.fullname}-credentials-reader` },
      subjects: [{ kind: 'ServiceAccount', name: chart.controllerServiceAccount, namespace: chart.namespace }],
    },
  });
  await serviceAccount(tenant, 'app', 'api-audience, loopback, wrong-role');
  await serviceAccount(tenant, 'powerful');
  await serviceAccount(tenant, 'elsewhere', 'some-other-backend, ClusterSecretBackend/loopback');
  await createKubernetesRole(bao, { role, boundServiceAccountNames: ['app'], boundNamespaces: [tenant], policies: ['default'] });

  await createBackend('SecretBackend', 'api-audience', vaultSpec(nowhere, 'app', currentWorld().kube.serviceAccountIssuer));
  await createBackend('SecretBackend', 'not-opted-in', vaultSpec(nowhere, 'powerful'));
  await createBackend('SecretBackend', 'opted-in-elsewhere', vaultSpec(nowhere, 'elsewhere'));
  await createBackend('ClusterSecretBackend', `own-${suffix}`, vaultSpec(nowhere, chart.controllerServiceAccount));
  await createBackend('ClusterSecretBackend', `node-${suffix}`, vaultSpec(nowhere, chart.nodeServiceAccount));
  await createBackend('SecretBackend', 'in-release-namespace', vaultSpec(nowhere, chart.controllerServiceAccount), chart.namespace);
  await createBackend('SecretBackend', 'loopback', vaultSpec(bao.address, 'app'));
  // A typo in the OpenBao role: the token is minted and sent, and OpenBao refuses the login.
  const wrongRole = vaultSpec(bao.address, 'app') as { vault: { auth: { kubernetes: Record<string, unknown> } } };
  wrongRole.vault.auth.kubernetes['role'] = `${role}-typo`;
  await createBackend('SecretBackend', 'wrong-role', wrongRole);
  start([]);
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  const ignore = (): undefined => undefined;
  for (const name of clusterBackends) await custom.deleteClusterCustomObject({ group, version, plural: resources.ClusterSecretBackend.plural, name }).catch(ignore);
  await openBaoRequest(bao, 'DELETE', `auth/${bao.kubernetesAuthMount}/role/${role}`).catch(ignore);
  await uninstallChart(chart);
  for (const name of [tenant, chart.namespace]) await core.deleteNamespace({ name }).catch(ignore);
}, 120_000);

describe('service-account tokens for backend logins (ADR 0150)', () => {
  it('refuses an audience the API server accepts as its own (TokenReview), though no CEL rule knows it', async () => {
    const ready = await waitReason('SecretBackend', 'api-audience', 'AudienceNotAllowed');
    expect(ready.status).toBe('False');
    expect(ready.message).toContain("one of the API server's own audiences");
  });

  it('refuses an account without the opt-in annotation, or one naming other backends', async () => {
    for (const name of ['not-opted-in', 'opted-in-elsewhere']) {
      const ready = await waitReason('SecretBackend', name, 'ServiceAccountNotOptedIn');
      expect(ready.message).toContain(`add "${name}" to its annotation ${backendsAnnotation}`);
    }
  });

  it("refuses the controller's own and the node plugin's accounts, from a ClusterSecretBackend and a SecretBackend in the release namespace", async () => {
    for (const name of [`own-${suffix}`, `node-${suffix}`]) {
      expect((await waitReason('ClusterSecretBackend', name, 'ServiceAccountReserved')).status).toBe('False');
    }
    expect((await waitReason('SecretBackend', 'in-release-namespace', 'ServiceAccountReserved', chart.namespace)).message).toContain(`${chart.namespace}/${chart.controllerServiceAccount}`);
  });

  it('refuses plain http to loopback without the development flag', async () => {
    const ready = await waitReason('SecretBackend', 'loopback', 'InsecureTokenEndpoint');
    expect(ready.message).toContain('--allow-http-loopback-token-endpoints=true');
  });

  it('audits every refusal, never with a token; the refused accounts got none', () => {
    const refused = auditLines().filter((l) => l['event'] === 'mintRefused');
    const seen = new Set(refused.map((l) => `${(l['backend'] as { name: string }).name}:${String(l['reason'])}`));
    for (const expected of ['api-audience:AudienceNotAllowed', 'not-opted-in:ServiceAccountNotOptedIn', `own-${suffix}:ServiceAccountReserved`, `node-${suffix}:ServiceAccountReserved`, 'loopback:InsecureTokenEndpoint']) {
      expect(seen).toContain(expected);
    }
    expect(auditLines().filter((l) => l['event'] === 'minted')).toEqual([]);
    expect(controller?.log() ?? '').not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    // Running under the chart's RBAC, the refusals came before any request the API server would refuse.
    expect(controller?.log() ?? '').not.toMatch(refusedRequest);
  });

  it('with the development flag, logs in over http to loopback, audits the mint, and still refuses the rest', async () => {
    await controller?.stop();
    start(['--allow-http-loopback-token-endpoints=true']);
    const ready = await waitReason('SecretBackend', 'loopback', 'Reconciled');
    expect(ready.status).toBe('True');
    const minted = auditLines().filter((l) => l['event'] === 'minted' && (l['backend'] as { name: string }).name === 'loopback');
    expect(minted).toHaveLength(1);
    expect(minted[0]).toMatchObject({
      backend: { kind: 'SecretBackend', namespace: tenant, name: 'loopback' },
      serviceAccount: { namespace: tenant, name: 'app' },
      audiences: [kubernetesAuthAudience],
      recipient: bao.address,
      expirationSeconds: 600,
    });
    expect(controller?.log() ?? '').not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
    expect((await readyOf('SecretBackend', 'not-opted-in'))?.reason).toBe('ServiceAccountNotOptedIn');
    expect((await readyOf('ClusterSecretBackend', `own-${suffix}`))?.reason).toBe('ServiceAccountReserved');
  });

  it('names a wrong OpenBao role AuthFailed on the backend, with what OpenBao said', async () => {
    const ready = await waitReason('SecretBackend', 'wrong-role', 'AuthFailed');
    process.stdout.write(`wrong OpenBao role: SecretBackend wrong-role Ready=${ready.status} ${ready.reason}: ${ready.message}\n`);
    expect(ready.status).toBe('False');
    expect(ready.message).toMatch(/role/i);
    expect(ready.message).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });

  it('refuses at apply time what CEL can see: a missing or API audience, plain http to a non-loopback address', async () => {
    const refusal = async (spec: Record<string, unknown>): Promise<string> => {
      try {
        await custom.createNamespacedCustomObject({ group, version, plural: 'secretbackends', namespace: tenant, dryRun: 'All', body: { apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'cel' }, spec } });
        return 'accepted';
      } catch (error) {
        return error instanceof ApiException ? String((error as ApiException<unknown>).body) : String(error);
      }
    };
    expect(await refusal({ vault: { address: nowhere, auth: { kubernetes: { role, serviceAccountRef: { name: 'app' } } } } })).toContain('spec.vault.auth.kubernetes.audience: Required value');
    expect(await refusal(vaultSpec(nowhere, 'app', 'https://kubernetes.default.svc'))).toContain("audience must be the backend's own");
    expect(await refusal(vaultSpec('http://vault.example.com:8200', 'app'))).toContain('must be https://');
    expect(await refusal(vaultSpec('http://127.0.0.1:8200', 'app'))).toBe('accepted');
  });
});
