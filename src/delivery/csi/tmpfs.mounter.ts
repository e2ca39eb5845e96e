import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { promisify } from 'node:util';

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

  async unmount(target: string): Promise<void> {
    await run('umount', [target]);
  }

  async isMountPoint(target: string): Promise<boolean> {
    const resolved = await realpath(target).catch(() => undefined);
    if (resolved === undefined) return false;
    return (await mountPoints()).includes(resolved);
  }
}

/** Mount points from /proc/self/mountinfo (field 5, octal escapes decoded). */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => unescapeMountPath(line.split(' ')[4] ?? ''));
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

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
