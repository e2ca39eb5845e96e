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
import { Broker, type ContentSource } from './broker.ts';
import { createBrokerMetrics } from './broker.metrics.ts';
import { ChangeHub } from './change-hub.ts';
import { extraKeys, TokenReviewCache, type TokenIdentity, type TokenReviewer } from './token-review.ts';

/**
 * The broker's remembered pod-token reviews (ADR 0130), with stand-ins for our own ports: a hit
 * skips the TokenReview only while the token's pod is live, with that uid, on the caller's node;
 * otherwise the API server is asked again and its answer decides.
 */

const binding: SecretBinding = {
  apiVersion: 'secretbinder.dev/v1alpha1',
  kind: 'SecretBinding',
  metadata: { name: 'web', namespace: 'apps' },
  spec: { backendRef: { kind: 'SecretBackend', name: 'b' }, podSelector: { matchLabels: { app: 'web' } }, containers: ['app'], files: [{ path: 'a', key: 'k' }] },
};

function pod(uid: string, node = 'n1'): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'apps', uid, labels: { app: 'web' } },
    spec: {
      nodeName: node,
      serviceAccountName: 'web',
      containers: [{ name: 'app', volumeMounts: [{ name: 's', mountPath: '/s' }] }],
      volumes: [{ name: 's', csi: { driver: 'secretbinder.dev', volumeAttributes: { binding: 'web' } } }],
    },
  };
}

function reader<T>(items: Map<string, T>): CacheReader<T> {
  return { get: (key) => items.get(key), list: () => [...items.values()], listNamespace: () => [...items.values()], byIndex: () => [] };
}

/** The API server's word: the plugin's token, and pod tokens bound to the pods it knows (live ones only). */
class ApiServer implements TokenReviewer {
  /** Pod-token reviews (the plugin's own token is not counted). */
  reviews = 0;
  readonly live = new Map<string, V1Pod>();

  review(token: string): Promise<TokenIdentity> {
    if (token === 'plugin') {
      return Promise.resolve({ authenticated: true, username: 'system:serviceaccount:sys:plugin', extra: { [extraKeys.nodeName]: ['n1'] } });
    }
    this.reviews += 1;
    const uid = token.replace(/^pod-token-/, '');
    if (![...this.live.values()].some((p) => p.metadata?.uid === uid)) return Promise.resolve({ authenticated: false, error: 'pod not found' });
    return Promise.resolve({ authenticated: true, username: 'system:serviceaccount:apps:web', extra: { [extraKeys.podName]: ['p'], [extraKeys.podUid]: [uid] } });
  }
}

function setup(): { broker: Broker; api: ApiServer; cache: TokenReviewCache; resolutions: { count: number } } {
  const api = new ApiServer();
  const cache = new TokenReviewCache({ ttlMs: 60_000 });
  const resolutions = { count: 0 };
  const content: ContentSource = {
    resolve: (): Promise<BindingContent> => {
      resolutions.count++;
      return Promise.resolve({ kind: 'resolved', files: [{ path: 'a', mode: 0o444, content: SecretValue.fromString('v') }], hmac: 'h1', versions: [], stale: undefined });
    },
  };
  const broker = new Broker({
    tokens: api,
    podTokens: cache,
    nodePlugin: { namespace: 'sys', name: 'plugin' },
    bindings: reader(new Map([['apps/web', binding]])),
    pods: reader(api.live),
    podsSynced: () => true,
    readPod: (namespace, name) => Promise.resolve(api.live.get(`${namespace}/${name}`)),
    content,
    freshContent: content,
    hub: new ChangeHub(),
    audit: createAuditLog({ destination: { kind: 'stream', stream: new CapturedOutput() } }),
    metrics: createBrokerMetrics(new Registry()),
    logger: createLogger({ level: 'error', component: 'broker', stream: new CapturedOutput() }),
  });
  return { broker, api, cache, resolutions };
}

const ask = (uid: string, token = `pod-token-${uid}`): unknown => ({
  volumeId: 'v',
  pod: { namespace: 'apps', name: 'p', uid, serviceAccountName: 'web' },
  binding: 'web',
  podToken: token,
});

const publish = (broker: Broker, body: unknown): Promise<{ status: number; reason?: unknown }> =>
  broker.publish('Bearer plugin', body, new AbortController().signal).then((reply) => ({ status: reply.status, reason: (reply.body as { reason?: unknown }).reason }));

describe('broker pod-token reviews', () => {
  it('reviews a pod token once while its pod stays, and asks again once the pod is gone or replaced', async () => {
    const { broker, api } = setup();
    api.live.set('apps/p', pod('u1'));
    for (let i = 0; i < 3; i++) expect(await publish(broker, ask('u1'))).toEqual({ status: 200, reason: undefined });
    expect(api.reviews).toBe(1);

    // Deleted and recreated under the same name: the remembered review of the old token no longer
    // proves a live pod; the API server refuses the old token (401), as without the cache.
    api.live.set('apps/p', pod('u2'));
    expect(await publish(broker, ask('u1'))).toEqual({ status: 401, reason: 'Unauthenticated' });
    expect(api.reviews).toBe(2);
    // The refusal is not remembered: asked again, the API server is asked again.
    expect(await publish(broker, ask('u1'))).toEqual({ status: 401, reason: 'Unauthenticated' });
    expect(api.reviews).toBe(3);
  });

  it('asks the API server again when a remembered pod moved to another node, and refuses as before', async () => {
    const { broker, api, cache } = setup();
    api.live.set('apps/p', pod('u1'));
    expect((await publish(broker, ask('u1'))).status).toBe(200);
    expect(cache.size).toBe(1);
    api.live.set('apps/p', pod('u1', 'n2'));
    expect(await publish(broker, ask('u1'))).toEqual({ status: 403, reason: 'IdentityMismatch' });
    // Refused after a fresh review: the entry is gone.
    expect(cache.size).toBe(0);
  });
});

describe('broker publish-batch (ADR 0224)', () => {
  const batch = (broker: Broker, body: unknown, caller = 'Bearer plugin') => broker.publishBatch(caller, body, new AbortController().signal);

  it('proves every volume on its own, resolves the binding once and answers each file set once', async () => {
    const { broker, api, resolutions } = setup();
    api.live.set('apps/p', pod('u1'));
    const volumes = [{ ...(ask('u1') as object), volumeId: 'v1' }, { ...(ask('u2') as object), volumeId: 'v2' }, { ...(ask('u1') as object), volumeId: 'v3' }];
    const reply = await batch(broker, { volumes });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      results: [
        { volumeId: 'v1', contentHash: 'h1', fileSet: 0 },
        { volumeId: 'v2', error: { status: 401, reason: 'Unauthenticated', message: expect.stringContaining('pod token refused') } },
        { volumeId: 'v3', contentHash: 'h1', fileSet: 0 },
      ],
      fileSets: [{ contentHash: 'h1', files: [{ path: 'a', mode: 0o444, contentBase64: Buffer.from('v').toString('base64') }] }],
    });
    expect(resolutions.count).toBe(1);
  });

  it('refuses the whole batch for a caller that is not the node plugin, and a malformed or oversized batch', async () => {
    const { broker, api, resolutions } = setup();
    api.live.set('apps/p', pod('u1'));
    expect((await batch(broker, { volumes: [ask('u1')] }, 'Bearer pod-token-u1')).status).toBe(403);
    expect((await batch(broker, { volumes: [] })).status).toBe(400);
    expect((await batch(broker, { volumes: Array.from({ length: 257 }, () => ask('u1')) })).status).toBe(400);
    expect(resolutions.count).toBe(0);
  });
});
