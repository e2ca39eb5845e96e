import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  createKubernetesRole,
  loginWithKubernetes,
  OpenBaoApiError,
  openBaoRequest,
  readKvSecret,
  writeKvSecret,
  writePolicy,
} from './openbao.ts';
import { currentWorld } from './world-state.ts';
import type { OpenBaoEndpoint, WorldState } from './world-state.ts';

/**
 * OpenBao's kubernetes auth method against the world's real kube-apiserver: a pod identity (a
 * TokenRequest token of a ServiceAccount) logs in and gets exactly the policy of its role. Needs
 * the running world of jest's global setup (`currentWorld()` fails clearly without one).
 */

const audience = 'openbao-selftest';

describe('OpenBao kubernetes auth against the world apiserver', () => {
  let ready: { world: WorldState; bao: OpenBaoEndpoint; core: CoreV1Api } | undefined;
  const ctx = (): { world: WorldState; bao: OpenBaoEndpoint; core: CoreV1Api } => {
    if (ready === undefined) throw new Error('setup failed (see beforeAll)');
    return ready;
  };
  const run = randomUUID().slice(0, 8);
  const namespace = `sb-bao-selftest-${run}`;
  const role = `selftest-${run}`;
  const policy = `selftest-read-${run}`;
  const allowedPath = `selftest-kube/${run}/allowed`;
  const deniedPath = `selftest-kube/${run}-other/denied`;

  const tokenFor = async (serviceAccount: string, audiences: string[]): Promise<string> => {
    const answer = await ctx().core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { audiences, expirationSeconds: 600 } },
    });
    const token = answer.status?.token;
    if (token === undefined || token === '') throw new Error(`no token for ${serviceAccount}`);
    return token;
  };

  beforeAll(async () => {
    const world = currentWorld();
    const bao = world.openbao;
    if (bao === undefined) throw new Error('the running world has no OpenBao');
    const config = new KubeConfig();
    config.loadFromFile(world.kube.kubeconfigPath);
    const core = config.makeApiClient(CoreV1Api);
    ready = { world, bao, core };
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    for (const name of ['app', 'other']) {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    }
    await writePolicy(bao, policy, `path "${bao.kvMount}/data/selftest-kube/${run}/*" {\n  capabilities = ["read"]\n}\n`);
    await createKubernetesRole(bao, {
      role,
      boundServiceAccountNames: ['app'],
      boundNamespaces: [namespace],
      policies: [policy],
      audience,
    });
    await writeKvSecret(bao, allowedPath, { value: 'for-app' });
    await writeKvSecret(bao, deniedPath, { value: 'not-for-app' });
  });

  afterAll(async () => {
    // Unset when currentWorld() threw: nothing was created then.
    if (ready === undefined) return;
    const { bao, core } = ready;
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    await openBaoRequest(bao, 'DELETE', `auth/${bao.kubernetesAuthMount}/role/${role}`).catch(() => undefined);
    await openBaoRequest(bao, 'DELETE', `sys/policies/acl/${policy}`).catch(() => undefined);
  });

  it('is configured against the world apiserver', async () => {
    const { world, bao } = ctx();
    const config = (await openBaoRequest(bao, 'GET', `auth/${bao.kubernetesAuthMount}/config`)) as {
      data?: { kubernetes_host?: string; issuer?: string };
    };
    expect(config.data?.kubernetes_host).toBe(world.kube.server);
    expect(config.data?.issuer).toBe(world.kube.serviceAccountIssuer);
  });

  it('logs in a bound service account with the role policy, which reads only its paths', async () => {
    const { bao } = ctx();
    const login = await loginWithKubernetes(bao, { role, jwt: await tokenFor('app', [audience]) });
    expect(login.policies).toEqual(expect.arrayContaining([policy]));

    expect((await readKvSecret(bao, allowedPath, { token: login.clientToken })).data).toEqual({ value: 'for-app' });
    await expect(readKvSecret(bao, deniedPath, { token: login.clientToken })).rejects.toMatchObject({ status: 403 });
  });

  it('refuses a service account the role does not bind', async () => {
    const { bao } = ctx();
    const attempt = loginWithKubernetes(bao, { role, jwt: await tokenFor('other', [audience]) });
    await expect(attempt).rejects.toBeInstanceOf(OpenBaoApiError);
    await expect(attempt).rejects.toMatchObject({ status: 403 });
  });

  it('refuses a token minted for another audience', async () => {
    const { bao } = ctx();
    const attempt = loginWithKubernetes(bao, { role, jwt: await tokenFor('app', ['someone-else']) });
    await expect(attempt).rejects.toBeInstanceOf(OpenBaoApiError);
  });
});
