import { HealthServer } from '../../runtime/health-server.ts';
import { KubeLeaseStore } from '../../runtime/kube-lease-store.ts';
import { Manager } from '../../runtime/manager.ts';
import type { OperatorContext } from './context.ts';

/** The health server and the manager, with leader election on a Lease when enabled. */
export function composeManager({ config, kubeConfig, registry, logger, runtimeMetrics }: OperatorContext): { readonly manager: Manager; readonly health: HealthServer } {
  const health = new HealthServer({ host: config.http.host, port: config.http.port, registry, logger: logger.child({ component: 'health' }) });
  const manager = new Manager({
    health,
    logger: logger.child({ component: 'manager' }),
    observer: runtimeMetrics,
    ...(config.leaderElection.enabled
      ? {
          leaderElection: {
            store: new KubeLeaseStore(kubeConfig, { namespace: config.operatorNamespace, name: config.leaderElection.leaseName }),
            identity: config.identity,
            leaseDurationMs: config.leaderElection.leaseDurationSeconds * 1000,
            renewDeadlineMs: config.leaderElection.renewDeadlineSeconds * 1000,
            retryPeriodMs: config.leaderElection.retryPeriodSeconds * 1000,
          },
        }
      : {}),
  });
  return { manager, health };
}
