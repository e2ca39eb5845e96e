import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiException, KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { currentWorld } from '../../harness/world-state.ts';

/** Shared by the integration suites: the world's admin client, CRD installation, examples, polling. */

export const root = process.cwd();
export const fieldManager = 'secret-binder-tests';
import { rawRequest } from '../../harness/crds.ts';
export { crdFiles, eventually, installCrds, rawRequest } from '../../harness/crds.ts';

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

export function getRaw(config: KubeConfig, path: string, accept: string): Promise<{ status: number; body: string }> {
  return rawRequest(config, 'GET', path, { Accept: accept });
}


/** The world's admin kubeconfig (system:masters). */
export function adminKubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(currentWorld().kube.kubeconfigPath);
  return config;
}

