import { randomBytes } from 'node:crypto';
import type { V1Namespace } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { AnyBackend } from '../../src/api/v1alpha1/index.ts';
import { createBackendMetrics } from '../../src/backends/backends.metrics.ts';
import { FakeBackend, type FakeSecretStore } from '../../src/backends/fake/index.ts';
import { SecretResolver } from '../../src/backends/resolver/resolver.ts';
import { BackendPool } from '../../src/controllers/backend/backend-pool.ts';
import { BindingContentResolver } from '../../src/controllers/binding/binding-content.ts';
import { SecretValue } from '../../src/observability/secret-value.ts';
import { realClock } from '../../src/runtime/clock.ts';
import { ObjectStore } from '../../src/runtime/object-store.ts';

/** The in-process content path the benches measure: resolver, backend pool and binding content resolver. */
export interface ContentWorld {
  readonly resolver: SecretResolver;
  readonly pool: BackendPool;
  readonly content: BindingContentResolver;
}

/**
 * The binding controller's content path over fake backends, in the namespace `bench`: every
 * SecretBackend in `backends` reads the store `storeOf` gives for its spec.
 */
export function contentWorld(backends: ObjectStore<AnyBackend>, storeOf: (spec: Readonly<Record<string, unknown>>) => FakeSecretStore): ContentWorld {
  const resolver = new SecretResolver({ clock: realClock, metrics: createBackendMetrics(new Registry()), contentKey: SecretValue.fromBytes(randomBytes(32)) });
  const pool = new BackendPool(
    resolver,
    // The spec travels as the parsed config, so each backend object gets the store of its spec.
    { parseBackendSpec: (spec) => ({ provider: 'fake', config: spec }), createBackend: (parsed) => new FakeBackend(storeOf(parsed.config as Readonly<Record<string, unknown>>)) },
    () => ({ namespace: 'bench', requestServiceAccountToken: () => Promise.reject(new Error('unused')), readOperatorSecret: () => Promise.reject(new Error('unused')), onLogin: () => undefined }),
  );
  const content = new BindingContentResolver({
    clusterBackends: new ObjectStore<AnyBackend>(),
    namespacedBackends: backends,
    namespaces: new ObjectStore<V1Namespace>(),
    pool,
    resolver,
    contentKey: SecretValue.fromBytes(randomBytes(32)),
    resolveTimeoutMs: 30_000,
  });
  return { resolver, pool, content };
}
