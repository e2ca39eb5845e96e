import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from '../support/cluster.ts';

/**
 * The README's "## Quick start" section as a doc test reads it (ADR 0120): its `sh` blocks in order,
 * and the names the block after the `quickstart: environment` marker exports (the user's to fill in,
 * the test's to set). Shared by the packaging test (a world without a node) and the install e2e
 * suite (the chart on the real node).
 */
export interface QuickStart {
  /** Names the environment block exports. */
  readonly environment: readonly string[];
  /** The commands, block by block. */
  readonly blocks: readonly string[];
}

const environmentMarker = '<!-- quickstart: environment -->';

/** The `sh` blocks of the README's "## Quick start" section (up to the next `## ` heading). */
export function quickStart(readme: string): QuickStart {
  const start = readme.indexOf('\n## Quick start\n');
  if (start < 0) throw new Error('README.md has no "## Quick start" section');
  const rest = readme.slice(start + 1);
  const end = rest.indexOf('\n## ', 1);
  const lines = (end < 0 ? rest : rest.slice(0, end)).split('\n');
  const environment: string[] = [];
  const blocks: string[] = [];
  let previous = '';
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i] ?? '';
    if (line.startsWith('```') && line !== '```sh') throw new Error(`quick start: a fenced block that is not sh (${line}); the doc test runs every block`);
    if (line !== '```sh') {
      if (line.trim() !== '') previous = line.trim();
      continue;
    }
    const body: string[] = [];
    for (i += 1; i < lines.length && lines[i] !== '```'; i += 1) body.push(lines[i] ?? '');
    if (previous === environmentMarker) {
      for (const exported of body) environment.push(/^export ([A-Z_][A-Z0-9_]*)=/.exec(exported)?.[1] ?? `unparsed: ${exported}`);
    } else {
      blocks.push(body.join('\n'));
    }
    previous = '';
  }
  return { environment, blocks };
}

/** The repository's README quick start. */
export function readmeQuickStart(): QuickStart {
  return quickStart(readFileSync(join(root, 'README.md'), 'utf8'));
}
