import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { RenderedFile } from './file-set.ts';

/**
 * Writes a file set into a directory the way the kubelet's AtomicWriter does (ADR 0085):
 *
 * ```
 * <dir>/..2026_11_22_06_50_01.123456789_ab12cd/   the files of one version (never changed once linked)
 * <dir>/..data -> ..2026_11_22_06_50_01.123456789_ab12cd
 * <dir>/<top-level-name> -> ..data/<top-level-name>
 * ```
 *
 * A new version is written into a fresh hidden directory, then `..data` is switched with one
 * `rename(2)` of a `..data_tmp` symlink over it, so a reader that resolves `..data` once sees one
 * whole version. The previous version directory is removed after the switch.
 */

export interface WriteOptions {
  /** The pod's fsGroup: files and directories get this group when set. */
  readonly gid?: number;
  /**
   * The caller knows the current version holds other content (its content hash differs): the
   * byte-by-byte comparison that makes an unchanged write a no-op is skipped (ADR 0224).
   */
  readonly knownChanged?: boolean;
}

export interface WriteResult {
  /** False when the directory already held exactly this file set (nothing was touched). */
  readonly changed: boolean;
}

const dataLink = '..data';
const dataTmpLink = '..data_tmp';
const directoryMode = 0o755;

/** Throws unless `path` is a clean relative path that stays inside the volume. */
export function validateFilePath(path: string): void {
  if (path === '' || posix.isAbsolute(path)) throw new Error(`file path ${JSON.stringify(path)} must be relative and non-empty`);
  if (path.length > 4096) throw new Error('file path is longer than 4096 characters');
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') throw new Error(`file path ${JSON.stringify(path)} has an empty, "." or ".." segment`);
  }
  if (segments[0]?.startsWith('..') === true) throw new Error(`file path ${JSON.stringify(path)} must not start with ".." (reserved)`);
}

/** Writes `files` into `dir` atomically; a no-op when the current version already equals them. */
export async function writeFileSet(dir: string, files: readonly RenderedFile[], options: WriteOptions = {}): Promise<WriteResult> {
  const seen = new Set<string>();
  for (const file of files) {
    validateFilePath(file.path);
    if (seen.has(file.path)) throw new Error(`file path ${JSON.stringify(file.path)} appears twice`);
    seen.add(file.path);
  }
  assertNoFileIsADirectory(files);

  const oldVersion = await currentVersionDir(dir);
  if (oldVersion !== undefined && options.knownChanged !== true && (await versionEquals(join(dir, oldVersion), files, options))) return { changed: false };

  const versionDir = await mkdtemp(join(dir, `..${timestamp(new Date())}_`));
  const versionName = posix.basename(versionDir);
  try {
    await chmod(versionDir, directoryMode);
    if (options.gid !== undefined) await chown(versionDir, -1, options.gid);
    for (const file of files) {
      const target = join(versionDir, file.path);
      await mkdirWithGroup(versionDir, dirname(file.path), options.gid);
      await writeFile(target, file.content.reveal(), { mode: file.mode, flag: 'wx' });
      // writeFile's mode is filtered by the umask; the binding's mode is what the pod must see.
      await chmod(target, file.mode);
      if (options.gid !== undefined) await chown(target, -1, options.gid);
    }
    await rm(join(dir, dataTmpLink), { force: true });
    await symlink(versionName, join(dir, dataTmpLink));
    await rename(join(dir, dataTmpLink), join(dir, dataLink));
  } catch (err) {
    // The switch did not happen (or failed at its last step): the old version stays in place.
    await rm(versionDir, { recursive: true, force: true });
    throw err;
  }

  const topLevel = new Set(files.map((file) => file.path.split('/')[0] ?? file.path));
  for (const name of topLevel) {
    const link = join(dir, name);
    const existing = await lstat(link).catch(() => undefined);
    if (existing?.isSymbolicLink() === true && (await readlink(link)) === posix.join(dataLink, name)) continue;
    if (existing !== undefined) await rm(link, { recursive: true, force: true });
    await symlink(posix.join(dataLink, name), link);
  }
  // One listing: the previous version, versions left by a writer that died between the switch and
  // the cleanup, and links of files the new set no longer has.
  for (const entry of await readdir(dir)) {
    if (entry.startsWith('..')) {
      if (entry !== versionName && entry !== dataLink && entry !== dataTmpLink) await rm(join(dir, entry), { recursive: true, force: true });
      continue;
    }
    if (topLevel.has(entry)) continue;
    const stats = await lstat(join(dir, entry));
    // Only our own links are removed; anything else in the directory is not ours to judge.
    if (stats.isSymbolicLink() && (await readlink(join(dir, entry))) === posix.join(dataLink, entry)) await unlink(join(dir, entry));
  }
  return { changed: true };
}

/** Removes every file of the set and the version directories; the directory itself stays. */
export async function clearFileSet(dir: string): Promise<void> {
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    await rm(join(dir, entry), { recursive: true, force: true });
  }
}

/** The paths (relative to `dir`) of the files of the current version, sorted. */
export async function listFileSet(dir: string): Promise<string[]> {
  const version = await currentVersionDir(dir);
  return version === undefined ? [] : listVersion(join(dir, version));
}

async function listVersion(versionDir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    for (const entry of await readdir(join(versionDir, relative), { withFileTypes: true })) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else out.push(path);
    }
  };
  await walk('');
  return out.sort();
}

async function currentVersionDir(dir: string): Promise<string | undefined> {
  try {
    const target = await readlink(join(dir, dataLink));
    return target;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

async function versionEquals(versionDir: string, files: readonly RenderedFile[], options: WriteOptions): Promise<boolean> {
  const existing = await listVersion(versionDir).catch(() => undefined);
  if (existing?.length !== files.length) return false;
  for (const file of files) {
    const path = join(versionDir, file.path);
    const stats = await stat(path).catch(() => undefined);
    if (stats === undefined || !stats.isFile()) return false;
    if ((stats.mode & 0o7777) !== file.mode) return false;
    if (options.gid !== undefined && stats.gid !== options.gid) return false;
    const bytes = await readFile(path);
    const wanted = file.content.reveal();
    if (!Buffer.from(wanted).equals(bytes)) return false;
  }
  return true;
}

async function mkdirWithGroup(root: string, relativeDir: string, gid: number | undefined): Promise<void> {
  if (relativeDir === '.' || relativeDir === '') return;
  let current = root;
  for (const segment of relativeDir.split('/')) {
    current = join(current, segment);
    const made = await mkdir(current, { mode: directoryMode }).then(
      () => true,
      (err: unknown) => {
        if (isErrno(err, 'EEXIST')) return false;
        throw err;
      },
    );
    if (made) {
      await chmod(current, directoryMode);
      if (gid !== undefined) await chown(current, -1, gid);
    }
  }
}

function assertNoFileIsADirectory(files: readonly RenderedFile[]): void {
  const paths = new Set(files.map((file) => file.path));
  for (const file of files) {
    const segments = file.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const prefix = segments.slice(0, i).join('/');
      if (paths.has(prefix)) throw new Error(`file path ${JSON.stringify(prefix)} is also a directory of ${JSON.stringify(file.path)}`);
    }
  }
}

function timestamp(now: Date): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return `${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.${pad(now.getUTCMilliseconds(), 3)}`;
}

function isErrno(err: unknown, code: string): boolean {
  // Structural, not `instanceof Error`: errors from node:fs may come from another realm (jest's vm).
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
