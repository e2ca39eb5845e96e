import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { currentWorld } from '../../harness/world-state.ts';
import { root } from '../support/cluster.ts';
import { command, helmPath, kubectlPath } from './helm.support.ts';

/**
 * The CRD upgrade step of docs/upgrading.md (ADR 0231), read from the `sh` block after the
 * `<!-- crd-upgrade -->` marker and run verbatim with `CHART` set, Helm and kubectl on the PATH and
 * the world's kubeconfig; shared by the CRD upgrade suite and the upgrade e2e suite.
 */

const marker = '<!-- crd-upgrade -->';

export function documentedCrdUpgradeStep(): string {
  const doc = readFileSync(join(root, 'docs', 'upgrading.md'), 'utf8');
  const at = doc.indexOf(`${marker}\n\`\`\`sh\n`);
  if (at < 0) throw new Error(`docs/upgrading.md: no sh block after ${marker}`);
  const body = doc.slice(at + marker.length + '\n```sh\n'.length);
  return body.slice(0, body.indexOf('\n```'));
}

/** Runs the documented step for `chart` (a directory); returns what it printed. */
export async function runCrdUpgradeStep(chart: string): Promise<string> {
  const home = mkdtempSync(join(tmpdir(), 'sb-crd-step-'));
  const path = `${dirname(helmPath)}:${dirname(kubectlPath)}:${process.env['PATH'] ?? '/usr/bin:/bin'}`;
  const result = await command('/bin/bash', ['-euo', 'pipefail', '-c', documentedCrdUpgradeStep()], undefined, {
    env: { PATH: path, HOME: home, KUBECONFIG: currentWorld().kube.kubeconfigPath, CHART: chart },
  }).finally(() => {
    rmSync(home, { recursive: true, force: true });
  });
  if (result.code !== 0) throw new Error(`the documented CRD step failed (exit ${String(result.code)}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}
