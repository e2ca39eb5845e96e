import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { V1PodSpec } from '@kubernetes/client-node';
import { parseAllDocuments, parse } from 'yaml';
import type { SecretBinding } from '../../api/v1alpha1/index.ts';
import { CliError, exitCodes } from '../cli-errors.ts';
import { globalFlags, type CliContext } from '../cli-context.ts';
import { baseFormats, octalMode, outputFormat, renderDocument } from '../output.ts';
import { bindingValidator, loadBindingSchema, type BindingValidator } from './binding-validation.ts';
import { podRefusal, renderBinding, type PodShape, type RenderedBinding, type SampleValues } from './render.ts';

interface RenderOptions {
  readonly filename: string;
  readonly pod?: string;
  readonly values?: string;
}

/** The CRD next to the code: `crds/` at the repository root, and in the image at /app/crds. */
const bindingCrd = fileURLToPath(new URL('../../../crds/secretbinder.dev_secretbindings.yaml', import.meta.url));

function readText(path: string): string {
  try {
    return path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
  } catch {
    throw new CliError(`${path}: cannot read the file`, exitCodes.usage);
  }
}

function documents(path: string): unknown[] {
  // kubectl reads YAML 1.1 (0440 is octal); so do we.
  const docs = parseAllDocuments(readText(path), { version: '1.1' });
  const error = docs.flatMap((d) => d.errors)[0];
  if (error !== undefined) throw new CliError(`${path}: invalid YAML: ${error.message.split('\n')[0] ?? ''}`, exitCodes.usage);
  return docs.map((d) => d.toJS() as unknown).filter((d) => d !== null && typeof d === 'object');
}

const templatePaths: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

function podShape(path: string): PodShape {
  for (const doc of documents(path)) {
    const object = doc as { kind?: string; metadata?: { namespace?: string } };
    const at = templatePaths[object.kind ?? ''];
    if (at === undefined) continue;
    let template: unknown = doc;
    for (const p of at) template = (template as Record<string, unknown> | undefined)?.[p];
    const t = template as { metadata?: { labels?: Record<string, string> }; spec?: V1PodSpec } | undefined;
    if (t?.spec === undefined) continue;
    return { ...(object.metadata?.namespace === undefined ? {} : { namespace: object.metadata.namespace }), labels: t.metadata?.labels ?? {}, spec: t.spec };
  }
  throw new CliError(`${path}: no Pod or workload with a pod template`, exitCodes.usage);
}

export function renderCommand(cli: CliContext): Command {
  let validator: BindingValidator | undefined;
  return new Command('render')
    .summary('offline: validate a SecretBinding file and show the files a pod would get (shapes, never values)')
    .description(
      'Validates SecretBindings against the CRD\'s OpenAPI schema and its CEL rules, as `kubectl apply` would, without a ' +
        'cluster; then shows the file tree, modes and formats a pod would get, with value shapes (<key#property>) in place ' +
        'of values — or sample values from --values. With --pod, checks that the pod would be served (volume, selector, ' +
        'listed containers) and shows its mount paths. For CI pipelines, before anything is applied.',
    )
    .requiredOption('-f, --filename <file>', 'the SecretBinding manifest (- for stdin); every SecretBinding in it is rendered')
    .option('--pod <file>', 'a Pod or workload manifest (Deployment, StatefulSet, DaemonSet, Job, CronJob) to render for')
    .option('--values <file>', 'sample values, YAML: {KEY: text}, {KEY: {property: text}} or {"KEY#property": text}')
    .addHelpText('after', '\nExamples:\n  kubectl secretbinder render -f binding.yaml\n  kubectl secretbinder render -f binding.yaml --pod deployment.yaml --values samples.yaml -o yaml')
    .action((options: RenderOptions, command: Command) => {
      const flags = globalFlags(command);
      const format = outputFormat(flags.output, baseFormats);
      const bindings = documents(options.filename).filter((d) => (d as { kind?: unknown }).kind === 'SecretBinding');
      if (bindings.length === 0) throw new CliError(`${options.filename}: no SecretBinding in the file`, exitCodes.usage);
      validator ??= bindingValidator(loadBindingSchema(bindingCrd));
      for (const binding of bindings) {
        const errors = validator(binding);
        const name = (binding as { metadata?: { name?: unknown } }).metadata?.name;
        if (errors.length > 0) throw new CliError(`${options.filename}: SecretBinding ${typeof name === 'string' ? name : '<unnamed>'} is invalid: ${errors.join('; ')}`, exitCodes.usage);
      }
      const pod = options.pod === undefined ? undefined : podShape(options.pod);
      const values = options.values === undefined ? undefined : (parse(readText(options.values)) as SampleValues | null) ?? {};
      const results = (bindings as SecretBinding[]).map((binding) => {
        if (pod !== undefined) {
          const refusal = podRefusal(binding, pod);
          if (refusal !== undefined) throw new CliError(`${options.pod ?? ''}: ${refusal.reason}: ${refusal.message}`, exitCodes.checkFailed);
        }
        return renderBinding(binding, pod, values);
      });
      cli.out(format === 'table' ? results.map(renderTree).join('\n') : renderDocument(results.length === 1 ? results[0] : results, format));
    });
}

/** The file tree under each mount path, then every file's content (shapes or samples). */
function renderTree(r: RenderedBinding): string {
  const lines = [`SecretBinding ${r.binding.namespace}/${r.binding.name}: valid`];
  const mountPaths = [...new Set(r.mounts.map((m) => m.mountPath))];
  for (const mountPath of mountPaths) {
    const containers = r.mounts.filter((m) => m.mountPath === mountPath).map((m) => m.container);
    lines.push('', `${mountPath}   (containers: ${containers.join(', ')})`);
    const sorted = [...r.files].sort((a, b) => a.path.localeCompare(b.path));
    const width = Math.max(...sorted.map((f) => f.path.length));
    for (const [i, f] of sorted.entries()) {
      lines.push(`${i === sorted.length - 1 ? '└──' : '├──'} ${f.path.padEnd(width)}   ${octalMode(f.mode)}   ${f.format}`);
    }
  }
  for (const f of r.files) lines.push('', `--- ${f.path} (${octalMode(f.mode)}, ${f.format})`, f.content.replace(/\n$/, ''));
  return `${lines.join('\n')}\n`;
}
