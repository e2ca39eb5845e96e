import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { captureText } from '../../harness/leak-capture.ts';

/**
 * Runs `kubectl-secretbinder` as a user does: a separate process (`node src/cli/main.ts`), its
 * kubeconfig from `KUBECONFIG`, its output and exit code observed from outside. Every output is
 * kept for the leak assertions and written to the run's leak capture (ADR 0177).
 */

export interface CliRun {
  readonly args: readonly string[];
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export const cliEntry = join(process.cwd(), 'src', 'cli', 'main.ts');

/** Every run of this process, for the leak test. */
export const allRuns: CliRun[] = [];

export function runCli(args: readonly string[], options: { kubeconfig: string; cwd?: string; stdin?: string }): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', KUBECONFIG: options.kubeconfig },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const run = { args, code, stdout, stderr };
      allRuns.push(run);
      captureText(`cli/${String(process.pid)}.txt`, `$ kubectl-secretbinder ${args.join(' ')}\n${stdout}\n${stderr}`);
      resolve(run);
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** Every 8-character substring of a value (the leak test's needles, after the issue). */
export function fragments(value: string, length = 8): string[] {
  if (value.length <= length) return [value];
  return Array.from({ length: value.length - length + 1 }, (_, i) => value.slice(i, i + length));
}

/** The runs in whose output a secret value or any 8-character fragment of it appears. */
export function leaks(runs: readonly CliRun[], secrets: readonly string[]): string[] {
  const hits: string[] = [];
  for (const run of runs) {
    const text = run.stdout + run.stderr;
    for (const secret of secrets) {
      const fragment = fragments(secret).find((f) => text.includes(f));
      if (fragment !== undefined) hits.push(`kubectl-secretbinder ${run.args.join(' ')}: a fragment of a known secret value`);
    }
  }
  return hits;
}

/**
 * Starts the CLI and returns its output so far, a way to wait for a text, and a stop that ends
 * the process (SIGINT, as Ctrl-C) and records its run for the leak test.
 */
export function startCli(args: readonly string[], options: { kubeconfig: string }): { output: () => string; waitFor: (text: string, timeoutMs: number) => Promise<void>; stop: () => Promise<CliRun> } {
  const child = spawn(process.execPath, [cliEntry, ...args], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', KUBECONFIG: options.kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    output: () => stdout,
    waitFor: async (text, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (!stdout.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no "${text}" within ${String(timeoutMs)} ms; stdout: ${stdout}; stderr: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    stop: async () => {
      child.kill('SIGINT');
      const code = await closed;
      const run = { args, code, stdout, stderr };
      allRuns.push(run);
      captureText(`cli/${String(process.pid)}.txt`, `$ kubectl-secretbinder ${args.join(' ')}\n${stdout}\n${stderr}`);
      return run;
    },
  };
}
