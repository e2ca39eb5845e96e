/**
 * `npm run bench -- fuzz [cases]`: fuzz 1 of issue #15 item 7 at bench scale — 10,000 random
 * SecretBindings and backends (by default) against a world of its own (the real API server and
 * OpenBao) and an in-process controller, with the property of the integration test
 * (test/integration/fuzz/crd-fuzz.ts). Prints the figures; fails only when the property does.
 */
import { up, down } from '../harness/world.ts';
import { worldEnvVar, worldStatePath } from '../harness/world-state.ts';
import { runCrdFuzz } from '../integration/fuzz/crd-fuzz.ts';

export async function runFuzzBench(args: readonly string[]): Promise<void> {
  const cases = Number(args[0] ?? '10000');
  const seed = args[1] === undefined ? undefined : Number(args[1]);
  const state = await up({ backends: ['openbao'], maxLifetimeSeconds: 3 * 3600, log: (line) => process.stderr.write(`${line}\n`) });
  process.env[worldEnvVar] = worldStatePath(state.dir);
  try {
    const progress = setInterval(() => { process.stderr.write('.'); }, 10_000);
    const report = await runCrdFuzz({ cases, batch: 20, ...(seed === undefined ? {} : { seed }), statusTimeoutMs: 60_000, timeLimitMs: 3 * 3600_000 }).finally(() => { clearInterval(progress); });
    const sum = (r: Readonly<Record<string, number>>): number => Object.values(r).reduce((a, b) => a + b, 0);
    process.stdout.write(`\nsecret-binder fuzz bench (one run; seed ${String(report.seed)}; world ${state.dir})\n\n`);
    process.stdout.write(`| kind | refused (schema/CEL) | accepted and reconciled |\n|---|---|---|\n`);
    for (const kind of Object.keys(report.refused) as (keyof typeof report.refused)[]) {
      process.stdout.write(`| ${kind} | ${String(report.refused[kind])} | ${String(report.accepted[kind])} |\n`);
    }
    process.stdout.write(`| all | ${String(sum(report.refused))} | ${String(sum(report.accepted))} |\n\n`);
    process.stdout.write(`Ready reasons of accepted objects: ${JSON.stringify(report.reasons)}\n`);
    process.stdout.write(`mutated cases accepted: ${String(report.mutatedAccepted)}; controller error lines: ${String(report.errorLines)}\n`);
    process.stdout.write(`${String(report.cases)} cases in ${(report.elapsedMs / 1000).toFixed(0)} s (${(report.cases / (report.elapsedMs / 1000)).toFixed(1)} objects/s)\n`);
  } finally {
    await down(state);
  }
}
