import { Broker } from '../../broker/broker.ts';
import { createBrokerMetrics } from '../../broker/broker.metrics.ts';
import { BrokerServer } from '../../broker/broker.server.ts';
import { writeCaOut, type BrokerTlsMaterial } from '../../broker/broker-tls.ts';
import { FreshContentResolver, type ChangeHub } from '../../broker/change-hub.ts';
import { CachingTokenReviewer, KubeTokenReviewer, TokenReviewCache } from '../../broker/token-review.ts';
import { isNotFound } from '../../kube/kube-errors.ts';
import type { BrokerConfig } from '../../config/controller.config.ts';
import type { AuditLog } from '../../observability/audit.ts';
import { ManagedTlsSecret } from '../../tls/managed-tls.ts';
import type { BindingContentDeps } from '../binding/binding-content.ts';
import { LeaderFollowingContentResolver } from '../../broker/leader-following-content.ts';
import type { OperatorContext } from './context.ts';
import type { LeaseKeeper } from '../../dynamic/lease-keeper.ts';

type EnabledBrokerConfig = Extract<BrokerConfig, { readonly enabled: true }>;

export interface BrokerCompositionDeps {
  readonly contentDeps: BindingContentDeps;
  readonly hub: ChangeHub;
  readonly dynamic: LeaseKeeper;
  /** Required: the broker audits every answer. */
  readonly audit: AuditLog | undefined;
}

/** The broker's HTTPS server (every replica), with its token reviews and content resolvers. */
export function composeBroker({ clients, registry, logger, informers, config: { operatorNamespace } }: OperatorContext, config: EnabledBrokerConfig, deps: BrokerCompositionDeps): BrokerServer {
  const { bindings, pods } = informers;
  if (deps.audit === undefined) throw new Error('the broker needs an audit log');
  const tokens = new KubeTokenReviewer(clients.auth);
  // Pod tokens: two minutes, as the kubelet's webhook authentication cache (ADR 0130).
  const podTokens = new TokenReviewCache({ ttlMs: 120_000, maxEntries: 10_000 });
  pods.addHandler({
    delete: (p) => {
      if (p.metadata?.uid !== undefined) podTokens.forgetPod(p.metadata.uid);
    },
  });
  const broker = new Broker({
    tokens,
    podTokens,
    callerTokens: new CachingTokenReviewer(tokens, { ttlMs: 10_000 }),
    nodePlugin: config.nodePlugin,
    bindings,
    pods,
    podsSynced: (ns) => pods.hasSyncedNamespace(ns),
    readPod: async (namespace, name) => {
      try {
        return await clients.core.readNamespacedPod({ namespace, name });
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
    // Only the leader polls; the broker follows its published hashes (ADR 0202).
    content: new LeaderFollowingContentResolver(deps.contentDeps, deps.hub),
    freshContent: new FreshContentResolver(deps.contentDeps),
    hub: deps.hub,
    dynamic: deps.dynamic,
    audit: deps.audit,
    metrics: createBrokerMetrics(registry),
    logger: logger.child({ component: 'broker' }),
  });
  const tls = config.tls;
  let managed: { loadTls: () => Promise<BrokerTlsMaterial>; certReloadMs: number } | undefined;
  if (tls.kind === 'secret') {
    const secret = new ManagedTlsSecret({
      core: clients.core,
      namespace: operatorNamespace,
      name: tls.secretName,
      caName: 'secret-binder-broker-ca',
      wanted: { dnsNames: tls.dnsNames, ipAddresses: tls.ipAddresses, validityMs: tls.validitySeconds * 1000 },
      logger: logger.child({ component: 'broker' }),
    });
    let publishedCa: string | undefined;
    managed = {
      certReloadMs: secret.checkIntervalMs,
      loadTls: async () => {
        const material = await secret.ensure();
        if (tls.caOut !== undefined && material.caBundlePem !== publishedCa) {
          await writeCaOut(tls.caOut, material.caBundlePem);
          publishedCa = material.caBundlePem;
        }
        return { cert: material.certPem, key: material.keyPem, caPem: material.caBundlePem };
      },
    };
  }
  return new BrokerServer({
    host: config.host,
    port: config.port,
    tls,
    ...(managed ?? {}),
    broker,
    logger: logger.child({ component: 'broker' }),
  });
}
