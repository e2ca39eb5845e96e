import { execFile } from 'node:child_process';
import { mkdir, readFile, realpath, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { clearFileSet } from '../files/atomic-writer.ts';

const run = promisify(execFile);

export interface TmpfsOptions {
  /** The size limit of the tmpfs (invariant 2). */
  readonly sizeBytes: number;
  /** The mode of the volume's root directory. */
  readonly mode: number;
  /** The group of the volume's root directory (the pod's fsGroup). */
  readonly gid?: number;
}

/** Mounts and unmounts tmpfs volumes (ADR 0087). */
export interface Mounter {
  mountTmpfs(target: string, options: TmpfsOptions): Promise<void>;
  /** Makes the mount at `source` visible at `target` too (a bind mount: same files, own flags). */
  bindMount(source: string, target: string): Promise<void>;
  /** Sets the read-only flag of the mount at `target` alone (not of its filesystem). */
  remount(target: string, options: { readonly readOnly: boolean }): Promise<void>;
  unmount(target: string): Promise<void>;
  isMountPoint(target: string): Promise<boolean>;
}

/**
 * {@link Mounter} through the util-linux `mount` / `umount` binaries (the plugin runs privileged,
 * as root). Arguments go through `execFile`, never a shell.
 */
export class SystemMounter implements Mounter {
  async mountTmpfs(target: string, options: TmpfsOptions): Promise<void> {
    if (!Number.isSafeInteger(options.sizeBytes) || options.sizeBytes <= 0) throw new Error('tmpfs size must be a positive integer');
    const flags = [`size=${String(options.sizeBytes)}`, `mode=${options.mode.toString(8).padStart(4, '0')}`, 'nosuid', 'nodev', 'noexec'];
    if (options.gid !== undefined) flags.push(`gid=${String(options.gid)}`);
    await run('mount', ['-t', 'tmpfs', '-o', flags.join(','), 'secretbinder', target]);
  }

  async bindMount(source: string, target: string): Promise<void> {
    await run('mount', ['--bind', source, target]);
  }

  async remount(target: string, options: { readonly readOnly: boolean }): Promise<void> {
    await run('mount', ['-o', `remount,bind,${options.readOnly ? 'ro' : 'rw'}`, target]);
  }

  async unmount(target: string): Promise<void> {
    await run('umount', [target]);
  }

  async isMountPoint(target: string): Promise<boolean> {
    const resolved = await realpath(target).catch(() => undefined);
    if (resolved === undefined) return false;
    return isMountPointIn(await readFile('/proc/self/mountinfo'), resolved);
  }
}

/**
 * Where the plugin writes the files of a read-only volume: a read-write bind mount of the volume's
 * tmpfs beside the target (the kubelet's `.../<volume>/mount` gets `.../<volume>/.mount.rw`),
 * derived from the target path alone so a restarted plugin finds it (ADR 0165).
 */
export function writableViewOf(targetPath: string): string {
  return join(dirname(targetPath), `.${basename(targetPath)}.rw`);
}

export interface VolumeMount {
  /** Where the files are written: the target itself, or the writable view of a read-only target. */
  readonly writePath: string;
  /** True when this call mounted the tmpfs; false when it was there already (a restarted plugin). */
  readonly mountedNow: boolean;
}

/**
 * Mounts the volume's size-limited tmpfs at `target` (unless it is mounted already) and returns
 * where to write its files. A read-only volume's target is remounted read-only — what the pod
 * sees — and its files are written through a read-write bind mount of the same tmpfs beside it,
 * so refreshes and revocations keep working (ADR 0165).
 */
export async function mountVolume(mounter: Mounter, target: string, options: TmpfsOptions & { readonly readOnly: boolean }): Promise<VolumeMount> {
  await mkdir(target, { recursive: true, mode: 0o750 });
  const mountedNow = !(await mounter.isMountPoint(target));
  if (mountedNow) await mounter.mountTmpfs(target, options);
  try {
    return await setUpViews(mounter, target, mountedNow, options.readOnly);
  } catch (err) {
    // Half set up: undo what this call mounted; a mount found from before stays as it was.
    if (mountedNow) await unmountVolume(mounter, target).catch(() => undefined);
    throw err;
  }
}

async function setUpViews(mounter: Mounter, target: string, mountedNow: boolean, readOnly: boolean): Promise<VolumeMount> {
  const view = writableViewOf(target);
  if (!readOnly) {
    // Published read-write: the target is the only view; an adopted mount may have been read-only.
    if (!mountedNow) await mounter.remount(target, { readOnly: false });
    if (await mounter.isMountPoint(view)) {
      await mounter.unmount(view);
      await rmdir(view).catch(ignoreMissing);
    }
    return { writePath: target, mountedNow };
  }
  if (!(await mounter.isMountPoint(view))) {
    await mkdir(view, { recursive: true, mode: 0o700 });
    await mounter.bindMount(target, view);
    // A bind mount inherits the source's flags: after a plugin restart the target is read-only.
    // A tmpfs mounted by this call is still read-write: one `mount` process fewer (ADR 0205).
    if (!mountedNow) await mounter.remount(view, { readOnly: false });
  }
  await mounter.remount(target, { readOnly: true });
  return { writePath: view, mountedNow };
}

/**
 * Wipes the volume's files, unmounts its writable view and its target, and removes the view's
 * directory; the target directory stays (the caller removes it). Idempotent.
 */
export async function unmountVolume(mounter: Mounter, target: string): Promise<void> {
  const view = writableViewOf(target);
  const viewMounted = await mounter.isMountPoint(view);
  const targetMounted = await mounter.isMountPoint(target);
  // The bytes go before the mounts: nothing readable stays behind a failed unmount.
  if (viewMounted) await clearFileSet(view);
  else if (targetMounted) {
    await mounter.remount(target, { readOnly: false });
    await clearFileSet(target);
  }
  if (viewMounted) await mounter.unmount(view);
  await rmdir(view).catch(ignoreMissing);
  if (targetMounted) await mounter.unmount(target);
}

function ignoreMissing(err: unknown): void {
  if ((err as { code?: unknown } | null)?.code !== 'ENOENT') throw err;
}

/**
 * Whether `mountinfo` (the bytes of /proc/self/mountinfo) has a line whose mount point (field 5)
 * is `path`. The bytes are searched, not split into lines and fields: a node's mountinfo holds a
 * line per container mount and volume (300 KiB and 1,500 lines on the CI host), and splitting it
 * twice per publish made ~3 MiB of garbage per volume, which V8's old space grew by and kept
 * (ADR 0205). Fields are separated by single spaces; a space, tab, newline or backslash inside a
 * path is written as an octal escape, so the field count before a match is exact.
 */
export function isMountPointIn(mountinfo: Buffer, path: string): boolean {
  const needle = Buffer.from(` ${escapeMountPath(path)} `);
  for (let at = mountinfo.indexOf(needle); at !== -1; at = mountinfo.indexOf(needle, at + 1)) {
    const lineStart = mountinfo.lastIndexOf(0x0a, at) + 1;
    let spaces = 0;
    for (let i = lineStart; i < at; i++) if (mountinfo[i] === 0x20) spaces++;
    // The needle's leading space is the line's fourth: the match is field 5, the mount point.
    if (spaces === 3) return true;
  }
  return false;
}

/** The /proc/mounts line of the mount at `target`, parsed; undefined when none. */
export async function procMount(target: string): Promise<{ fsType: string; options: string[] } | undefined> {
  const text = await readFile('/proc/mounts', 'utf8');
  let found: { fsType: string; options: string[] } | undefined;
  for (const line of text.split('\n')) {
    const [, mountPoint, fsType, options] = line.split(' ');
    if (mountPoint !== undefined && unescapeMountPath(mountPoint) === target && fsType !== undefined && options !== undefined) {
      found = { fsType, options: options.split(',') };
    }
  }
  return found;
}

function escapeMountPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
