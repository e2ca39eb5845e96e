import { Command } from 'commander';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { matchesLabelSelector } from '../../controllers/binding/label-selector.ts';
import { shortHash } from '../binding-facts.ts';
import { CliError, exitCodes } from '../cli-errors.ts';
import { globalFlags, parseReference, type CliContext } from '../cli-context.ts';
import { ClusterReader, type KubeObject } from '../cluster-reader.ts';

/** The annotation the controller acts on once per value (ADR 0105); kept in step with the reconciler's. */
export const refreshRequestedAnnotation = 'secretbinder.dev/refresh-requested';
/** The pod template annotation `restart` sets, as `kubectl rollout restart` sets its own. */
export const restartedAtAnnotation = 'secretbinder.dev/restarted-at';

const pollMs = 1000;

function seconds(text: string): number {
  const match = /^(\d+)(s|m)?$/.exec(text);
  if (match === null) throw new CliError(`--timeout "${text}" is not a duration (e.g. 90s, 5m)`, exitCodes.usage);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

const bindingName = (reference: string): string => parseReference(reference, ['secretbinding', 'secretbindings', 'sb'], 'secretbinding');

export function refreshCommand(cli: CliContext): Command {
  return new Command('refresh')
    .summary('check a binding\'s secrets at the backend now, and wait until every consumer holds the new content')
    .description(
      'Sets the secretbinder.dev/refresh-requested annotation: the controller checks the binding\'s keys at the backend ' +
        'now instead of at its next interval. Then waits, with a progress line on stderr, until the content hash in ' +
        'status changed and no consumer is stale — or the timeout (exit 6; the content is unchanged when the backend\'s ' +
        'versions did not move).',
    )
    .argument('<binding>', 'secretbinding/NAME in the namespace of -n')
    .option('--timeout <duration>', 'how long to wait (e.g. 90s, 5m)', '2m')
    .option('--no-wait', 'set the annotation and return')
    .action(async (reference: string, options: { timeout: string; wait: boolean }, command: Command) => {
      const flags = globalFlags(command);
      const name = bindingName(reference);
      const timeoutMs = seconds(options.timeout) * 1000;
      const target = await cli.target(flags);
      const reader = new ClusterReader(target.kubeConfig, cli.signal);
      const before = await reader.getBinding(target.namespace, name);
      const requested = cli.now().toISOString();
      await reader.patchBindingAnnotations(target.namespace, name, { [refreshRequestedAnnotation]: requested });
      const was = before.status?.contentHmac;
      if (!options.wait) {
        cli.out(`secretbinding/${name} refresh requested (${requested})\n`);
        return;
      }
      const started = cli.now().getTime();
      let last = '';
      for (;;) {
        const binding = await reader.getBinding(target.namespace, name);
        const hmac = binding.status?.contentHmac;
        const consumers = binding.status?.consumers?.pods ?? 0;
        const stale = binding.status?.consumers?.stale ?? 0;
        const elapsed = Math.round((cli.now().getTime() - started) / 1000);
        const progress = `content ${shortHash(hmac)}${hmac === was ? ' (unchanged)' : ''}, ${String(consumers)} consumer(s), ${String(stale)} stale`;
        if (progress !== last) cli.note(`waiting: ${progress} (${String(elapsed)}s)\n`);
        last = progress;
        if (hmac !== undefined && hmac !== was && stale === 0) {
          cli.out(`secretbinding/${name} refreshed: content ${shortHash(was)} → ${shortHash(hmac)}, ${String(consumers)} consumer(s) current\n`);
          return;
        }
        if (cli.now().getTime() - started >= timeoutMs) {
          const why = hmac === was ? 'the content did not change (the backend\'s versions did not move, or the controller has not checked yet)' : `${String(stale)} consumer(s) still stale`;
          throw new CliError(`secretbinding/${name}: not refreshed within ${options.timeout}: ${why}`, exitCodes.timeout);
        }
        await cli.sleep(pollMs);
      }
    });
}

const restartable = ['Deployment', 'StatefulSet', 'DaemonSet'] as const;

interface WorkloadStatus {
  readonly spec?: { readonly replicas?: number; readonly template?: { readonly metadata?: { readonly labels?: Record<string, string> }; readonly spec?: { readonly serviceAccountName?: string } } };
  readonly status?: { readonly observedGeneration?: number; readonly updatedReplicas?: number; readonly replicas?: number; readonly updatedNumberScheduled?: number; readonly desiredNumberScheduled?: number };
}

function selects(binding: SecretBinding, workload: KubeObject & WorkloadStatus): boolean {
  const template = workload.spec?.template;
  if (!matchesLabelSelector(binding.spec.podSelector, template?.metadata?.labels)) return false;
  const accounts = binding.spec.serviceAccountNames ?? [];
  return accounts.length === 0 || accounts.includes(template?.spec?.serviceAccountName ?? 'default');
}

function rolledOut(kind: (typeof restartable)[number], w: KubeObject & WorkloadStatus): boolean {
  const s = w.status;
  if ((s?.observedGeneration ?? 0) < (w.metadata?.generation ?? 0)) return false;
  if (kind === 'DaemonSet') return (s?.updatedNumberScheduled ?? 0) >= (s?.desiredNumberScheduled ?? 0);
  const want = w.spec?.replicas ?? 1;
  return (s?.updatedReplicas ?? 0) >= want && (s?.replicas ?? 0) <= want;
}

export function restartCommand(cli: CliContext): Command {
  return new Command('restart')
    .summary('roll the workloads that consume a RollingRestart binding now')
    .description(
      'For a binding with rotation strategy RollingRestart: sets secretbinder.dev/restarted-at on the pod template of every ' +
        'Deployment, StatefulSet and DaemonSet of the namespace whose pods it selects (as `kubectl rollout restart` does), ' +
        'then waits until each has rolled out — or the timeout (exit 6).',
    )
    .argument('<binding>', 'secretbinding/NAME in the namespace of -n')
    .option('--timeout <duration>', 'how long to wait (e.g. 90s, 5m)', '5m')
    .option('--no-wait', 'start the rollouts and return')
    .action(async (reference: string, options: { timeout: string; wait: boolean }, command: Command) => {
      const flags = globalFlags(command);
      const name = bindingName(reference);
      const timeoutMs = seconds(options.timeout) * 1000;
      const target = await cli.target(flags);
      const reader = new ClusterReader(target.kubeConfig, cli.signal);
      const binding = await reader.getBinding(target.namespace, name);
      const strategy = binding.spec.rotation?.strategy ?? 'Refresh';
      if (strategy !== 'RollingRestart') {
        throw new CliError(`secretbinding/${name} has rotation strategy ${strategy}: restart is for RollingRestart bindings (use refresh)`, exitCodes.usage);
      }
      const now = cli.now().toISOString();
      const started: { kind: (typeof restartable)[number]; name: string }[] = [];
      for (const kind of restartable) {
        for (const workload of (await reader.listWorkloads(kind, target.namespace)) as (KubeObject & WorkloadStatus)[]) {
          if (!selects(binding, workload)) continue;
          const workloadName = workload.metadata?.name ?? '';
          await reader.patchWorkload(kind, target.namespace, workloadName, { spec: { template: { metadata: { annotations: { [restartedAtAnnotation]: now } } } } });
          started.push({ kind, name: workloadName });
          cli.note(`${kind.toLowerCase()}/${workloadName} restarting\n`);
        }
      }
      if (started.length === 0) {
        cli.out(`secretbinding/${name}: no Deployment, StatefulSet or DaemonSet selected; nothing restarted\n`);
        return;
      }
      const begin = cli.now().getTime();
      const pending = new Set(started.map((s) => `${s.kind}/${s.name}`));
      while (options.wait && pending.size > 0) {
        for (const s of started) {
          if (!pending.has(`${s.kind}/${s.name}`)) continue;
          if (rolledOut(s.kind, (await reader.getWorkload(s.kind, target.namespace, s.name)) as KubeObject & WorkloadStatus)) {
            pending.delete(`${s.kind}/${s.name}`);
            cli.note(`${s.kind.toLowerCase()}/${s.name} rolled out\n`);
          }
        }
        if (pending.size === 0) break;
        if (cli.now().getTime() - begin >= timeoutMs) throw new CliError(`not rolled out within ${options.timeout}: ${[...pending].join(', ')}`, exitCodes.timeout);
        await cli.sleep(pollMs);
      }
      cli.out(started.map((s) => `${s.kind.toLowerCase()}/${s.name} ${options.wait ? 'restarted' : 'restart started'}\n`).join(''));
    });
}
