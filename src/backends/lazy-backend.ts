import type { CallOptions, FetchOutcome, ProviderName, SecretBackend, SecretRef, VersionOutcome } from './backend.port.ts';

/**
 * A backend whose SDK is loaded on its first call (ADR 0200): the AWS, Azure and Vault SDKs cost
 * 10–40 MiB of RSS each once imported, and most deployments use one provider or none. `load` runs
 * once; a failed load (never expected: the module is part of the image) is retried by the next
 * call. Creating one still does no I/O, as the provider contract asks.
 */
export function lazyBackend(provider: ProviderName, load: () => Promise<SecretBackend>): SecretBackend {
  let loading: Promise<SecretBackend> | undefined;
  let closed = false;
  const backend = (): Promise<SecretBackend> => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
  return {
    provider,
    fetch: async (refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]> => (await backend()).fetch(refs, options),
    versions: async (refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]> => (await backend()).versions(refs, options),
    checkConnectivity: async (options: CallOptions): Promise<void> => (await backend()).checkConnectivity(options),
    close: async (): Promise<void> => {
      if (closed) return;
      closed = true;
      // Never loaded: nothing was opened.
      if (loading !== undefined) await (await loading).close();
    },
  };
}
