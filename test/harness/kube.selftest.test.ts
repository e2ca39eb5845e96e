import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { ApiException, AppsV1Api, AuthenticationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { eventually } from './crds.ts';
import { currentWorld } from './world-state.ts';
import type { WorldState } from './world-state.ts';

/** The test world's control plane does what the other tests rely on. */

function statusCode(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

describe('test world control plane', () => {
  let world: WorldState;
  let config: KubeConfig;
  let core: CoreV1Api;
  const namespace = `selftest-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    world = currentWorld();
    config = new KubeConfig();
    config.loadFromFile(world.kube.kubeconfigPath);
    core = config.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  }, 30_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('serves on 127.0.0.1 with the recorded CA and issuer', () => {
    expect(world.kube.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(config.getCurrentCluster()?.server).toBe(world.kube.server);
    expect(world.kube.caPem).toContain('BEGIN CERTIFICATE');
  });

  it('runs Deployments: a ReplicaSet and a Pod appear (Pending: there is no node)', async () => {
    const apps = config.makeApiClient(AppsV1Api);
    const labels = { app: 'selftest' };
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: 'selftest' },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: 'main', image: 'registry.invalid/none:1' }] } },
        },
      },
    });
    const replicaSet = await eventually('ReplicaSet', async () => {
      const list = await apps.listNamespacedReplicaSet({ namespace });
      return list.items.find((rs) => rs.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === 'selftest'));
    });
    const pod = await eventually('Pod', async () => {
      const list = await core.listNamespacedPod({ namespace });
      return list.items.find((p) => p.metadata?.ownerReferences?.some((o) => o.uid === replicaSet.metadata?.uid));
    });
    expect(pod.status?.phase).toBe('Pending');
    expect(pod.spec?.nodeName).toBeUndefined();
  }, 60_000);

  it('mints secretbinder.dev tokens with TokenRequest that TokenReview accepts for that audience only', async () => {
    const authn = config.makeApiClient(AuthenticationV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'reader' } } });
    const mint = async (audiences?: string[]): Promise<string> => {
      const answer = await core.createNamespacedServiceAccountToken({
        name: 'reader',
        namespace,
        body: { spec: { ...(audiences === undefined ? {} : { audiences }), expirationSeconds: 600 } },
      });
      const token = answer.status?.token;
      if (token === undefined) throw new Error('no token');
      return token;
    };
    const review = async (token: string, audiences: string[]) =>
      (await authn.createTokenReview({ body: { spec: { token, audiences } } })).status;

    const token = await mint(['secretbinder.dev']);
    const accepted = await review(token, ['secretbinder.dev']);
    expect(accepted?.authenticated).toBe(true);
    expect(accepted?.audiences).toContain('secretbinder.dev');
    expect(accepted?.user?.username).toBe(`system:serviceaccount:${namespace}:reader`);

    // A token for the apiserver itself is no broker credential, and a broker token is no
    // apiserver credential (ADR 0012).
    const apiserverToken = await mint();
    expect((await review(apiserverToken, ['secretbinder.dev']))?.authenticated).toBeFalsy();
    const asBrokerToken = new KubeConfig();
    asBrokerToken.loadFromOptions({
      clusters: [{ name: 'world', server: world.kube.server, caData: Buffer.from(world.kube.caPem).toString('base64') }],
      users: [{ name: 'reader', token }],
      contexts: [{ name: 'world', cluster: 'world', user: 'reader' }],
      currentContext: 'world',
    });
    const rejected = await asBrokerToken
      .makeApiClient(CoreV1Api)
      .listNamespacedServiceAccount({ namespace })
      .then(() => 200, statusCode);
    expect(rejected).toBe(401);
  }, 30_000);

  it('finalizes namespace deletion', async () => {
    const doomed = `${namespace}-gone`;
    await core.createNamespace({ body: { metadata: { name: doomed } } });
    await core.createNamespacedConfigMap({ namespace: doomed, body: { metadata: { name: 'content' }, data: { a: 'b' } } });
    await core.deleteNamespace({ name: doomed });
    const code = await eventually(
      'namespace gone',
      () => core.readNamespace({ name: doomed }).then(() => undefined, statusCode),
      80_000,
    );
    expect(code).toBe(404);
  }, 90_000);
});
