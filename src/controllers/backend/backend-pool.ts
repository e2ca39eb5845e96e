import { createHash } from 'node:crypto';
import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import { defaults } from '../../api/v1alpha1/index.ts';
import { InvalidConfigError, type BackendContext, type ProviderName, type SecretBackend } from '../../backends/backend.port.ts';
import type { BackendLimits, SecretResolver } from '../../backends/resolver/resolver.ts';

/** Parses provider blocks and creates clients: the composition root passes `src/backends/registry.ts`. */
export interface ProviderFactory {
  /** Throws InvalidConfigError when the spec has no (or several) provider blocks or a bad one. */
  parseBackendSpec(spec: Readonly<Record<string, unknown>>): { readonly provider: ProviderName; readonly config: unknown };
  createBackend(parsed: { readonly provider: ProviderName; readonly config: unknown }, context: BackendContext): SecretBackend;
}

/** The backend client a backend object currently maps to. */
export interface PooledBackend {
  /** `<kind>/<key>#<spec hash>`: changes whenever the spec does, so caches never cross specs. */
  readonly backendId: string;
  readonly provider: ProviderName;
  readonly client: SecretBackend;
  readonly limits: BackendLimits;
}

/** Builds the per-backend context (credentials namespace, token minting) for a backend object. */
export type ContextFactory = (backend: AnyBackend) => BackendContext;

/**
 * One connected client per backend object, registered with the resolver under an identity that
 * changes with the spec. Creating a client does no I/O (providers log in lazily), so the binding
 * and backend reconcilers can both ensure a backend without waiting for each other.
 */
export class BackendPool {
  readonly #resolver: SecretResolver;
  readonly #providers: ProviderFactory;
  readonly #contextFor: ContextFactory;
  readonly #byObject = new Map<string, PooledBackend>();

  constructor(resolver: SecretResolver, providers: ProviderFactory, contextFor: ContextFactory) {
    this.#resolver = resolver;
    this.#providers = providers;
    this.#contextFor = contextFor;
  }

  /**
   * The client for the backend object's current spec, creating (and replacing) it when the spec
   * changed. Throws {@link InvalidConfigError} when the spec names no provider or the provider
   * refuses its block.
   */
  async ensure(objectKey: string, backend: AnyBackend): Promise<PooledBackend> {
    refuseBorrowedIdentity(backend);
    const parsed = this.#providers.parseBackendSpec(backend.spec as unknown as Record<string, unknown>);
    const backendId = `${objectKey}#${specHash(parsed, backend.metadata.uid)}`;
    const current = this.#byObject.get(objectKey);
    if (current?.backendId === backendId) return current;
    const provider = parsed.provider;
    const client = this.#providers.createBackend(parsed, this.#contextFor(backend));
    const limits = limitsOf(backend);
    this.#resolver.addBackend(backendId, client, limits);
    const pooled: PooledBackend = { backendId, provider, client, limits };
    this.#byObject.set(objectKey, pooled);
    if (current !== undefined) await this.#resolver.removeBackend(current.backendId);
    return pooled;
  }

  /** The connectivity check of a pooled client, within its backend's rate budget. */
  checkConnectivity(pooled: PooledBackend, options: { readonly signal?: AbortSignal | undefined }): Promise<void> {
    return this.#resolver.checkConnectivity(pooled.backendId, options);
  }

  get(objectKey: string): PooledBackend | undefined {
    return this.#byObject.get(objectKey);
  }

  /** Forgets a deleted backend object: its cache and client go. */
  async remove(objectKey: string): Promise<void> {
    const current = this.#byObject.get(objectKey);
    if (current === undefined) return;
    this.#byObject.delete(objectKey);
    await this.#resolver.removeBackend(current.backendId);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byObject.keys()].map((key) => this.remove(key)));
  }
}

/**
 * A namespaced SecretBackend may not authenticate as the controller itself (AWS default chain,
 * Azure managed identity): that would hand a tenant the operator's cloud identity. The CRD's CEL
 * rules refuse such specs at apply time; this guards objects created before the rules existed.
 */
export function refuseBorrowedIdentity(backend: AnyBackend): void {
  if (backend.kind !== 'SecretBackend') return;
  if (backend.spec.awsSecretsManager?.auth.defaultChain !== undefined) {
    throw new InvalidConfigError('awsSecretsManager.auth.defaultChain is allowed only in a ClusterSecretBackend');
  }
  if (backend.spec.azureKeyVault?.auth.managedIdentity !== undefined) {
    throw new InvalidConfigError('azureKeyVault.auth.managedIdentity is allowed only in a ClusterSecretBackend');
  }
}

function limitsOf(backend: AnyBackend): BackendLimits {
  const rate = backend.spec.rateLimit;
  return {
    qps: rate?.qps ?? defaults.rateLimit.qps,
    burst: rate?.burst ?? defaults.rateLimit.burst,
    maxConcurrency: rate?.maxConcurrency ?? defaults.rateLimit.maxConcurrency,
  };
}

/** A digest of what shapes the client: the parsed provider config (access rules do not). */
function specHash(parsed: { readonly provider: ProviderName; readonly config: unknown }, uid: string | undefined): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify([parsed.provider, canonical(parsed.config), uid ?? '']));
  return hash.digest('hex').slice(0, 16);
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}
