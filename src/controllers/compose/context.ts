import type { KubeTransport } from '../../runtime/kube-request.ts';
import type { Registry } from 'prom-client';
import type { ControllerConfig } from '../../config/controller.config.ts';
import type { KubeClients } from '../../kube/kube-clients.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { RuntimeMetrics } from '../../runtime/runtime.metrics.ts';
import type { OperatorInformers } from './informers.ts';

/** What every feature of the operator is composed from: configuration, clients, caches, observers. */
export interface OperatorContext {
  readonly config: ControllerConfig;
  readonly kubeConfig: KubeTransport;
  readonly clients: KubeClients;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly clock: Clock;
  readonly runtimeMetrics: RuntimeMetrics;
  readonly informers: OperatorInformers;
}
