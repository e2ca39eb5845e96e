import {
  InvalidConfigError,
  providerNames,
  type BackendContext,
  type BackendProvider,
  type ProviderName,
  type SecretBackend,
} from './backend.port.ts';
import { awsSecretsManagerProvider } from './aws/index.ts';
import { azureKeyVaultProvider } from './azure/index.ts';
import { conjurProvider } from './conjur/index.ts';
import { fakeProvider } from './fake/index.ts';
import { vaultProvider } from './vault/index.ts';

/**
 * The one place providers are registered (ADR 0058). The map must name a provider for every entry
 * of `providerNames` and nothing else: adding a name to the port without registering a provider
 * here fails the type check (registry.test.ts checks each sits under its own name). Controllers
 * reach providers only through this file.
 */
export const backendProviders = {
  vault: vaultProvider,
  awsSecretsManager: awsSecretsManagerProvider,
  azureKeyVault: azureKeyVaultProvider,
  conjur: conjurProvider,
  fake: fakeProvider,
} as const satisfies Readonly<Record<ProviderName, BackendProvider<unknown>>>;

export function providerFor(name: ProviderName): BackendProvider<unknown> {
  return backendProviders[name];
}

/** A backend spec's provider block, validated by its provider. */
export interface ParsedBackendSpec {
  readonly provider: ProviderName;
  readonly config: unknown;
}

/**
 * Finds the one provider block of a backend spec (`vault`, `awsSecretsManager`, ...) and has its
 * provider validate it. Throws {@link InvalidConfigError} with a message fit for a condition
 * when there is none, more than one, or the block is invalid. The CRD's CEL rule refuses such
 * specs already; this is the same rule for objects that predate it.
 */
export function parseBackendSpec(spec: Readonly<Record<string, unknown>>): ParsedBackendSpec {
  const present = providerNames.filter((name) => spec[name] !== undefined && spec[name] !== null);
  if (present.length !== 1) {
    throw new InvalidConfigError(
      present.length === 0
        ? `exactly one of ${providerNames.join(', ')} must be set; none is`
        : `exactly one of ${providerNames.join(', ')} must be set; found ${present.join(', ')}`,
    );
  }
  const provider = present[0] as ProviderName;
  return { provider, config: providerFor(provider).parseConfig(spec[provider]) };
}

/** A client for a parsed spec. Creating one does no I/O; the first call (or a connectivity check) does. */
export function createBackend(parsed: ParsedBackendSpec, context: BackendContext): SecretBackend {
  return providerFor(parsed.provider).create(parsed.config, context);
}
