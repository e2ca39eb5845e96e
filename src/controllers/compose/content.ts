import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import type { BackendContext } from '../../backends/backend.port.ts';
import { createBackendMetrics, loginCounter } from '../../backends/backends.metrics.ts';
import { createBackend, parseBackendSpec } from '../../backends/registry.ts';
import { SecretResolver } from '../../backends/resolver/resolver.ts';
import { ChangeHub, RecordingContentResolver } from '../../broker/change-hub.ts';
import { readOperatorSecret } from '../../kube/operator-secrets.ts';
import { ownUsername, readServiceAccountAnnotations, requestServiceAccountToken, reviewAsApiCredential } from '../../kube/service-account-tokens.ts';
import { TokenMinter } from '../../backends/token-minter.ts';
import { brokerAudience } from '../../broker/broker.protocol.ts';
import { loopbackHttpTokensFlag } from '../../config/controller.config.ts';
import type { AuditLog } from '../../observability/audit.ts';
import type { SecretValue } from '../../observability/secret-value.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Runnable } from '../../runtime/runnable.ts';
import { BackendPool } from '../backend/backend-pool.ts';
import type { BindingContentDeps } from '../binding/binding-content.ts';
import type { OperatorContext } from './context.ts';
import { LeaseKeeper } from '../../dynamic/lease-keeper.ts';

/** How bindings become content: the resolver, its backend pool, and the change hub they feed. */
export interface ContentComposition {
  readonly resolver: SecretResolver;
  readonly pool: BackendPool;
  /** The current hash of every binding, for the broker's change stream. */
  readonly hub: ChangeHub;
  /** What any further content resolver (the broker's) is built from. */
  readonly contentDeps: BindingContentDeps;
  /** The reconciler's resolver: every resolution feeds the hub. */
  readonly content: RecordingContentResolver;
  /** The cluster access a backend object's provider gets (credentials namespace, token minting). */
  readonly contextFor: (backend: AnyBackend) => BackendContext;
  /** Dynamic secrets: leases issued, renewed and revoked (issue 21); shared by the broker and the binding reconciler. */
  readonly leases: LeaseKeeper;
  /** Releases backend clients; after the manager stopped. */
  readonly close: () => Promise<void>;
}

export function composeContent({ config, clients, registry, clock, informers, logger }: OperatorContext, contentKey: SecretValue, audit: AuditLog): ContentComposition {
  const backendMetrics = createBackendMetrics(registry);
  const resolver = new SecretResolver({ clock, metrics: backendMetrics, contentKey });
  const onLogin = loginCounter(backendMetrics);
  // Every service-account token a backend logs in with passes this one guard (ADR 0150).
  const minter = new TokenMinter({
    ports: {
      readServiceAccountAnnotations: (namespace, name) => readServiceAccountAnnotations(clients.core, namespace, name),
      mint: (request) => requestServiceAccountToken(clients.core, request),
      reviewAsApiCredential: (token) => reviewAsApiCredential(clients.auth, token),
      ownUsername: () => ownUsername(clients.auth),
    },
    audit,
    refusedAudiences: [brokerAudience],
    reservedAccounts: config.tokenMinting.reservedAccounts,
    allowLoopbackHttp: config.tokenMinting.allowLoopbackHttp,
    loopbackHttpFlag: loopbackHttpTokensFlag,
  });
  const contextFor = (backend: AnyBackend): BackendContext => {
    const credentialsNamespace = backend.kind === 'ClusterSecretBackend' ? config.operatorNamespace : (backend.metadata.namespace ?? '');
    const identity =
      backend.kind === 'ClusterSecretBackend'
        ? { kind: backend.kind, name: backend.metadata.name ?? '' }
        : { kind: backend.kind, namespace: credentialsNamespace, name: backend.metadata.name ?? '' };
    return {
      namespace: credentialsNamespace,
      requestServiceAccountToken: (request) => minter.mint(identity, request),
      readOperatorSecret: (name, key) => readOperatorSecret(clients.core, credentialsNamespace, name, key),
      onLogin,
    };
  };
  const pool = new BackendPool(resolver, { parseBackendSpec, createBackend }, contextFor);
  // Every resolution (reconciler or broker) feeds the change stream's current hashes.
  const hub = new ChangeHub();
  const contentDeps = {
    clusterBackends: informers.clusterBackends,
    namespacedBackends: informers.namespacedBackends,
    namespaces: informers.namespaces,
    pool,
    resolver,
    contentKey,
    resolveTimeoutMs: 20_000,
  };
  const leases = new LeaseKeeper({
    clusterBackends: informers.clusterBackends,
    namespacedBackends: informers.namespacedBackends,
    namespaces: informers.namespaces,
    pool,
    contentKey,
    delivery: hub,
    logger: logger.child({ component: 'dynamic' }),
  });
  return {
    resolver,
    pool,
    hub,
    leases,
    contentDeps,
    content: new RecordingContentResolver(contentDeps, hub),
    contextFor,
    close: async () => {
      await pool.close();
      await resolver.close();
    },
  };
}

/** Drops resolver entries no binding asked for in an hour (deleted bindings, changed keys). */
export function resolverSweeper(resolver: SecretResolver, clock: Clock): Runnable {
  return {
    name: 'resolver-sweeper',
    needLeaderElection: false,
    start: async (signal) => {
      while (!signal.aborted) {
        resolver.sweep(3_600_000);
        await new Promise<void>((resolve) => {
          const timer = clock.setTimeout(resolve, 600_000);
          signal.addEventListener('abort', () => { clock.clearTimeout(timer); resolve(); }, { once: true });
        });
      }
    },
  };
}
