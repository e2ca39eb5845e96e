import { lstatSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { productionPackages } from '../harness/node/project-image.ts';

/**
 * What the image's production `node_modules` weighs (issue #22 item 6): the packages the image
 * copies (`npm ls --omit=dev`, as test/harness/node/project-image.ts and the Dockerfile's `npm prune
 * --omit=dev` keep them), their bytes on disk, and the heaviest. Reported by `npm run bench`.
 */

export interface DependencyFootprint {
  readonly packages: number;
  readonly bytes: number;
  readonly heaviest: readonly { readonly name: string; readonly bytes: number }[];
}

function bytesUnder(path: string): number {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, entry) => sum + bytesUnder(join(path, entry)), 0);
}

export function productionFootprint(root: string): DependencyFootprint {
  const sized = productionPackages(root).map((dir) => ({ name: relative(join(root, 'node_modules'), dir), bytes: bytesUnder(dir) }));
  return {
    packages: sized.length,
    bytes: sized.reduce((sum, p) => sum + p.bytes, 0),
    heaviest: [...sized].sort((a, b) => b.bytes - a.bytes).slice(0, 5),
  };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The bench table's rows: the total, then the five heaviest packages. */
export function footprintRows(root: string): string[][] {
  const f = productionFootprint(root);
  return [[`image production node_modules (${String(f.packages)} top-level packages)`, mib(f.bytes)], ...f.heaviest.map((p) => [`  ${p.name}`, mib(p.bytes)])];
}
