import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SecretValue } from '../../observability/secret-value.ts';
import { clearFileSet, listFileSet, validateFilePath, writeFileSet } from './atomic-writer.ts';
import type { RenderedFile } from './file-set.ts';

const file = (path: string, content: string, mode = 0o440): RenderedFile => ({ path, mode, content: SecretValue.fromString(content) });

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'atomic-writer-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileSet', () => {
  it('lays out a version directory, a ..data link and one user-visible link per top-level name', async () => {
    const result = await writeFileSet(dir, [file('username', 'alice'), file('tls/tls.crt', 'CERT', 0o444), file('tls/tls.key', 'KEY', 0o400)]);
    expect(result.changed).toBe(true);

    expect(await readFile(join(dir, 'username'), 'utf8')).toBe('alice');
    expect(await readFile(join(dir, 'tls', 'tls.key'), 'utf8')).toBe('KEY');
    expect(await readlink(join(dir, 'username'))).toBe('..data/username');
    expect(await readlink(join(dir, 'tls'))).toBe('..data/tls');
    const version = await readlink(join(dir, '..data'));
    expect(version).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{3}_\w+$/);
    expect((await stat(join(dir, version, 'username'))).mode & 0o7777).toBe(0o440);
    expect((await stat(join(dir, version, 'tls', 'tls.crt'))).mode & 0o7777).toBe(0o444);
    expect((await stat(join(dir, version, 'tls', 'tls.key'))).mode & 0o7777).toBe(0o400);
    expect((await readdir(dir)).sort()).toEqual(['..data', 'tls', 'username', version].sort());
    expect(await listFileSet(dir)).toEqual(['tls/tls.crt', 'tls/tls.key', 'username']);
  });

  it('does nothing when the content, modes and group are unchanged', async () => {
    await writeFileSet(dir, [file('a', '1'), file('b', '2')]);
    const version = await readlink(join(dir, '..data'));
    const result = await writeFileSet(dir, [file('b', '2'), file('a', '1')]);
    expect(result.changed).toBe(false);
    expect(await readlink(join(dir, '..data'))).toBe(version);

    expect((await writeFileSet(dir, [file('a', '1', 0o400), file('b', '2')])).changed).toBe(true);
    expect(await readlink(join(dir, '..data'))).not.toBe(version);
  });

  it('swaps to a new version, drops removed files and removes the old version directory', async () => {
    await writeFileSet(dir, [file('a', 'one'), file('b', 'one'), file('sub/c', 'one')]);
    const first = await readlink(join(dir, '..data'));
    await writeFileSet(dir, [file('a', 'two')]);
    const second = await readlink(join(dir, '..data'));
    expect(second).not.toBe(first);
    expect(await readFile(join(dir, 'a'), 'utf8')).toBe('two');
    expect((await readdir(dir)).sort()).toEqual(['..data', 'a', second].sort());
    await expect(lstat(join(dir, first))).rejects.toThrow(/ENOENT/);
  });

  it('gives files and directories the fsGroup', async () => {
    await writeFileSet(dir, [file('a', 'x'), file('d/b', 'y')], { gid: 4242 });
    const version = await readlink(join(dir, '..data'));
    expect((await stat(join(dir, version, 'a'))).gid).toBe(4242);
    expect((await stat(join(dir, version, 'd'))).gid).toBe(4242);
    expect((await stat(join(dir, version, 'd', 'b'))).gid).toBe(4242);
    expect((await stat(join(dir, version))).gid).toBe(4242);
    // Another group is another version.
    expect((await writeFileSet(dir, [file('a', 'x'), file('d/b', 'y')], { gid: 4243 })).changed).toBe(true);
  });

  it('an empty set empties the volume but keeps the directory', async () => {
    await writeFileSet(dir, [file('a', 'x'), file('d/b', 'y')]);
    expect((await writeFileSet(dir, [])).changed).toBe(true);
    const entries = await readdir(dir);
    expect(entries.filter((entry) => !entry.startsWith('..'))).toEqual([]);
    expect(await listFileSet(dir)).toEqual([]);
    await clearFileSet(dir);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses paths that leave the volume or collide, and leaves the current version in place', async () => {
    await writeFileSet(dir, [file('a', 'keep')]);
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', '..data', '..hidden/x', 'a//b', './a', '']) {
      expect(() => {
        validateFilePath(bad);
      }).toThrow();
      await expect(writeFileSet(dir, [file(bad, 'x')])).rejects.toThrow();
    }
    await expect(writeFileSet(dir, [file('x', '1'), file('x', '2')])).rejects.toThrow(/twice/);
    await expect(writeFileSet(dir, [file('x', '1'), file('x/y', '2')])).rejects.toThrow(/also a directory/);
    expect(await readFile(join(dir, 'a'), 'utf8')).toBe('keep');
    expect((await readdir(dir)).filter((entry) => entry.startsWith('..') && entry !== '..data')).toHaveLength(1);
  });

  it('leaves foreign files alone and replaces a plain file that shadows a name', async () => {
    await writeFile(join(dir, 'a'), 'stale plain file');
    await writeFile(join(dir, 'foreign'), 'not ours');
    await writeFileSet(dir, [file('a', 'new')]);
    expect(await readlink(join(dir, 'a'))).toBe('..data/a');
    expect(await readFile(join(dir, 'foreign'), 'utf8')).toBe('not ours');
  });

  it('a reader never sees files of two versions during 100 rotations', async () => {
    // Big files, so a torn (partly written) file would show; each holds its version number.
    const body = (version: number, name: string): string => `${name}:${version}:`.padEnd(256 * 1024, String(version % 10));
    const set = (version: number): RenderedFile[] => [file('first', body(version, 'first')), file('second', body(version, 'second'))];
    await writeFileSet(dir, set(0));

    // The reader resolves `..data` once per round (as a reloader does: a version directory never
    // changes once linked) and reads both files through it; it also reads one file through the
    // user-visible link, which must always be one whole version.
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const reader = new Worker(
      `
      const { readFileSync, readlinkSync } = require('node:fs');
      const { join } = require('node:path');
      const { workerData, parentPort } = require('node:worker_threads');
      const { dir, stop } = workerData;
      const versionOf = (text, name) => {
        const match = new RegExp('^' + name + ':(\\\\d+):').exec(text);
        if (match === null || text.length !== 256 * 1024) throw new Error('torn ' + name);
        return Number(match[1]);
      };
      const stats = { rounds: 0, mixed: 0, torn: 0, vanished: 0, versions: new Set() };
      while (Atomics.load(stop, 0) === 0) {
        try {
          const version = readlinkSync(join(dir, '..data'));
          const a = versionOf(readFileSync(join(dir, version, 'first'), 'utf8'), 'first');
          const b = versionOf(readFileSync(join(dir, version, 'second'), 'utf8'), 'second');
          if (a !== b) stats.mixed++;
          versionOf(readFileSync(join(dir, 'first'), 'utf8'), 'first');
          stats.versions.add(a);
          stats.rounds++;
        } catch (err) {
          if (err.code === 'ENOENT') stats.vanished++; // the old version was removed under us: retry
          else stats.torn++;
        }
      }
      parentPort.postMessage({ ...stats, versions: stats.versions.size });
      `,
      { eval: true, workerData: { dir, stop } },
    );
    const result = new Promise<{ rounds: number; mixed: number; torn: number; vanished: number; versions: number }>((resolve, reject) => {
      reader.once('message', resolve);
      reader.once('error', reject);
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let version = 1; version <= 100; version++) {
      expect((await writeFileSet(dir, set(version))).changed).toBe(true);
    }
    Atomics.store(stop, 0, 1);
    const stats = await result;
    await reader.terminate();

    expect(stats.mixed).toBe(0);
    expect(stats.torn).toBe(0);
    expect(stats.rounds).toBeGreaterThan(20);
    expect(stats.versions).toBeGreaterThan(1);
    expect(await readFile(join(dir, 'second'), 'utf8')).toBe(body(100, 'second'));
    expect((await readdir(dir)).filter((entry) => entry.startsWith('..'))).toHaveLength(2);
  }, 60_000);
});
