import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/**
 * Container images built on this host without a registry or a Docker engine (ADR 0140): a root
 * file system staged in a directory, packed by GNU tar into one uncompressed layer, and wrapped in
 * an OCI image layout archive that `ctr images import` reads. Byte-stable: sorted entries, owner 0,
 * mtime 0, so the same inputs give the same digest and a cached import is reused.
 */

/** One entry of an image's root file system. */
export type ImageEntry =
  | { readonly kind: 'file'; readonly path: string; readonly from: string; readonly mode?: number }
  | { readonly kind: 'data'; readonly path: string; readonly data: string | Buffer; readonly mode?: number }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string }
  | { readonly kind: 'dir'; readonly path: string; readonly mode?: number }
  /** A host directory copied whole (`cp -a`), e.g. a project tree. */
  | { readonly kind: 'tree'; readonly path: string; readonly from: string };

export interface ImageSpec {
  /** Full reference the runtime knows the image by, e.g. `docker.io/library/busybox:e2e`. */
  readonly reference: string;
  readonly entries: readonly ImageEntry[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  readonly env?: readonly string[];
  readonly user?: string;
  readonly workingDir?: string;
}

export interface BuiltImage {
  readonly reference: string;
  /** The OCI archive (`.tar`) to import. */
  readonly archivePath: string;
  /** sha256 digest of the image manifest. */
  readonly manifestDigest: string;
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function stage(root: string, entries: readonly ImageEntry[]): void {
  for (const entry of entries) {
    const target = join(root, entry.path);
    mkdirSync(entry.kind === 'dir' ? target : dirname(target), { recursive: true });
    switch (entry.kind) {
      case 'dir':
        chmodSync(target, entry.mode ?? 0o755);
        break;
      case 'file':
        copyFileSync(entry.from, target);
        chmodSync(target, entry.mode ?? 0o755);
        break;
      case 'data':
        writeFileSync(target, entry.data);
        chmodSync(target, entry.mode ?? 0o644);
        break;
      case 'symlink':
        symlinkSync(entry.target, target);
        break;
      case 'tree':
        execFileSync('cp', ['-a', '--no-preserve=ownership', `${entry.from}/.`, target]);
        break;
    }
  }
}

/** Packs `dir` (its contents at the archive root) reproducibly with GNU tar. */
function tarDirectory(dir: string, out: string): void {
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '--format=posix', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime', '-C', dir, '-cf', out, '.']);
}

function writeBlob(layout: string, data: Buffer): { digest: string; size: number } {
  const digest = sha256(data);
  const dir = join(layout, 'blobs', 'sha256');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, digest.slice('sha256:'.length)), data);
  return { digest, size: data.length };
}

/** The file name `buildImage` gives an image's archive. */
export const archiveName = (reference: string): string => `${reference.replace(/[^a-zA-Z0-9.-]+/g, '_')}.tar`;

/** Builds `spec` into `<outDir>/<name>.tar` (an OCI image layout archive). */
export function buildImage(spec: ImageSpec, outDir: string): BuiltImage {
  const work = mkdtempSync(join(tmpdir(), 'sb-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    stage(rootfs, spec.entries);
    const layerPath = join(work, 'layer.tar');
    tarDirectory(rootfs, layerPath);
    const layout = join(work, 'layout');
    const layer = writeBlob(layout, readFileSync(layerPath));
    const config = writeBlob(
      layout,
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: {
            ...(spec.entrypoint === undefined ? {} : { Entrypoint: spec.entrypoint }),
            ...(spec.cmd === undefined ? {} : { Cmd: spec.cmd }),
            Env: spec.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
            ...(spec.user === undefined ? {} : { User: spec.user }),
            ...(spec.workingDir === undefined ? {} : { WorkingDir: spec.workingDir }),
          },
          rootfs: { type: 'layers', diff_ids: [layer.digest] },
          history: [{ created_by: 'secret-binder test harness (test/harness/node/images.ts)' }],
        }),
      ),
    );
    const manifest = writeBlob(
      layout,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
        }),
      ),
    );
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            platform: { architecture: 'amd64', os: 'linux' },
            annotations: { 'io.containerd.image.name': spec.reference, 'org.opencontainers.image.ref.name': spec.reference.replace(/^.*:/, '') },
          },
        ],
      }),
    );
    mkdirSync(outDir, { recursive: true });
    const archivePath = join(outDir, archiveName(spec.reference));
    tarDirectory(layout, archivePath);
    return { reference: spec.reference, archivePath, manifestDigest: manifest.digest };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** busybox's applets as symlinks under /bin, for `busybox --list` of the static binary at `busybox`. */
export function busyboxEntries(busybox: string): ImageEntry[] {
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((a) => a.trim())
    .filter((a) => a !== '' && a !== 'busybox');
  return [
    { kind: 'file', path: 'bin/busybox', from: busybox },
    ...applets.map((a): ImageEntry => ({ kind: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    { kind: 'dir', path: 'tmp', mode: 0o1777 },
    { kind: 'dir', path: 'proc' },
    { kind: 'dir', path: 'sys' },
    { kind: 'dir', path: 'dev' },
    { kind: 'dir', path: 'etc' },
    { kind: 'data', path: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
    { kind: 'data', path: 'etc/group', data: 'root:x:0:\nnogroup:x:65534:\n' },
  ];
}
