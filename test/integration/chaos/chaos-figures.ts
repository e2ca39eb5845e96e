import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentWorld } from '../../harness/world-state.ts';

/**
 * A drill's figures (times, counts): printed, and appended to `<world logs>/chaos-figures.log`,
 * from which docs/reliability.md takes one run's lines. Reported, never asserted as timings.
 */
export function figure(line: string): void {
  const text = `chaos: ${line}\n`;
  process.stdout.write(text);
  appendFileSync(join(currentWorld().logDir, 'chaos-figures.log'), `${new Date().toISOString()} ${text}`);
}
