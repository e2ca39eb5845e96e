import { Command } from 'commander';
import { ClusterReader } from '../cluster-reader.ts';
import { globalFlags, parseReference, type CliContext } from '../cli-context.ts';
import { boundVolumes, shortHash } from '../binding-facts.ts';
import { CliError, exitCodes } from '../cli-errors.ts';
import { contentHashAnnotation } from '../../controllers/rotation/rollout-hash.ts';
import { age, baseFormats, octalMode, outputFormat, renderDocument, renderTable } from '../output.ts';
import { explainPod, type PodExplanation } from './explain.ts';

export function explainCommand(cli: CliContext): Command {
  return new Command('explain')
    .summary('what each container of a pod gets, from where, at which version')
    .description(
      'Per container of the pod: the SecretBindings it mounts, their files (path, mode, format), the backend, key,\n' +
        'property and version each file comes from, whether the pod holds the latest content, when it was last\n' +
        'synced — and, for a container that gets nothing, why (NotListed, Denied, Pending, Failing) with the reason\n' +
        'from the closed list. Never prints a secret value.',
    )
    .argument('<pod>', 'pod/NAME (or NAME) in the namespace of -n')
    .addHelpText('after', '\nExamples:\n  kubectl secretbinder explain pod/web-7d9f -n shop\n  kubectl secretbinder explain pod/web-7d9f -o yaml')
    .action(async (reference: string, _options: unknown, command: Command) => {
      const flags = globalFlags(command);
      const format = outputFormat(flags.output, baseFormats);
      const name = parseReference(reference, ['pod', 'pods', 'po'], 'pod');
      const target = await cli.target(flags);
      const reader = new ClusterReader(target.kubeConfig, cli.signal);
      const pod = await reader.getPod(target.namespace, name);
      // The bindings the pod's volumes name, one GET each: explain stays fast however many bindings
      // the namespace holds. All of them only when a RollingRestart pod's hash needs the others.
      const named = await Promise.all(
        [...new Set(boundVolumes(pod).map((v) => v.binding))].map((b) =>
          reader.getBinding(target.namespace, b).catch((error: unknown) => {
            if (error instanceof CliError && error.exitCode === exitCodes.notFound) return undefined;
            throw error;
          }),
        ),
      );
      const found = named.filter((b) => b !== undefined);
      const rolling = pod.metadata?.annotations?.[contentHashAnnotation] !== undefined && found.some((b) => b.spec.rotation?.strategy === 'RollingRestart');
      const bindings = rolling ? await reader.listBindings(target.namespace) : found;
      const explanation = explainPod(pod, bindings);
      cli.out(format === 'table' ? explainTable(explanation, cli.now()) : renderDocument(explanation, format));
    });
}

function explainTable(e: PodExplanation, now: Date): string {
  const header = `Pod ${e.pod.namespace}/${e.pod.name} on node ${e.pod.node} (${e.pod.phase}, service account ${e.pod.serviceAccount})\n\n`;
  const rows = e.containers.flatMap((c) =>
    c.nothing !== undefined
      ? [[c.name, c.kind, '-', c.nothing.state, '-', '-', '-', '-', '-', c.nothing.message]]
      : c.bindings.map((b) => [
          c.name,
          c.kind,
          b.binding,
          b.state,
          b.reason ?? b.warning?.reason ?? '-',
          b.backend === undefined ? '-' : `${b.backend.kind}/${b.backend.name}`,
          shortHash(b.latestContentHmac),
          b.delivered,
          age(b.lastSyncTime, now),
          b.message ?? b.warning?.message ?? `${String(b.files.length)} file(s) at ${b.mountPath}`,
        ]),
  );
  const containers = renderTable(['container', 'type', 'binding', 'state', 'reason', 'backend', 'latest', 'delivered', 'synced', 'detail'], rows);
  const fileRows = e.containers.flatMap((c) =>
    c.bindings.flatMap((b) =>
      b.files.flatMap((f) =>
        f.sources.length === 0
          ? [[c.name, f.fullPath, octalMode(f.mode), f.format, '-', '-', '-', '-']]
          : f.sources.map((s) => [
              c.name,
              `${s.name === undefined ? f.fullPath : `${f.fullPath}[${s.name}]`}${s.role === undefined ? '' : ` (${s.role}${s.served === true ? ', served' : ''})`}`,
              octalMode(f.mode),
              f.format,
              s.backend === undefined ? s.key : `${s.backend}:${s.key}`,
              s.property ?? '-',
              s.requested,
              s.resolvedVersions.length === 0 ? '-' : s.resolvedVersions.join(','),
            ]),
      ),
    ),
  );
  const files = fileRows.length === 0 ? '' : `\n${renderTable(['container', 'file', 'mode', 'format', 'key', 'property', 'requested', 'version'], fileRows)}`;
  return header + containers + files;
}
