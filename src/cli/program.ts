/**
 * The program of `kubectl-secretbinder` (started by main.ts): parses arguments with commander,
 * wires the commands to stdout/stderr and the kubeconfig, and turns every failure into one line
 * on stderr and an exit code (src/cli/cli-errors.ts).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { Command, CommanderError, Option } from 'commander';
import { CliError, exitCodes } from './cli-errors.ts';
import type { CliContext } from './cli-context.ts';
import { explainCommand } from './explain/explain.command.ts';
import { whoUsesCommand } from './who-uses/who-uses.command.ts';
import { auditCommand } from './sprawl/sprawl.command.ts';
import { renderCommand } from './render/render.command.ts';
import { refreshCommand, restartCommand } from './refresh/refresh.command.ts';
import { loadKubeTarget } from './kube-target.ts';

/** The version the CLI reports (`--version`, SARIF's driver): the package's (two levels up in src/ and dist/). */
const toolVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(cli: CliContext): Command {
  const program = new Command('kubectl-secretbinder')
    .description(
      'Answers "what does this pod get, from where, and is it current?" for secret-binder — and the reverse.\n' +
        'Never prints a secret value. Uses the kubeconfig as kubectl does (KUBECONFIG, --kubeconfig, --context).',
    )
    .version(toolVersion)
    .option('--kubeconfig <path>', 'path to the kubeconfig file (default: KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'the kubeconfig context to use')
    .option('-n, --namespace <namespace>', 'the namespace (default: the context\'s, then "default")')
    .option('-A, --all-namespaces', 'every namespace (commands that list)')
    .addOption(new Option('-o, --output <format>', 'output format: table, json, yaml (some commands add dot or sarif)'))
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 failure (API unreachable, unexpected), 2 bad usage or input, 3 not found,\n' +
        '4 forbidden, 5 check failed (--fail-on, --fail), 6 timed out waiting (refresh, restart).',
    );
  for (const command of [explainCommand(cli), whoUsesCommand(cli), renderCommand(cli), refreshCommand(cli), restartCommand(cli), auditCommand(cli, toolVersion)]) program.addCommand(command);
  return program;
}

function applyToAll(command: Command, write: { out: (s: string) => void; err: (s: string) => void }): void {
  command.exitOverride().configureOutput({ writeOut: write.out, writeErr: write.err });
  for (const sub of command.commands) applyToAll(sub, write);
}

/** Runs the CLI on `argv` (without node and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], cli: CliContext, writeErr: (s: string) => void): Promise<number> {
  const program = buildProgram(cli);
  applyToAll(program, { out: cli.out, err: writeErr });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCodes.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are not failures; any other parse error was already printed by commander.
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.help' || error.code === 'commander.version' ? exitCodes.ok : exitCodes.usage;
    }
    if (error instanceof CliError) {
      writeErr(`error: ${error.message}\n`);
      return error.exitCode;
    }
    // Unexpected: one line, no stack (a stack could quote an object we read).
    writeErr(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return exitCodes.failure;
  }
}

/** Runs the CLI on this process's arguments and exits with its code. */
export async function main(): Promise<void> {
  const abort = new AbortController();
  process.once('SIGINT', () => {
    abort.abort();
  });
  const cli: CliContext = {
    out: (text) => process.stdout.write(text),
    note: (text) => process.stderr.write(text),
    now: () => new Date(),
    signal: abort.signal,
    target: loadKubeTarget,
    sleep: (ms) => delay(ms, undefined, { signal: abort.signal }),
  };
  const code = await runCli(process.argv.slice(2), cli, (text) => process.stderr.write(text));
  // Flush before exiting: the API connections' keep-alive would otherwise hold the process open.
  await new Promise<void>((resolve) => process.stdout.write('', () => { resolve(); }));
  process.exit(code);
}
