import { agentPodEvents } from './agent/agent-pod-events.ts';
import type { KubeTransport } from '../runtime/kube-request.ts';
import type { Registry } from 'prom-client';
import { reasons, resources } from '../api/v1alpha1/index.ts';
import type { ControllerConfig } from '../config/controller.config.ts';
import type { BrokerServer } from '../broker/broker.server.ts';
import type { KubeClients } from '../kube/kube-clients.ts';
import type { AuditLog } from '../observability/audit.ts';
import type { Logger } from '../observability/logger.ts';
import type { SecretValue } from '../observability/secret-value.ts';
import { realClock, type Clock } from '../runtime/clock.ts';
import type { HealthServer } from '../runtime/health-server.ts';
import type { Manager } from '../runtime/manager.ts';
import { RuntimeMetrics } from '../runtime/runtime.metrics.ts';
import { webhookRunnable } from '../webhook/webhook.ts';
import { composeBackend } from './compose/backend.ts';
import { composeBinding } from './compose/binding.ts';
import { composeBroker } from './compose/broker.ts';
import { syncChangeHub } from './compose/change-hub.ts';
import { composeChangeNotices, type NoticeSourceHandle } from './compose/change-notices.ts';
import { composeContent, resolverSweeper } from './compose/content.ts';
import type { OperatorContext } from './compose/context.ts';
import { createInformers, informerList } from './compose/informers.ts';
import { composeManager } from './compose/manager.ts';
import { composeRotation } from './compose/rotation.ts';
import { createStatusPublisher } from './compose/status-publisher.ts';

export interface OperatorDeps {
  readonly config: ControllerConfig;
  readonly kubeConfig: KubeTransport;
  readonly clients: KubeClients;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Key of content HMACs (status) and of versions of unversioned stores. */
  readonly contentKey: SecretValue;
  /** The audit channel: deliveries and refusals of the broker, minted service-account tokens. */
  readonly audit: AuditLog;
  readonly clock?: Clock;
}

export interface Operator {
  readonly manager: Manager;
  readonly health: HealthServer;
  /** The broker's HTTPS server, when enabled (runs on every replica). */
  readonly broker: BrokerServer | undefined;
  /** The change-notice sources the configuration enables (ADR 0220); empty when polling alone. */
  readonly noticeSources: readonly NoticeSourceHandle[];
  /** Releases backend clients after the manager stopped. */
  close(): Promise<void>;
}

/**
 * The composition of the controller: informers (never Secrets or ConfigMaps; pods only in
 * namespaces that have bindings), the backend, binding and rotation controllers (leader only), the
 * resolver with its backend pool and sweeper, the broker and the webhook (every replica), and the
 * health server. Wiring only; behaviour lives in the reconcilers.
 */
export function buildOperator(deps: OperatorDeps): Operator {
  const { config, kubeConfig, logger, registry } = deps;
  const runtimeMetrics = new RuntimeMetrics(registry, {
    controllers: ['backend', 'binding', 'rotation'],
    resources: [resources.ClusterSecretBackend.plural, resources.SecretBackend.plural, resources.SecretBinding.plural, 'namespaces', 'pods'],
    errorReasons: reasons,
  });
  const informers = createInformers({ config, kubeConfig, logger, observer: runtimeMetrics });
  const ctx: OperatorContext = { config, kubeConfig, clients: deps.clients, logger, registry, clock: deps.clock ?? realClock, runtimeMetrics, informers };
  const content = composeContent(ctx, deps.contentKey, deps.audit);
  const publisher = createStatusPublisher(ctx);

  // Handlers run in the order they are added: on bindings and pods, rotation, then the change
  // hub, then the binding controller (then the broker's token cache, on pods).
  const rotationController = composeRotation(ctx, publisher);
  syncChangeHub(informers, content.hub);
  const binding = composeBinding(ctx, { content: content.content, publisher, hub: content.hub, resolver: content.resolver, leases: content.leases });
  const backendController = composeBackend(ctx, { pool: content.pool, publisher, enqueueBindingsOf: binding.enqueueBindingsOf });

  const { manager, health } = composeManager(ctx);
  for (const informer of informerList(informers)) manager.addInformer(informer);
  manager.add(backendController);
  manager.add(binding.controller);
  manager.add(binding.poller);
  manager.add(rotationController);
  manager.add(resolverSweeper(content.resolver, ctx.clock));
  const notices = composeChangeNotices(ctx, {
    pool: content.pool,
    resolver: content.resolver,
    enqueueBinding: (key) => { binding.controller.enqueue(key); },
    contextFor: content.contextFor,
  });
  for (const runnable of notices.runnables) manager.add(runnable);
  const broker = config.broker.enabled ? composeBroker(ctx, config.broker, { contentDeps: content.contentDeps, hub: content.hub, dynamic: content.leases, audit: deps.audit }) : undefined;
  if (broker !== undefined) manager.add(broker);
  // The agent cannot write Events; the leader turns a failed agent's termination message into one.
  if (config.agent.injection !== undefined) manager.add(agentPodEvents({ pods: informers.pods, events: publisher.events }));
  if (config.webhook.enabled) {
    manager.add(
      webhookRunnable({ config: config.webhook, bindings: informers.bindings, operatorNamespace: config.operatorNamespace, admission: deps.clients.admission, core: deps.clients.core, registry, logger: logger.child({ component: 'webhook' }), clock: ctx.clock, agent: config.agent }),
    );
  }

  return { manager, health, broker, noticeSources: notices.sources, close: content.close };
}
