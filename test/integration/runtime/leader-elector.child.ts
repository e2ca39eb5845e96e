/**
 * One leader-election candidate as its own process, for leader-election.test.ts.
 * Usage: node leader-elector.child.ts <kubeconfig> <namespace> <lease> <name>
 * Prints one JSON line per event on stdout (`campaigning`, `started`, `stopped`, `exit`);
 * SIGTERM stops it gracefully (releasing the lease if it leads).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeLeaseStore } from '../../../src/runtime/kube-lease-store.ts';
import { LeaderElector, leaderIdentity } from '../../../src/runtime/leader-election.ts';
import type { LogFields, RuntimeLogger } from '../../../src/runtime/logger.ts';

const [kubeconfigPath, namespace, lease, name] = process.argv.slice(2);
if (kubeconfigPath === undefined || namespace === undefined || lease === undefined || name === undefined) {
  process.stderr.write('usage: leader-elector.child.ts <kubeconfig> <namespace> <lease> <name>\n');
  process.exit(2);
}

const identity = leaderIdentity(name);
const emit = (event: string, extra: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ event, identity, at: Date.now(), ...extra })}\n`);
};
const line = (level: string) => (message: string, fields?: LogFields) => {
  process.stderr.write(`${new Date().toISOString()} ${level} ${message} ${JSON.stringify(fields ?? {})}\n`);
};
const logger: RuntimeLogger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };

const kubeConfig = new KubeConfig();
kubeConfig.loadFromFile(kubeconfigPath);
const stop = new AbortController();
process.once('SIGTERM', () => {
  stop.abort();
});

const elector = new LeaderElector({
  store: new KubeLeaseStore(kubeConfig, { namespace, name: lease }),
  identity,
  // Sized so a successor takes over well within 15 s of a crash: ≤ 6 s + one retry period.
  leaseDurationMs: 6_000,
  renewDeadlineMs: 4_000,
  retryPeriodMs: 1_000,
  logger,
  callbacks: {
    onStartedLeading: () => {
      emit('started');
    },
    onStoppedLeading: () => {
      emit('stopped');
    },
  },
});
emit('campaigning');
const end = await elector.run(stop.signal);
emit('exit', { end });
