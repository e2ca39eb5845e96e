import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { CoreV1Api } from '@kubernetes/client-node';
import { currentWorld } from '../../harness/world-state.ts';
import { adminKubeConfig } from '../support/cluster.ts';
import { chartDir, helm, type CommandResult } from './helm.support.ts';

/**
 * The node plugin is privileged, so a release namespace that enforces Pod Security `baseline` or
 * `restricted` would install and then never run a node-plugin pod. `helm install --dry-run=server`
 * (lookup sees the real namespace, nothing is created) shows the chart refuses such a namespace with
 * a sentence naming the label and the way out, and accepts `privileged` or an unlabelled namespace.
 */

const suffix = randomBytes(3).toString('hex');
const namespaces = {
  restricted: `psa-restricted-${suffix}`,
  baseline: `psa-baseline-${suffix}`,
  privileged: `psa-privileged-${suffix}`,
  unlabelled: `psa-none-${suffix}`,
} as const;

let core: CoreV1Api;

function dryRunInstall(namespace: string, ...set: string[]): Promise<CommandResult> {
  const sets = set.flatMap((s) => ['--set', s]);
  return helm(['install', 'secret-binder', chartDir, '--namespace', namespace, '--dry-run=server', '--kubeconfig', currentWorld().kube.kubeconfigPath, ...sets]);
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(CoreV1Api);
  for (const [level, name] of Object.entries(namespaces)) {
    const labels: Record<string, string> = level === 'unlabelled' ? {} : { 'pod-security.kubernetes.io/enforce': level };
    await core.createNamespace({ body: { metadata: { name, labels } } });
  }
});

afterAll(async () => {
  for (const name of Object.values(namespaces)) await core.deleteNamespace({ name }).catch(() => undefined);
});

describe('chart: Pod Security of the release namespace', () => {
  it.each(['restricted', 'baseline'] as const)('refuses a namespace enforcing %s, naming the label and the way out', async (level) => {
    const result = await dryRunInstall(namespaces[level]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`namespace "${namespaces[level]}" enforces Pod Security "${level}", which refuses the privileged node plugin`);
    expect(result.stderr).toContain('pod-security.kubernetes.io/enforce=privileged');
  });

  it.each(['privileged', 'unlabelled'] as const)('accepts a %s namespace', async (level) => {
    const result = await dryRunInstall(namespaces[level]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('kind: DaemonSet');
  });

  it('accepts a restricted namespace when the node plugin is off, or when the check is turned off', async () => {
    const withoutPlugin = await dryRunInstall(namespaces.restricted, 'nodePlugin.enabled=false');
    expect(withoutPlugin.code).toBe(0);
    expect(withoutPlugin.stdout).not.toContain('kind: DaemonSet');
    const unchecked = await dryRunInstall(namespaces.restricted, 'nodePlugin.podSecurityCheck=false');
    expect(unchecked.code).toBe(0);
  });
});
