import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { isMountPointIn } from './tmpfs.mounter.ts';

const mountinfo = Buffer.from(
  [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    // A bind mount whose root (field 4) is a path that is not itself a mount point here.
    '40 22 8:1 /srv/data /mnt/bound rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '41 22 0:50 / /var/lib/kubelet/pods/p\\040q/volumes/v/mount rw,nosuid - tmpfs secretbinder rw,size=4096k',
    '42 22 0:50 / /var/lib/kubelet/pods/a/volumes/v/.mount.rw rw - tmpfs secretbinder rw',
  ].join('\n') + '\n',
);

describe('isMountPointIn', () => {
  it('finds a mount point by its field, escapes included', () => {
    expect(isMountPointIn(mountinfo, '/')).toBe(true);
    expect(isMountPointIn(mountinfo, '/mnt/bound')).toBe(true);
    expect(isMountPointIn(mountinfo, '/var/lib/kubelet/pods/p q/volumes/v/mount')).toBe(true);
    expect(isMountPointIn(mountinfo, '/var/lib/kubelet/pods/a/volumes/v/.mount.rw')).toBe(true);
  });

  it('does not take a mount root, a prefix or an unescaped name for a mount point', () => {
    expect(isMountPointIn(mountinfo, '/srv/data')).toBe(false);
    expect(isMountPointIn(mountinfo, '/mnt')).toBe(false);
    expect(isMountPointIn(mountinfo, '/var/lib/kubelet/pods/a/volumes/v')).toBe(false);
    expect(isMountPointIn(mountinfo, '/var/lib/kubelet/pods/p\\040q/volumes/v/mount')).toBe(false);
  });

  it('reads this process\'s own mount table', () => {
    const own = readFileSync('/proc/self/mountinfo');
    expect(isMountPointIn(own, '/')).toBe(true);
    expect(isMountPointIn(own, '/proc')).toBe(true);
    expect(isMountPointIn(own, '/proc/self')).toBe(false);
  });
});
