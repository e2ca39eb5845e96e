import { InvalidConfigError, type CallOptions, type FetchOutcome, type ProviderName, type SecretBackend, type SecretRef, type VersionOutcome } from './backend.port.ts';
import type { LeasingBackend } from './leasing.port.ts';

/**
 * A backend whose SDK is loaded on its first call (ADR 0200): the AWS, Azure and Vault SDKs cost
 * 10–40 MiB of RSS each once imported, and most deployments use one provider or none. `load` runs
 * once; a failed load (never expected: the module is part of the image) is retried by the next
 * call. Creating one still does no I/O, as the provider contract asks.
 */
export function lazyBackend(provider: ProviderName, load: () => Promise<SecretBackend>, options?: { readonly leasing?: boolean }): SecretBackend {
  let loading: Promise<SecretBackend> | undefined;
  let closed = false;
  const backend = (): Promise<SecretBackend> => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
  const leasing = async (): Promise<LeasingBackend> => {
    const loaded = (await backend()).leasing;
    if (loaded === undefined) throw new InvalidConfigError(`the ${provider} provider issues no leased credentials`);
    return loaded;
  };
  return {
    provider,
    ...(options?.leasing === true
      ? {
          leasing: {
            issue: async (path, parameters, o) => (await leasing()).issue(path, parameters, o),
            renew: async (leaseId, increment, o) => (await leasing()).renew(leaseId, increment, o),
            revoke: async (leaseId, o) => (await leasing()).revoke(leaseId, o),
            sign: async (request, o) => (await leasing()).sign(request, o),
            revokeCertificate: async (mount, serial, o) => (await leasing()).revokeCertificate(mount, serial, o),
            readRecord: async (key, o) => (await leasing()).readRecord(key, o),
            writeRecord: async (key, value, o) => (await leasing()).writeRecord(key, value, o),
            deleteRecord: async (key, o) => (await leasing()).deleteRecord(key, o),
            listRecords: async (prefix, o) => (await leasing()).listRecords(prefix, o),
          } satisfies LeasingBackend,
        }
      : {}),
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
