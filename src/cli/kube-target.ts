import type { KubeConfig } from '@kubernetes/client-node';
import { CliError, exitCodes } from './cli-errors.ts';

/** The kubeconfig flags every command takes, as kubectl spells them. */
export interface KubeFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace?: string;
  readonly allNamespaces?: boolean;
}

/** Where a command talks to: the API server and credentials, and the namespace scope. */
export interface KubeTarget {
  readonly kubeConfig: KubeConfig;
  /** `-n`, else the context's namespace, else `default`. */
  readonly namespace: string;
  /** `-A`: every namespace (commands that list). */
  readonly allNamespaces: boolean;
}

/**
 * Loads the kubeconfig as kubectl does: `--kubeconfig`, else the files of `KUBECONFIG` (merged by
 * the client library), else `~/.kube/config`, else the in-cluster service account; `--context`
 * picks a context; the namespace comes from `-n` or the context.
 */
export async function loadKubeTarget(flags: KubeFlags): Promise<KubeTarget> {
  // Loaded on first use: commands that work offline (render, audit sprawl -f, --help) start faster.
  const { KubeConfig: KubeConfigClass } = await import('@kubernetes/client-node');
  const kubeConfig: KubeConfig = new KubeConfigClass();
  try {
    if (flags.kubeconfig !== undefined) kubeConfig.loadFromFile(flags.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    throw new CliError(`cannot load the kubeconfig: ${error instanceof Error ? error.message : String(error)}`, exitCodes.usage);
  }
  if (flags.context !== undefined) {
    if (kubeConfig.getContextObject(flags.context) === null) {
      throw new CliError(`context "${flags.context}" does not exist in the kubeconfig`, exitCodes.usage);
    }
    kubeConfig.setCurrentContext(flags.context);
  }
  if (kubeConfig.getCurrentCluster() === null) throw new CliError('the kubeconfig has no current cluster (set one, or pass --context)', exitCodes.usage);
  const contextNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
  return {
    kubeConfig,
    namespace: flags.namespace ?? (contextNamespace !== undefined && contextNamespace !== '' ? contextNamespace : 'default'),
    allNamespaces: flags.allNamespaces === true,
  };
}
