import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { BindingContent } from '../controllers/binding/binding-content.ts';
import { createAuditLog } from '../observability/audit.ts';
import { CapturedOutput } from '../observability/captured-output.ts';
import { createLogger } from '../observability/logger.ts';
import { SecretValue } from '../observability/secret-value.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import { agentContainerName, agentMountPath, agentTokenDir, agentTokenVolumeName } from './agent.protocol.ts';
import { Broker, type ContentSource } from './broker.ts';
import { createBrokerMetrics } from './broker.metrics.ts';
import type { ChangesAnswer, PublishAnswer } from './broker.protocol.ts';
import { ChangeHub } from './change-hub.ts';
import { extraKeys, TokenReviewCache, type TokenIdentity, type TokenReviewer } from './token-review.ts';

/**
 * The agent's endpoints (ADR 0250) with stand-ins for our own ports: the pod's own token proves
 * the pod (no node-plugin caller), the agent entitlement decides, the change stream revokes.
 */

const binding: SecretBinding = {
  apiVersion: 'secretbinder.dev/v1alpha1',
  kind: 'SecretBinding',
  metadata: { name: 'db', namespace: 'apps' },
  spec: { backendRef: { kind: 'SecretBackend', name: 'b' }, podSelector: { matchLabels: { app: 'web' } }, containers: ['app'], files: [{ path: 'a', key: 'k' }] },
};

function agentPod(uid: string, extra: { appMountsToken?: boolean; unlistedMount?: boolean } = {}): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'apps', uid, labels: { app: 'web' } },
    spec: {
      nodeName: 'n1',
      serviceAccountName: 'web',
      initContainers: [
        {
          name: agentContainerName,
          volumeMounts: [
            { name: agentTokenVolumeName, mountPath: agentTokenDir },
            { name: 'secretbinder-db', mountPath: agentMountPath('db') },
          ],
        },
      ],
      containers: [
        { name: 'app', volumeMounts: [{ name: 'secretbinder-db', mountPath: '/s', readOnly: true }, ...(extra.appMountsToken === true ? [{ name: agentTokenVolumeName, mountPath: '/t' }] : [])] },
        { name: 'other', volumeMounts: extra.unlistedMount === true ? [{ name: 'secretbinder-db', mountPath: '/s' }] : [] },
      ],
      volumes: [
        { name: 'secretbinder-db', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
        { name: agentTokenVolumeName, projected: { sources: [{ serviceAccountToken: { audience: 'secretbinder.dev', expirationSeconds: 600, path: 'token' } }] } },
      ],
    },
  };
}

function reader<T>(items: Map<string, T>): CacheReader<T> {
  return { get: (key) => items.get(key), list: () => [...items.values()], listNamespace: () => [...items.values()], byIndex: () => [] };
}

class ApiServer implements TokenReviewer {
  reviews = 0;
  readonly live = new Map<string, V1Pod>();

  review(token: string): Promise<TokenIdentity> {
    this.reviews += 1;
    const uid = token.replace(/^pod-token-/, '');
    if (![...this.live.values()].some((p) => p.metadata?.uid === uid)) return Promise.resolve({ authenticated: false, error: 'pod not found' });
    return Promise.resolve({ authenticated: true, username: 'system:serviceaccount:apps:web', extra: { [extraKeys.podName]: ['p'], [extraKeys.podUid]: [uid], [extraKeys.nodeName]: ['n1'] } });
  }
}

function setup(): { broker: Broker; api: ApiServer; bindings: Map<string, SecretBinding>; audit: CapturedOutput } {
  const api = new ApiServer();
  const bindings = new Map([['apps/db', binding]]);
  const audit = new CapturedOutput();
  const content: ContentSource = {
    resolve: (): Promise<BindingContent> =>
      Promise.resolve({ kind: 'resolved', files: [{ path: 'a', mode: 0o440, content: SecretValue.fromString('value-1') }], hmac: 'h1', versions: [], stale: undefined }),
  };
  const broker = new Broker({
    tokens: api,
    podTokens: new TokenReviewCache({ ttlMs: 60_000 }),
    nodePlugin: { namespace: 'sys', name: 'plugin' },
    bindings: reader(bindings),
    pods: reader(api.live),
    podsSynced: () => true,
    readPod: (namespace, name) => Promise.resolve(api.live.get(`${namespace}/${name}`)),
    content,
    freshContent: content,
    hub: new ChangeHub(),
    audit: createAuditLog({ destination: { kind: 'stream', stream: audit } }),
    metrics: createBrokerMetrics(new Registry()),
    logger: createLogger({ level: 'error', component: 'broker', stream: new CapturedOutput() }),
  });
  return { broker, api, bindings, audit };
}

const signal = (): AbortSignal => new AbortController().signal;

describe('broker agent endpoints', () => {
  it('delivers the file set to the pod its own token is bound to, audited as via agent', async () => {
    const { broker, api, audit } = setup();
    api.live.set('apps/p', agentPod('u1'));
    const reply = await broker.agentPublish('Bearer pod-token-u1', { binding: 'db' }, signal());
    expect(reply.status).toBe(200);
    const body = reply.body as PublishAnswer;
    expect(body.contentHash).toBe('h1');
    expect(Buffer.from(body.files[0]?.contentBase64 ?? '', 'base64').toString()).toBe('value-1');
    const audited = await audit.text();
    expect(audited).toContain('"via":"agent"');
    expect(audited).not.toContain('value-1');
    // Remembered: a second ask while the pod lives needs no second TokenReview.
    expect((await broker.agentPublish('Bearer pod-token-u1', { binding: 'db' }, signal())).status).toBe(200);
    expect(api.reviews).toBe(1);
  });

  it.each([
    ['a token of a pod that is gone', 'pod-token-u9', {}, 401, 'Unauthenticated'],
    ['an unlisted container mounting the volume', 'pod-token-u1', { unlistedMount: true }, 403, 'NotEntitled'],
    ['an app container holding the secretbinder.dev token', 'pod-token-u1', { appMountsToken: true }, 403, 'NotEntitled'],
  ] as const)('refuses %s', async (_name, token, shape, status, reason) => {
    const { broker, api } = setup();
    api.live.set('apps/p', agentPod('u1', shape));
    const reply = await broker.agentPublish(`Bearer ${token}`, { binding: 'db' }, signal());
    expect({ status: reply.status, reason: (reply.body as { reason: string }).reason }).toEqual({ status, reason });
  });

  it('refuses a binding that does not exist, naming it, and a request without a token', async () => {
    const { broker, api } = setup();
    api.live.set('apps/p', agentPod('u1'));
    const missing = await broker.agentPublish('Bearer pod-token-u1', { binding: 'nope' }, signal());
    expect(missing.status).toBe(404);
    expect((missing.body as { message: string }).message).toContain('nope');
    expect((await broker.agentPublish(undefined, { binding: 'db' }, signal())).status).toBe(401);
  });

  it('answers the change stream: a new hash as changed, a deleted binding as revoked', async () => {
    const { broker, api, bindings } = setup();
    api.live.set('apps/p', agentPod('u1'));
    const changes = async (hash: string): Promise<ChangesAnswer> =>
      (await broker.agentChanges('Bearer pod-token-u1', { bindings: [{ binding: 'db', contentHash: hash }], waitSeconds: 0 }, signal())).body as ChangesAnswer;
    expect((await broker.agentPublish('Bearer pod-token-u1', { binding: 'db' }, signal())).status).toBe(200);
    expect((await changes('h1')).changed).toEqual([]);
    expect((await changes('h0')).changed).toEqual([{ volumeId: 'db', contentHash: 'h1', revoked: false }]);
    bindings.delete('apps/db');
    expect((await changes('h1')).changed).toEqual([{ volumeId: 'db', contentHash: null, revoked: true }]);
  });
});
