import { Command, Option } from 'commander';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { CliError, exitCodes } from '../cli-errors.ts';
import { globalFlags, parseReference, type CliContext } from '../cli-context.ts';
import { shortHash } from '../binding-facts.ts';
import { ClusterReader } from '../cluster-reader.ts';
import { outputFormat, renderDocument, renderTable } from '../output.ts';
import { behind, consumersOf, readsKey, toDot, type Consumer } from './who-uses.ts';

interface WhoUsesOptions {
  readonly backend?: string;
  readonly backendKind?: 'SecretBackend' | 'ClusterSecretBackend';
  readonly key?: string;
  readonly stale?: boolean;
  readonly watch?: boolean;
}

/** How often `--watch` re-reads pods and bindings. */
const watchIntervalMs = 2000;

export function whoUsesCommand(cli: CliContext): Command {
  return new Command('who-uses')
    .summary('every pod, container and node consuming a binding or a backend key, with the version each holds')
    .description(
      'Lists the containers that receive a SecretBinding\'s files — or the files of any binding reading one backend key — ' +
        'with their pod, node and workload, and whether each holds the latest content (current, stale, or unknown while ' +
        'the binding counts stale consumers). -o dot draws backend → key → binding → pod → container for Graphviz.',
    )
    .argument('[binding]', 'secretbinding/NAME in the namespace of -n')
    .option('--backend <name>', 'with --key: the backend the key is read from')
    .addOption(new Option('--backend-kind <kind>', 'with --backend: only this kind of backend').choices(['SecretBackend', 'ClusterSecretBackend']))
    .option('--key <path>', 'with --backend: the backend key (as in the bindings\' files), in -n or every namespace with -A')
    .option('--stale', 'only consumers not known to hold the latest content')
    .option('--watch', 'keep the table live: print it again whenever consumers come, go or change version (Ctrl-C stops)')
    .addHelpText(
      'after',
      '\nExamples:\n  kubectl secretbinder who-uses secretbinding/db -n shop\n  kubectl secretbinder who-uses --backend vault --key apps/shop/db -A --stale\n' +
        '  kubectl secretbinder who-uses secretbinding/db -o dot | dot -Tsvg > db.svg',
    )
    .action(async (reference: string | undefined, options: WhoUsesOptions, command: Command) => {
      const flags = globalFlags(command);
      const format = outputFormat(flags.output, ['table', 'json', 'yaml', 'dot'] as const);
      const byKey = options.backend !== undefined || options.key !== undefined;
      if (reference !== undefined && byKey) throw new CliError('give either secretbinding/NAME or --backend with --key, not both', exitCodes.usage);
      if (reference === undefined && (options.backend === undefined || options.key === undefined)) {
        throw new CliError('give secretbinding/NAME, or --backend NAME and --key PATH', exitCodes.usage);
      }
      if (options.watch === true && format !== 'table') throw new CliError('--watch prints tables only', exitCodes.usage);
      const target = await cli.target(flags);
      const reader = new ClusterReader(target.kubeConfig, cli.signal);
      const scope = reference === undefined && target.allNamespaces ? undefined : target.namespace;

      const snapshot = async (): Promise<{ bindings: SecretBinding[]; consumers: Consumer[] }> => {
        const all = await reader.listBindings(scope);
        let selected: SecretBinding[];
        if (reference !== undefined) {
          const name = parseReference(reference, ['secretbinding', 'secretbindings', 'sb'], 'secretbinding');
          const binding = all.find((b) => b.metadata.name === name) ?? (await reader.getBinding(target.namespace, name));
          selected = [binding];
        } else {
          selected = all.filter((b) => readsKey(b, options.backend ?? '', options.key ?? '', options.backendKind));
        }
        const pods = selected.length === 0 ? [] : await reader.listPods(scope);
        const consumers = consumersOf(selected, pods, all);
        return { bindings: selected, consumers: options.stale === true ? behind(consumers) : consumers };
      };

      if (options.watch !== true) {
        const { bindings, consumers } = await snapshot();
        if (format === 'dot') cli.out(toDot(consumers, bindings));
        else if (format === 'table') cli.out(consumers.length === 0 ? noConsumers(options) : consumerTable(consumers));
        else cli.out(renderDocument({ consumers }, format));
        return;
      }
      let last = '';
      const stopped = (): boolean => cli.signal.aborted;
      while (!stopped()) {
        let consumers: Consumer[];
        try {
          ({ consumers } = await snapshot());
        } catch (error) {
          // Ctrl-C during a read ends the watch as it does between reads: done, exit 0.
          if (stopped()) break;
          throw error;
        }
        const table = consumers.length === 0 ? noConsumers(options) : consumerTable(consumers);
        if (table !== last) cli.out(`${last === '' ? '' : '\n'}# ${cli.now().toISOString()}\n${table}`);
        last = table;
        await cli.sleep(watchIntervalMs).catch(() => undefined);
      }
    });
}

function noConsumers(options: WhoUsesOptions): string {
  return options.stale === true ? 'No stale consumers.\n' : 'No consumers.\n';
}

function consumerTable(consumers: readonly Consumer[]): string {
  return renderTable(
    ['namespace', 'binding', 'pod', 'container', 'node', 'workload', 'delivered', 'latest'],
    consumers.map((c) => [c.namespace, c.binding, c.pod, c.container, c.node, c.workload, c.delivered, shortHash(c.latestContentHmac)]),
  );
}
