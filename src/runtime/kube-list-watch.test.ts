import { describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pLimit from 'p-limit';
import { KubeListWatch, resourcePath } from './kube-list-watch.ts';

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('KubeListWatch', () => {
  it('builds collection paths for core and grouped resources', () => {
    expect(resourcePath({ group: '', version: 'v1', plural: 'pods' }, 'ns')).toBe('/api/v1/namespaces/ns/pods');
    expect(resourcePath({ group: 'secretbinder.dev', version: 'v1alpha1', plural: 'secretbindings' })).toBe('/apis/secretbinder.dev/v1alpha1/secretbindings');
  });

  it('refuses to watch all Secrets or ConfigMaps of the cluster', () => {
    const kc = kubeConfig();
    expect(() => new KubeListWatch(kc, { group: '', version: 'v1', plural: 'secrets' })).toThrow(/refusing to watch all secrets/);
    expect(() => new KubeListWatch(kc, { group: '', version: 'v1', plural: 'configmaps' })).toThrow(/refusing/);
    expect(new KubeListWatch(kc, { group: '', version: 'v1', plural: 'configmaps' }, { namespace: 'ns' }).description).toBe('configmaps, namespace ns');
    expect(new KubeListWatch(kc, { group: '', version: 'v1', plural: 'secrets' }, { labelSelector: 'a=b' }).description).toBe('secrets, all namespaces, labels a=b');
  });

  it('reports an unreachable server as a transport error (code 0) on list and watch', async () => {
    const lw = new KubeListWatch(kubeConfig(), { group: '', version: 'v1', plural: 'pods' });
    await expect(lw.list(new AbortController().signal, (o) => o)).rejects.toMatchObject({ name: 'KubeApiError', code: 0 });
    let established = false;
    await expect(lw.watch('1', { onEstablished: () => (established = true), onEvent: () => undefined }, new AbortController().signal)).rejects.toMatchObject({
      name: 'KubeApiError',
      code: 0,
    });
    expect(established).toBe(false);
  });

  it('lists in the shared slots it is given, all pages of a list in one slot (ADR 0208)', async () => {
    let inFlight = 0;
    let most = 0;
    // Two pages per namespace, each answered after 20 ms.
    const server = createServer((req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      const url = new URL(req.url ?? '/', 'http://x');
      const last = url.searchParams.get('continue') !== null;
      setTimeout(() => {
        inFlight--;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [{ metadata: { name: last ? 'b' : 'a' } }], metadata: { resourceVersion: '7', continue: last ? '' : 'next' } }));
      }, 20);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
      const kc = { getCurrentCluster: () => ({ server: address }), applyToHTTPSOptions: () => Promise.resolve() };
      const slots = pLimit(1);
      const lists = ['a', 'b', 'c'].map((namespace) => new KubeListWatch(kc, { group: '', version: 'v1', plural: 'pods' }, { namespace }, { listSlots: slots }).list(AbortSignal.timeout(5000), (o) => o));
      const answers = await Promise.all(lists);
      expect(answers.map((a) => a.items.map((i) => i.metadata?.name).join(''))).toEqual(['ab', 'ab', 'ab']);
      expect(most).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
