import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { command, root } from './helm.support.ts';

/**
 * The Dockerfile, without a Docker engine (none exists here, and hadolint is on no registry we
 * reach): a static check of what it copies, its base images and its user, then its build step run
 * for real (`npm run build` + the proto copy, into a scratch dir) and both entry points started from
 * that output, as the image starts them.
 */

const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(root, '.dockerignore'), 'utf8');
/** Instructions with their continuation lines joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const args = new Map(
  instructions
    .filter((l) => l.startsWith('ARG '))
    .map((l) => l.slice(4).split('='))
    .map(([k, v]) => [k ?? '', v ?? ''] as const),
);

function expand(text: string): string {
  return text.replace(/\$\{(\w+)\}/g, (_, name: string) => args.get(name) ?? '');
}

/** Paths the build context holds after .dockerignore (this file: "**" then "!path" lines). */
const included = dockerignore
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l.startsWith('!'))
  .map((l) => l.slice(1));

describe('Dockerfile (static)', () => {
  it('builds FROM pinned images, never latest', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM ')).map((l) => expand(l.split(/\s+/)[1] ?? ''));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const image of froms) {
      expect(image).toMatch(/^[\w./-]+(:[\w.-]+|@sha256:[a-f0-9]{64})$/);
      expect(image).not.toMatch(/:latest$/);
    }
  });

  it('copies only sources that exist and that .dockerignore lets into the context', () => {
    const copies = instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const sources = copy.split(/\s+/).slice(1, -1).filter((s) => !s.startsWith('--'));
      for (const source of sources) {
        expect({ source, exists: existsSync(join(root, source)) }).toEqual({ source, exists: true });
        expect({ source, inContext: included.some((p) => source === p || source.startsWith(`${p}/`)) }).toEqual({ source, inContext: true });
      }
    }
  });

  it('runs as a non-root user by default and starts the controller', () => {
    const lastStage = instructions.slice(instructions.map((l) => l.startsWith('FROM ')).lastIndexOf(true));
    const user = lastStage.filter((l) => l.startsWith('USER ')).at(-1);
    expect(user).toBeDefined();
    const uid = Number((user ?? '').slice(5).split(':')[0]);
    expect(uid).toBeGreaterThan(0);
    expect(lastStage).toContain('ENTRYPOINT ["node"]');
    expect(lastStage).toContain('CMD ["/app/dist/main.js"]');
    // No dev dependencies in the image: the runtime stage copies the pruned node_modules.
    expect(instructions.some((l) => l.includes('npm prune --omit=dev'))).toBe(true);
  });

  it('copies the CSI protos the node plugin loads next to its module', () => {
    const protos = readdirSync(join(root, 'src/delivery/csi')).filter((f) => f.endsWith('.proto')).sort();
    expect(protos).toEqual(['csi.proto', 'pluginregistration.proto']);
    expect(dockerfile).toContain('cp src/delivery/csi/*.proto dist/delivery/csi/');
  });
});

describe('the image build step, run here', () => {
  // /app/dist and /app/package.json of the image (the binaries read their version from it).
  const app = join(root, '.harness', `packaging-app-${process.pid}`);
  const out = join(app, 'dist');

  beforeAll(async () => {
    // The Dockerfile's `npm run build` (tsc -p tsconfig.build.json), into a scratch dir under the
    // repo so the output resolves node_modules as /app/dist does in the image.
    const built = await command(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', out]);
    if (built.code !== 0) throw new Error(`npm run build fails: ${built.stdout}${built.stderr}`);
    for (const proto of ['csi.proto', 'pluginregistration.proto']) copyFileSync(join(root, 'src/delivery/csi', proto), join(out, 'delivery/csi', proto));
    copyFileSync(join(root, 'package.json'), join(app, 'package.json'));
  }, 180_000);

  afterAll(() => { rmSync(app, { recursive: true, force: true }); });

  it('every entry point prints the version of package.json with --version', async () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    for (const [entry, program] of [['main.js', 'controller'], ['delivery/node-plugin.main.js', 'node plugin'], ['release-check/release-check.main.js', 'release check']] as const) {
      const result = await command(process.execPath, [join(out, entry), '--version']);
      expect({ code: result.code, stdout: result.stdout.split(' (')[0] }).toEqual({ code: 0, stdout: `secret-binder ${program} ${version}` });
    }
  });

  it('emits the entry points the chart starts', () => {
    expect(existsSync(join(out, 'main.js'))).toBe(true);
    expect(existsSync(join(out, 'delivery/node-plugin.main.js'))).toBe(true);
  });

  it('the controller entry point parses its flags (a bad flag exits 2 with a message)', async () => {
    const result = await command(process.execPath, [join(out, 'main.js'), '--no-such-flag']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('secret-binder:');
  });

  it('the node plugin entry point loads its protos, serves CSI on its socket and stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-image-'));
    const socket = join(dir, 'csi.sock');
    const child = spawn(
      process.execPath,
      [join(out, 'delivery/node-plugin.main.js'), '--node-name=node-1', `--csi-socket=${socket}`, '--registration-socket=', '--broker-url=http://127.0.0.1:9', `--token-file=${join(dir, 'token')}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code); }));
    try {
      const deadline = Date.now() + 20_000;
      while (!log.includes('node plugin started') && Date.now() < deadline && child.exitCode === null) await sleep(100);
      expect(log).toContain('node plugin started');
      expect(existsSync(socket)).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });
});
