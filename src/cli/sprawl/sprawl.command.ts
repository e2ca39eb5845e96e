import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { CliError, exitCodes } from '../cli-errors.ts';
import { globalFlags, type CliContext } from '../cli-context.ts';
import { ClusterReader } from '../cluster-reader.ts';
import { outputFormat, renderDocument, renderTable } from '../output.ts';
import { toSarif } from './sarif.ts';
import { loadClusterObjects, loadManifestFiles } from './sprawl-sources.ts';
import { atLeast, severities, sprawlRules, type Severity } from './sprawl-rules.ts';
import { scan, type Finding } from './sprawl.ts';

interface SprawlOptions {
  readonly filename?: string[];
  readonly failOn?: Severity;
}

export function auditCommand(cli: CliContext, toolVersion: string): Command {
  const sprawl = new Command('sprawl')
    .summary('find secrets that live outside secret-binder, in the cluster or in manifest files')
    .description(
      'Scans Pods and their owners (Deployments, StatefulSets, DaemonSets, Jobs, CronJobs) in the cluster, or manifest ' +
        'files with -f (plain YAML/JSON, `helm template` output; a directory is read recursively; - reads stdin), for: ' +
        'env values in known secret formats or random-looking, env names like *_PASSWORD/*_TOKEN/*_SECRET/*_KEY set to ' +
        'literals, secretKeyRef and envFrom.secretRef, Secret volumes, Secret manifests with data, and Secrets nothing ' +
        'references (cluster: metadata only). Each finding has a severity, its location, its rule and a suggested ' +
        'SecretBinding (-o yaml/json/sarif). Values are never printed, not even masked.\n\nRules:\n' +
        sprawlRules.map((r) => `  ${r.id} ${r.name} (${r.severity}): ${r.summary}`).join('\n'),
    )
    .option('-f, --filename <path...>', 'manifest files or directories to scan instead of the cluster (- for stdin)')
    .addOption(new Option('--fail-on <severity>', 'exit 5 when a finding is at or above this severity (CI gates)').choices(severities))
    .addHelpText(
      'after',
      '\nExamples:\n  kubectl secretbinder audit sprawl -A\n  helm template ./chart | kubectl secretbinder audit sprawl -f - --fail-on high\n' +
        '  kubectl secretbinder audit sprawl -f deploy/ -o sarif > sprawl.sarif',
    )
    .action(async (options: SprawlOptions, command: Command) => {
      const flags = globalFlags(command);
      const format = outputFormat(flags.output, ['table', 'json', 'yaml', 'sarif'] as const);
      let findings: Finding[];
      if (options.filename !== undefined) {
        const inputs = loadManifestFiles(options.filename, process.cwd(), () => readFileSync(0, 'utf8'));
        findings = scan(inputs, { secretsRead: true });
      } else {
        const target = await cli.target(flags);
        const reader = new ClusterReader(target.kubeConfig, cli.signal);
        const objects = await loadClusterObjects(reader, target.allNamespaces ? undefined : target.namespace, cli.note);
        findings = scan(objects.inputs, { secretsRead: objects.secretsRead, externalReferences: objects.externalReferences });
      }
      findings.sort((a, b) => severities.indexOf(a.severity) - severities.indexOf(b.severity) || locationText(a).localeCompare(locationText(b)));
      if (format === 'sarif') cli.out(`${JSON.stringify(toSarif(findings, toolVersion), null, 2)}\n`);
      else if (format === 'table') cli.out(findingsTable(findings));
      else cli.out(renderDocument({ findings, summary: summary(findings) }, format));
      if (options.failOn !== undefined) {
        const threshold = options.failOn;
        const failing = findings.filter((f) => atLeast(f.severity, threshold)).length;
        if (failing > 0) throw new CliError(`${String(failing)} finding(s) at or above ${threshold}`, exitCodes.checkFailed);
      }
    });
  return new Command('audit').summary('security audits (sprawl)').description('Security audits of the cluster or of manifest files.').addCommand(sprawl);
}

function locationText(f: Finding): string {
  const l = f.location;
  return `${l.file ?? ''}:${String(l.line ?? 0).padStart(6, '0')} ${l.kind}/${l.namespace}/${l.name} ${l.fieldPath}`;
}

function summary(findings: readonly Finding[]): Record<Severity, number> {
  return { high: findings.filter((f) => f.severity === 'high').length, medium: findings.filter((f) => f.severity === 'medium').length, low: findings.filter((f) => f.severity === 'low').length };
}

function findingsTable(findings: readonly Finding[]): string {
  if (findings.length === 0) return 'No findings.\n';
  const rows = findings.map((f) => [
    f.severity.toUpperCase(),
    f.rule,
    `${f.location.kind}/${f.location.name}`,
    f.location.namespace,
    f.location.container ?? '-',
    f.location.file === undefined ? f.location.fieldPath : `${f.location.file}:${String(f.location.line ?? '?')}`,
    f.message,
  ]);
  const s = summary(findings);
  return `${renderTable(['severity', 'rule', 'object', 'namespace', 'container', 'where', 'finding'], rows)}\n${String(findings.length)} finding(s): ${String(s.high)} high, ${String(s.medium)} medium, ${String(s.low)} low. Suggested SecretBindings: -o yaml.\n`;
}
