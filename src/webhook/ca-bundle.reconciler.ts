import type { V1MutatingWebhookConfiguration, V1ValidatingWebhookConfiguration } from '@kubernetes/client-node';
import type { AdmissionApi } from '../kube/kube-clients.ts';
import { describeKubeError, isNotFound } from '../kube/kube-errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Runnable } from '../runtime/runnable.ts';
import { desiredCaBundle, sharedCaBundle } from './webhook-tls.ts';

/**
 * How our CA enters `caBundle`: `union` (each replica its own self-managed CA, ADR 0093) or
 * `shared` (one controller-managed trust bundle for every replica, ADR 0155).
 */
export type CaBundleMode = 'union' | 'shared';

export interface WebhookConfigurationNames {
  readonly mutating: string;
  readonly validating: string;
}

type Configuration = V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration;

/**
 * Returns the configuration with every webhook's `clientConfig.caBundle` holding our CA (see
 * {@link desiredCaBundle}), or undefined when nothing needs to change. Pure.
 */
export function withCaBundle<T extends Configuration>(config: T, caPem: string, now: Date, mode: CaBundleMode = 'union'): T | undefined {
  const next = structuredClone(config);
  let changed = false;
  for (const w of next.webhooks ?? []) {
    const current = Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8');
    const bundle = mode === 'shared' ? sharedCaBundle(current, caPem, now) : desiredCaBundle(current, caPem, now);
    if (bundle === undefined) continue;
    changed = true;
    w.clientConfig.caBundle = Buffer.from(bundle).toString('base64');
  }
  return changed ? next : undefined;
}

/**
 * Brings both webhook configurations' caBundle up to date (read, then replace with the read
 * resourceVersion: a concurrent writer makes us retry on the next round). Returns the names of the
 * configurations written. A missing configuration is not an error (the webhook is optional).
 */
export async function syncCaBundles(api: AdmissionApi, names: WebhookConfigurationNames, caPem: string, now: Date, mode: CaBundleMode = 'union'): Promise<string[]> {
  const written: string[] = [];
  const mutating = await readOrUndefined(() => api.readMutatingWebhookConfiguration({ name: names.mutating }));
  const nextMutating = mutating === undefined ? undefined : withCaBundle(mutating, caPem, now, mode);
  if (nextMutating !== undefined) {
    await api.replaceMutatingWebhookConfiguration({ name: names.mutating, body: nextMutating });
    written.push(`mutatingwebhookconfiguration/${names.mutating}`);
  }
  const validating = await readOrUndefined(() => api.readValidatingWebhookConfiguration({ name: names.validating }));
  const nextValidating = validating === undefined ? undefined : withCaBundle(validating, caPem, now, mode);
  if (nextValidating !== undefined) {
    await api.replaceValidatingWebhookConfiguration({ name: names.validating, body: nextValidating });
    written.push(`validatingwebhookconfiguration/${names.validating}`);
  }
  return written;
}

async function readOrUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export interface CaBundleReconcilerOptions {
  readonly api: AdmissionApi;
  readonly names: WebhookConfigurationNames;
  readonly caPem: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How often to check again (someone may reset the bundle, e.g. a Helm upgrade). */
  readonly intervalMs: number;
}

/**
 * Keeps the webhook configurations' caBundle holding our CA. Runs on every replica: each one
 * serves with its own certificate, and the bundle is a union (ADR 0093).
 */
export function caBundleReconciler(options: CaBundleReconcilerOptions): Runnable {
  return {
    name: 'webhook-ca-bundle',
    needLeaderElection: false,
    start: async (signal) => {
      while (!signal.aborted) {
        try {
          const written = await syncCaBundles(options.api, options.names, options.caPem, options.clock.wallNow());
          for (const name of written) options.logger.info('webhook caBundle updated', { configuration: name });
        } catch (error) {
          // Conflicts and outages are retried on the next round; admission keeps working meanwhile
          // with whatever bundle is published.
          options.logger.warn('webhook caBundle sync failed', { error: describeKubeError(error).message });
        }
        await new Promise<void>((resolve) => {
          const timer = options.clock.setTimeout(resolve, options.intervalMs);
          signal.addEventListener('abort', () => { options.clock.clearTimeout(timer); resolve(); }, { once: true });
        });
      }
    },
  };
}
