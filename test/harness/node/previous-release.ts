import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveName, type BuiltImage } from './images.ts';
import { assembleProjectImage } from './project-image.ts';

/**
 * The release a platform team runs before an upgrade: the chart and the image of an earlier commit
 * of this repository, taken from its own git history (`git archive`, so the work tree and the
 * repository's worktree list stay untouched) and assembled like the working tree's image (ADR
 * 0141). Cached under `$SECRET_BINDER_CACHE/images/previous/<commit>-<node version>/` (the chart
 * directory, the image archive, its manifest digest): a warm run builds nothing (ADR 0230).
 */

export interface PreviousRelease {
  readonly commit: string;
  /** The chart of that commit (`charts/secret-binder`), extracted into the cache. */
  readonly chartDir: string;
  readonly image: BuiltImage;
}

const root = process.cwd();
const cacheRoot = join(process.env.SECRET_BINDER_CACHE ?? join(homedir(), '.cache', 'secret-binder'), 'images', 'previous');

function git(args: readonly string[], options: { readonly cwd?: string } = {}): string {
  return execFileSync('git', [...args], { cwd: options.cwd ?? root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

/** The commit's full name; a clear error when the clone lacks it (a shallow clone). */
function resolveCommit(commit: string): string {
  try {
    return git(['rev-parse', '--verify', '--quiet', `${commit}^{commit}`]).trim();
  } catch {
    throw new Error(`commit ${commit} is not in this clone's history: the upgrade suite needs a full clone (git fetch --unshallow)`);
  }
}

/**
 * The production entries of a lock file (`packages` without `dev`), as one comparable string: when
 * the previous commit's equal the working tree's, its image reuses the installed node_modules.
 */
function productionLock(lockText: string): string {
  const lock = JSON.parse(lockText) as { packages?: Record<string, { dev?: boolean; version?: string; integrity?: string }> };
  return Object.entries(lock.packages ?? {})
    .filter(([path, entry]) => path !== '' && entry.dev !== true)
    .map(([path, entry]) => `${path}@${entry.version ?? ''}#${entry.integrity ?? ''}`)
    .sort()
    .join('\n');
}

/** The chart and image of `commit`, built once per commit (and Node version) and reused. */
export function previousRelease(commit: string, reference: string): PreviousRelease {
  const sha = resolveCommit(commit);
  const dir = join(cacheRoot, `${sha}-${process.version}`);
  const chartDir = join(dir, 'chart', 'charts', 'secret-binder');
  const archivePath = join(dir, archiveName(reference));
  const manifestFile = join(dir, 'manifest-digest');
  if (existsSync(chartDir) && existsSync(archivePath) && existsSync(manifestFile)) {
    return { commit: sha, chartDir, image: { reference, archivePath, manifestDigest: readFileSync(manifestFile, 'utf8').trim() } };
  }
  mkdirSync(cacheRoot, { recursive: true });
  // Built beside the cache entry and renamed into place, so an interrupted build is never reused.
  const staging = mkdtempSync(join(cacheRoot, `.${sha.slice(0, 12)}-`));
  const work = mkdtempSync(join(tmpdir(), 'sb-previous-'));
  try {
    const sources = join(work, 'src');
    mkdirSync(sources);
    execFileSync('/bin/sh', ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'sh', sha, sources], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    let dependencyRoot = root;
    if (productionLock(readFileSync(join(sources, 'package-lock.json'), 'utf8')) === productionLock(readFileSync(join(root, 'package-lock.json'), 'utf8'))) {
      // Same production dependencies: tsc and the image use the installed tree.
      symlinkSync(join(root, 'node_modules'), join(sources, 'node_modules'));
    } else {
      // Its own dependencies, from the npm cache when it has them (as the harness's `npm ci`).
      execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: sources, stdio: ['ignore', 'ignore', 'inherit'] });
      dependencyRoot = sources;
    }
    assembleProjectImage({ reference, sourceRoot: sources, dependencyRoot, outDir: staging });
    mkdirSync(join(staging, 'chart', 'charts'), { recursive: true });
    execFileSync('/bin/cp', ['-a', join(sources, 'charts', 'secret-binder'), join(staging, 'chart', 'charts', 'secret-binder')]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
  return { commit: sha, chartDir, image: { reference, archivePath, manifestDigest: readFileSync(manifestFile, 'utf8').trim() } };
}
