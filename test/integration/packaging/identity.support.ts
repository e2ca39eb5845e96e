import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, type CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { registerNeedle } from '../../harness/leak-capture.ts';
import { currentWorld } from '../../harness/world-state.ts';

/** Acting as a service account of the chart: a minted token in a kubeconfig, and status codes. */

function code(error: unknown): number | undefined {
  return error instanceof ApiException ? (error as ApiException<unknown>).code : undefined;
}

/**
 * The status code of a call: 200 when it succeeds. 429 is retried for a while, as client-go does:
 * the API server answers it while the watch cache of a just-installed CRD initializes.
 */
export async function statusOf(call: () => Promise<unknown>): Promise<number | undefined> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await call();
      return 200;
    } catch (error) {
      const status = code(error) ?? -1;
      if (status !== 429 || Date.now() > deadline) return status;
      await sleep(250);
    }
  }
}

/** A kubeconfig (object and file) holding only a bearer token of `namespace/name`, minted by `admin`. */
export async function serviceAccountKubeConfig(admin: CoreV1Api, namespace: string, name: string): Promise<{ config: KubeConfig; path: string }> {
  const world = currentWorld();
  const token = await admin.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  registerNeedle(token.status?.token ?? '', `service account token ${namespace}/${name}`);
  const text = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'world', cluster: { server: world.kube.server, 'certificate-authority-data': Buffer.from(world.kube.caPem).toString('base64') } }],
    users: [{ name, user: { token: token.status?.token ?? '' } }],
    contexts: [{ name: 'sa', context: { cluster: 'world', user: name } }],
    'current-context': 'sa',
  });
  const path = join(mkdtempSync(join(tmpdir(), 'sb-sa-')), 'kubeconfig');
  writeFileSync(path, text, { mode: 0o600 });
  const config = new KubeConfig();
  config.loadFromFile(path);
  return { config, path };
}
