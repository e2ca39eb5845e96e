import { readFileSync } from 'node:fs';
import type { AdmissionApi, CoreApi } from '../kube/kube-clients.ts';
import type { AgentConfig } from '../config/controller.config.ts';
import type { AgentSettings } from './agent-injection.ts';
import type { Registry } from 'prom-client';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { describeKubeError } from '../kube/kube-errors.ts';
import type { Logger } from '../observability/logger.ts';
import { sleep, type Clock } from '../runtime/clock.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import type { Runnable } from '../runtime/runnable.ts';
import { ManagedTlsSecret } from '../tls/managed-tls.ts';
import { caBundleReconciler, syncCaBundles } from './ca-bundle.reconciler.ts';
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
  /** Agent mode (ADR 0250); CSI only when absent. */
  readonly agent?: AgentConfig;
}

/**
 * The agent settings of one admission: the broker CA bundle is read from its file at most every
 * 10 s (a renewed CA reaches pods admitted after it); unreadable means the pod is injected without
 * one and the agent's error names the broker's certificate.
 */
function agentSettings(config: AgentConfig | undefined, logger: Logger): (() => AgentSettings) | undefined {
  const injection = config?.injection;
  if (injection === undefined) return undefined;
  let ca: { readonly at: number; readonly pem: string | undefined } | undefined;
  return () => {
    const file = injection.brokerCaFile;
    if (file !== undefined && (ca === undefined || Date.now() - ca.at > 10_000)) {
      let pem: string | undefined;
      try {
        pem = readFileSync(file, 'utf8');
      } catch (error) {
        logger.warn('agent broker CA file unreadable; keeping the last one', { error: error instanceof Error ? error.message : String(error) });
        pem = ca?.pem;
      }
      ca = { at: Date.now(), pem };
    }
    const { brokerCaFile: _file, ...rest } = injection;
    return { ...rest, brokerCaPem: ca?.pem };
  };
}

/** Wires the admission pipelines to the binding cache and the HTTPS server. */
export function buildWebhookServer(deps: WebhookDeps): WebhookServer {
  const lookupBinding: BindingLookup = (namespace, name) => deps.bindings.get(`${namespace}/${name}`);
  const agent = agentSettings(deps.agent, deps.logger);
  const defaultMode = deps.agent?.defaultMode ?? 'csi';
  return new WebhookServer({
    host: deps.host,
    port: deps.port,
    tls: deps.tls,
    ready: () => deps.bindings.hasSynced(),
    metrics: createWebhookMetrics(deps.registry),
    logger: deps.logger,
    handlers: {
      mutate: (request) => mutate(request, { lookupBinding, operatorNamespace: deps.operatorNamespace, defaultMode, ...(agent === undefined ? {} : { agent: agent() }) }),
      validate: (request) => validate(request, lookupBinding),
    },
  });
}

export interface WebhookRunnableDeps {
  readonly config: Extract<WebhookConfig, { enabled: true }>;
  readonly bindings: WebhookDeps['bindings'];
  readonly operatorNamespace: string;
  /** Keeps the webhook configurations' caBundle. */
  readonly admission: AdmissionApi;
  /** Reads and writes the managed certificate's Secret (secret mode only). */
  readonly core: CoreApi;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly agent?: AgentConfig;
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
  const tlsConfig = config.tls;
  if (tlsConfig.kind === 'secret') return managedWebhookRunnable(deps, tlsConfig);
  return {
    name: 'webhook',
    needLeaderElection: false,
    start: async (signal) => {
      const loadTls = (): Promise<ServingTls> =>
        tlsConfig.kind === 'files' ? readServingTls(tlsConfig) : generateServingTls({ dnsNames: tlsConfig.dnsNames, ipAddresses: tlsConfig.ipAddresses });
      let tls = await loadTls();
      const server = buildWebhookServer({ ...deps, host: config.host, port: config.port, tls });
      const tasks: Promise<void>[] = [server.start(signal)];
      if (tls.caPem !== undefined) {
        const reconciler = caBundleReconciler({
          api: deps.admission,
          names: config.configurationNames,
          caPem: tls.caPem,
          clock: deps.clock,
          logger,
          intervalMs: caBundleIntervalMs,
        });
        tasks.push(reconciler.start(signal));
      }
      if (tlsConfig.kind === 'files') {
        const files = tlsConfig;
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

type SecretTls = Extract<Extract<WebhookConfig, { enabled: true }>['tls'], { kind: 'secret' }>;

/**
 * Secret mode (ADR 0155): every replica serves the certificate kept in one Secret, which any of
 * them creates and renews (stage a new CA, then promote its certificate). Each round the Secret is
 * checked; a renewed pair is swapped into the running server (no restart), and the webhook
 * configurations' caBundle is led by the Secret's trust bundle whenever it changes (and every five
 * minutes, should an apply have reset it).
 */
function managedWebhookRunnable(deps: WebhookRunnableDeps, tls: SecretTls): Runnable {
  const { config, logger, clock } = deps;
  const managed = new ManagedTlsSecret({
    core: deps.core,
    namespace: deps.operatorNamespace,
    name: tls.secretName,
    caName: 'secret-binder-webhook-ca',
    wanted: { dnsNames: tls.dnsNames, ipAddresses: tls.ipAddresses, validityMs: tls.validitySeconds * 1000 },
    logger,
  });
  const admission = deps.admission;
  return {
    name: 'webhook',
    needLeaderElection: false,
    start: async (signal) => {
      let material;
      for (;;) {
        try {
          material = await managed.ensure();
          break;
        } catch (error) {
          // An outage or RBAC not applied yet: wait for it rather than crash-loop.
          logger.warn('webhook certificate not available yet; retrying', { error: describeKubeError(error).message });
          if (!(await sleep(clock, 3000, signal))) return;
        }
      }
      const server = buildWebhookServer({ ...deps, host: config.host, port: config.port, tls: { certPem: material.certPem, keyPem: material.keyPem, caPem: material.caBundlePem } });
      const serving = server.start(signal);
      let syncedBundle: string | undefined;
      let syncedAt = 0;
      do {
        try {
          const next = await managed.ensure();
          if (next.certPem !== material.certPem || next.keyPem !== material.keyPem) {
            server.setTls({ certPem: next.certPem, keyPem: next.keyPem, caPem: next.caBundlePem });
            logger.info('webhook serving certificate reloaded');
          }
          material = next;
          if (next.caBundlePem !== syncedBundle || clock.now() - syncedAt >= caBundleIntervalMs) {
            const written = await syncCaBundles(admission, config.configurationNames, next.caBundlePem, clock.wallNow(), 'shared');
            for (const name of written) logger.info('webhook caBundle updated', { configuration: name });
            syncedBundle = next.caBundlePem;
            syncedAt = clock.now();
          }
        } catch (error) {
          // A conflict or an outage: the next round tries again; the server keeps its current pair.
          logger.warn('webhook certificate or caBundle sync failed', { error: describeKubeError(error).message });
        }
      } while (await sleep(clock, managed.checkIntervalMs, signal));
      await serving;
    },
  };
}
