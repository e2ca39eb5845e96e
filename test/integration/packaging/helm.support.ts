import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { currentWorld } from '../../harness/world-state.ts';

/**
 * Helm and kubectl for the packaging suites: the binaries the harness built into the cache
 * (test/harness/install/helm.sh, go-binaries.sh), run against the world's real API server.
 */

const run = promisify(execFile);

export const root = process.cwd();
export const chartDir = join(root, 'charts', 'secret-binder');
const cache = process.env.SECRET_BINDER_CACHE ?? join(homedir(), '.cache', 'secret-binder');
export const helmVersion = process.env.SECRET_BINDER_HELM_VERSION ?? 'v3.19.5';
export const helmPath = join(cache, 'helm', helmVersion, 'bin', 'helm');
export const kubectlPath = join(cache, 'kubernetes', process.env.SECRET_BINDER_K8S_VERSION ?? 'v1.34.4', 'bin', 'kubectl');

/** A manifest as Helm renders it: plain objects. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Helm keeps its caches and repository config in a throwaway home, never in the user's. */
const helmHome = mkdtempSync(join(tmpdir(), 'sb-helm-'));

/** More environment (added to this process's) and a longer time limit than the default 120 s. */
export interface CommandOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

export async function command(file: string, args: readonly string[], input?: string, options: CommandOptions = {}): Promise<CommandResult> {
  if (!existsSync(file)) throw new Error(`${file} is missing: run test/harness/install/all.sh (or helm.sh / go-binaries.sh)`);
  const env = {
    ...process.env,
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
    ...options.env,
  };
  const child = run(file, [...args], { env, maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 120_000 });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? String(error) };
  }
}

export function helm(args: readonly string[]): Promise<CommandResult> {
  return command(helmPath, args);
}

/** kubectl with the world's admin kubeconfig (or another one). */
export function kubectl(args: readonly string[], input?: string, kubeconfig = currentWorld().kube.kubeconfigPath): Promise<CommandResult> {
  return command(kubectlPath, ['--kubeconfig', kubeconfig, ...args], input);
}

/** Writes values to a temporary file for `helm -f`. */
export function valuesFile(values: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sb-values-')), 'values.json');
  writeFileSync(path, JSON.stringify(values));
  return path;
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null && typeof m === 'object' && typeof m.kind === 'string');
}

export interface TemplateOptions {
  readonly release?: string;
  readonly namespace?: string;
  readonly values?: unknown;
  readonly includeCrds?: boolean;
  /** Render the `helm test` hook objects too (default: skipped, as a plain install has none). */
  readonly includeTests?: boolean;
}

/** `helm template`: the rendered objects, or the error text when Helm refuses the values. */
export async function template(options: TemplateOptions = {}): Promise<{ manifests: Manifest[]; text: string; result: CommandResult }> {
  const args = ['template', options.release ?? 'secret-binder', chartDir, '--namespace', options.namespace ?? 'secret-binder-system'];
  if (options.values !== undefined) args.push('-f', valuesFile(options.values));
  if (options.includeCrds === true) args.push('--include-crds');
  if (options.includeTests !== true) args.push('--skip-tests');
  const result = await helm(args);
  return { manifests: result.code === 0 ? parseManifests(result.stdout) : [], text: result.stdout, result };
}

export function find(manifests: readonly Manifest[], kind: string, name?: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
}

export function only(manifests: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = find(manifests, kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name === undefined ? '' : ` ${name}`}, found ${found.length}`);
  return found[0] as Manifest;
}

/** Values of the plain manifests in deploy/: the defaults (the controller makes its keys, ADR 0155). */
export const plainManifestValues = {} as const;

export const plainManifestPath = join(root, 'deploy', 'secret-binder.yaml');

const plainManifestHeader = `# Generated from charts/secret-binder with default values (namespace secret-binder-system) by
#   node test/integration/packaging/render-deploy.ts
# Do not edit: a packaging test fails when this file and the chart differ. It holds no key: the
# controller creates its certificates and content-HMAC key at run time (docs/install.md).
apiVersion: v1
kind: Namespace
metadata:
  name: secret-binder-system
  labels:
    app.kubernetes.io/name: secret-binder
`;

/** The plain manifests: the chart rendered with {@link plainManifestValues}, CRDs included. */
export async function renderPlainManifests(): Promise<string> {
  const { result } = await template({ values: plainManifestValues, includeCrds: true });
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return `${plainManifestHeader}${result.stdout.startsWith('---') ? '' : '---\n'}${result.stdout}`;
}
