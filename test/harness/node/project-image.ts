import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { archiveName, buildImage, type BuiltImage, type ImageEntry } from './images.ts';

/**
 * The project's image assembled on this host, with no Docker engine or registry (ADR 0141): the
 * Node 24 binary the harness runs on and the shared libraries `ldd` names for it, util-linux
 * `mount`/`umount` (the node plugin mounts tmpfs) with theirs, the project compiled by
 * `tsconfig.build.json`, and the production dependencies only — the layout of the Dockerfile's final
 * stage (/app/dist/main.js, /app/node_modules, /app/crds; user 65532; entrypoint `node`). Cached
 * by the content of its inputs, so a fresh clone with the same sources reuses it.
 */

export const projectImageReference = 'docker.io/library/secret-binder:e2e';

const root = process.cwd();
const cacheDir = join(process.env.SECRET_BINDER_CACHE ?? join(homedir(), '.cache', 'secret-binder'), 'images');

/** Shared libraries (resolved paths as the loader names them) a dynamic executable needs. */
function sharedLibraries(executable: string): string[] {
  return execFileSync('ldd', [executable], { encoding: 'utf8' })
    .split('\n')
    .map((line) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1])
    .filter((path): path is string => path !== undefined);
}

function filesOf(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** Hash of everything the image is made of: sources, lock file, CRDs, the Node binary's version. */
function inputsDigest(): string {
  const hash = createHash('sha256').update(process.version);
  for (const file of [...filesOf(join(root, 'src')), ...filesOf(join(root, 'crds')), join(root, 'package.json'), join(root, 'package-lock.json'), join(root, 'tsconfig.json'), join(root, 'tsconfig.build.json')]) {
    hash.update(relative(root, file)).update(readFileSync(file));
  }
  return hash.digest('hex').slice(0, 16);
}

/** Top-level package directories of the production dependency tree of `from` (each copied with what it nests). */
export function productionPackages(from: string): string[] {
  const listed = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: from, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && line !== from);
  const topLevel = new RegExp(`^${join(from, 'node_modules').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(@[^/]+/)?[^/]+$`);
  return [...new Set(listed.filter((dir) => topLevel.test(dir)))].sort();
}

/** Keeps `keep` and the newest other build (~290 MB each); older ones go. */
function pruneCache(keep: string): void {
  const others = readdirSync(cacheDir)
    .filter((name) => name.startsWith('secret-binder-') && join(cacheDir, name) !== keep)
    .map((name) => ({ path: join(cacheDir, name), mtime: statSync(join(cacheDir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of others.slice(1)) rmSync(old.path, { recursive: true, force: true });
}

/** Builds (or reuses from the cache) the project image archive of the working tree. */
export function buildProjectImage(): BuiltImage {
  const digest = inputsDigest();
  const outDir = join(cacheDir, `secret-binder-${digest}`);
  const archivePath = join(outDir, archiveName(projectImageReference));
  const manifestFile = join(outDir, 'manifest-digest');
  if (existsSync(archivePath) && existsSync(manifestFile)) {
    return { reference: projectImageReference, archivePath, manifestDigest: readFileSync(manifestFile, 'utf8').trim() };
  }
  const built = assembleProjectImage({ reference: projectImageReference, sourceRoot: root, dependencyRoot: root, outDir });
  pruneCache(outDir);
  return built;
}

/** What an image of the project is assembled from. */
export interface ProjectImageSources {
  readonly reference: string;
  /** A tree of the project: src/, crds/, package.json, tsconfig.build.json, node_modules/ for tsc. */
  readonly sourceRoot: string;
  /** The checkout whose node_modules holds the production dependencies to copy. */
  readonly dependencyRoot: string;
  /** Where the archive and its `manifest-digest` are written. */
  readonly outDir: string;
}

/**
 * Assembles the Dockerfile's final stage from a project tree (the working tree, or a previous
 * commit's for the upgrade suite) into `outDir`, with no cache lookup.
 */
export function assembleProjectImage(sources: ProjectImageSources): BuiltImage {
  const { reference, sourceRoot, dependencyRoot, outDir } = sources;
  const work = mkdtempSync(join(tmpdir(), 'sb-project-image-'));
  try {
    const dist = join(work, 'dist');
    execFileSync(process.execPath, [join(sourceRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(sourceRoot, 'tsconfig.build.json'), '--outDir', dist], { cwd: sourceRoot, stdio: 'inherit' });
    for (const proto of readdirSync(join(sourceRoot, 'src', 'delivery', 'csi')).filter((f) => f.endsWith('.proto'))) {
      mkdirSync(join(dist, 'delivery', 'csi'), { recursive: true });
      copyFileSync(join(sourceRoot, 'src', 'delivery', 'csi', proto), join(dist, 'delivery', 'csi', proto));
    }
    const binaries = [process.execPath, '/bin/mount', '/bin/umount'];
    const libraries = [...new Set(binaries.flatMap(sharedLibraries))].sort();
    const entries: ImageEntry[] = [
      { kind: 'file', path: 'usr/local/bin/node', from: process.execPath },
      { kind: 'file', path: 'bin/mount', from: '/bin/mount' },
      { kind: 'file', path: 'bin/umount', from: '/bin/umount' },
      ...libraries.map((lib): ImageEntry => ({ kind: 'file', path: lib.slice(1), from: lib, mode: 0o755 })),
      { kind: 'dir', path: 'tmp', mode: 0o1777 },
      { kind: 'dir', path: 'proc' },
      { kind: 'dir', path: 'sys' },
      { kind: 'dir', path: 'dev' },
      { kind: 'data', path: 'etc/passwd', data: 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n' },
      { kind: 'data', path: 'etc/group', data: 'root:x:0:\nnonroot:x:65532:\n' },
      { kind: 'tree', path: 'app/dist', from: dist },
      { kind: 'tree', path: 'app/crds', from: join(sourceRoot, 'crds') },
      { kind: 'file', path: 'app/package.json', from: join(sourceRoot, 'package.json'), mode: 0o644 },
      ...productionPackages(dependencyRoot).map((dir): ImageEntry => ({ kind: 'tree', path: relative(dependencyRoot, dir).replace(/^node_modules/, 'app/node_modules'), from: dir })),
    ];
    const built = buildImage(
      {
        reference,
        entries,
        entrypoint: ['node'],
        cmd: ['/app/dist/main.js'],
        env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production', 'NODE_OPTIONS=--enable-source-maps --max-semi-space-size=1'],
        user: '65532:65532',
        workingDir: '/app',
      },
      outDir,
    );
    writeFileSync(join(outDir, 'manifest-digest'), `${built.manifestDigest}\n`);
    return built;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
