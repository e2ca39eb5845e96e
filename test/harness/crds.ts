import { readdirSync, readFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiextensionsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';

/** Installing the project's CRDs into a world (tests, demo): raw server-side apply, then Established. */

const root = process.cwd();
const fieldManager = 'secret-binder-harness';

/** The CRD files: name and YAML text, as `kubectl apply --server-side` would send them. */
export function crdFiles(): { name: string; text: string }[] {
  const dir = join(root, 'crds');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      const crd = parse(text) as { metadata: { name: string } };
      return { name: crd.metadata.name, text };
    });
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/**
 * A request with the kubeconfig's admin credentials, for what the typed clients do not offer (or
 * would re-serialize: the client's CRD model drops `x-kubernetes-*` keys of plain objects).
 */
export async function rawRequest(
  config: KubeConfig,
  method: 'GET' | 'PATCH',
  path: string,
  headers: OutgoingHttpHeaders,
  body?: string,
): Promise<{ status: number; body: string }> {
  const server = config.getCurrentCluster()?.server;
  if (server === undefined) throw new Error('kubeconfig has no cluster');
  const options: RequestOptions = {};
  await config.applyToHTTPSOptions(options);
  const allHeaders: OutgoingHttpHeaders = { ...headers };
  if (options.headers !== undefined && !Array.isArray(options.headers)) Object.assign(allHeaders, options.headers);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server), { ...options, method, headers: allHeaders }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Installs our CRDs with server-side apply of the raw YAML (the typed client would drop the
 * `x-kubernetes-*` keys) and waits until they are Established. Idempotent across suites.
 */
export async function installCrds(config: KubeConfig): Promise<void> {
  const extensions = config.makeApiClient(ApiextensionsV1Api);
  for (const { name, text } of crdFiles()) {
    const answer = await rawRequest(
      config,
      'PATCH',
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}?fieldManager=${fieldManager}&force=true`,
      { 'Content-Type': 'application/apply-patch+yaml', Accept: 'application/json' },
      text,
    );
    if (answer.status !== 200 && answer.status !== 201) throw new Error(`applying ${name}: ${answer.status} ${answer.body}`);
  }
  for (const { name } of crdFiles()) {
    await eventually(`${name} Established`, async () => {
      const current = await extensions.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.find((c) => c.type === 'Established');
      return established?.status === 'True' ? true : undefined;
    });
  }
}
