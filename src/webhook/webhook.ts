import type { Registry } from 'prom-client';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { Logger } from '../observability/logger.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import { mutate, type BindingLookup } from './mutate.ts';
import { validate } from './validate.ts';
import type { ServingTls } from './webhook-tls.ts';
import { createWebhookMetrics } from './webhook.metrics.ts';
import { WebhookServer } from './webhook.server.ts';

export interface WebhookDeps {
  /** The SecretBinding informer cache (the same one the binding controller reads). */
  readonly bindings: CacheReader<SecretBinding> & { hasSynced(): boolean };
  readonly operatorNamespace: string;
  readonly host: string;
  readonly port: number;
  readonly tls: ServingTls;
  readonly registry: Registry;
  readonly logger: Logger;
}

/** Wires the admission pipelines to the binding cache and the HTTPS server. */
export function buildWebhookServer(deps: WebhookDeps): WebhookServer {
  const lookupBinding: BindingLookup = (namespace, name) => deps.bindings.get(`${namespace}/${name}`);
  return new WebhookServer({
    host: deps.host,
    port: deps.port,
    tls: deps.tls,
    ready: () => deps.bindings.hasSynced(),
    metrics: createWebhookMetrics(deps.registry),
    logger: deps.logger,
    handlers: {
      mutate: (request) => mutate(request, { lookupBinding, operatorNamespace: deps.operatorNamespace }),
      validate: (request) => validate(request, lookupBinding),
    },
  });
}
