import { readdirSync, readFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, ApiextensionsV1Api, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { currentWorld } from '../../harness/world-state.ts';

/** Shared by the integration suites: the world's admin client, CRD installation, examples, polling. */

export const root = process.cwd();
export const fieldManager = 'secret-binder-tests';

export interface Example {
  readonly file: string;
  readonly expect: string | undefined;
  readonly object: KubernetesObject & { spec?: unknown };
}

export function loadExamples(dir: string): Example[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((file) => {
      const text = readFileSync(join(dir, file), 'utf8');
      const expect = /^# expect: (.+)$/m.exec(text)?.[1];
      // kubectl reads YAML 1.1 (0440 is octal); so do we.
      return parseAllDocuments(text, { version: '1.1' }).map((doc) => ({
        file,
        expect,
        object: doc.toJS() as Example['object'],
      }));
    });
}

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

/** The status code and the message of a refusal, as kubectl prints it. */
export function errorText(error: unknown): string {
  if (!(error instanceof ApiException)) return error instanceof Error ? error.message : String(error);
  const body: unknown = error.body;
  let message = typeof body === 'string' ? body : JSON.stringify(body);
  try {
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: unknown };
    if (typeof status.message === 'string') message = status.message;
  } catch {
    // Not a Status object: keep the raw body.
  }
  return `${error.code} ${message}`;
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

export function getRaw(config: KubeConfig, path: string, accept: string): Promise<{ status: number; body: string }> {
  return rawRequest(config, 'GET', path, { Accept: accept });
}


/** The world's admin kubeconfig (system:masters). */
export function adminKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(currentWorld().kube.kubeconfigPath);
  return config;
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
