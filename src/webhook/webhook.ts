import { AdmissionregistrationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { describeKubeError } from '../kube/kube-errors.ts';
import type { Logger } from '../observability/logger.ts';
import { sleep, type Clock } from '../runtime/clock.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import type { Runnable } from '../runtime/runnable.ts';
import { caBundleReconciler } from './ca-bundle.reconciler.ts';
import type { WebhookConfig } from './webhook.config.ts';
import { mutate, type BindingLookup } from './mutate.ts';
import { validate } from './validate.ts';
import { generateServingTls, readServingTls, type ServingTls } from './webhook-tls.ts';
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

export interface WebhookRunnableDeps {
  readonly config: Extract<WebhookConfig, { enabled: true }>;
  readonly bindings: WebhookDeps['bindings'];
  readonly operatorNamespace: string;
  readonly kubeConfig: KubeConfig;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock: Clock;
}

const tlsReloadMs = 60_000;
const caBundleIntervalMs = 300_000;

/**
 * The webhook as one runnable of the manager (every replica, not leader-elected): at start it
 * loads its certificate (files, re-read every minute to follow rotation, or self-managed), serves,
 * and keeps the webhook configurations' caBundle holding its CA when it knows the CA (ADR 0093).
 */
export function webhookRunnable(deps: WebhookRunnableDeps): Runnable {
  const { config, logger } = deps;
  return {
    name: 'webhook',
    needLeaderElection: false,
    start: async (signal) => {
      const loadTls = (): Promise<ServingTls> =>
        config.tls.kind === 'files' ? readServingTls(config.tls) : generateServingTls({ dnsNames: config.tls.dnsNames, ipAddresses: config.tls.ipAddresses });
      let tls = await loadTls();
      const server = buildWebhookServer({ ...deps, host: config.host, port: config.port, tls });
      const tasks: Promise<void>[] = [server.start(signal)];
      if (tls.caPem !== undefined) {
        const reconciler = caBundleReconciler({
          api: deps.kubeConfig.makeApiClient(AdmissionregistrationV1Api),
          names: config.configurationNames,
          caPem: tls.caPem,
          clock: deps.clock,
          logger,
          intervalMs: caBundleIntervalMs,
        });
        tasks.push(reconciler.start(signal));
      }
      if (config.tls.kind === 'files') {
        const files = config.tls;
        tasks.push(
          (async () => {
            while (await sleep(deps.clock, tlsReloadMs, signal)) {
              try {
                const next = await readServingTls(files);
                if (next.certPem === tls.certPem && next.keyPem === tls.keyPem) continue;
                server.setTls(next);
                tls = next;
                logger.info('webhook serving certificate reloaded');
              } catch (error) {
                // A half-written rotation: keep serving the old pair and try again next round.
                logger.warn('webhook certificate reload failed', { error: describeKubeError(error).message });
              }
            }
          })(),
        );
      }
      await Promise.all(tasks);
    },
  };
}
