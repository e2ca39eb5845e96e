import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { readBuildInfo, registerBuildInfo, versionLine } from './build-info.ts';

const packageVersion = (JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { version: string }).version;

function manifest(content: object): URL {
  const file = join(mkdtempSync(join(tmpdir(), 'sb-build-info-')), 'package.json');
  writeFileSync(file, JSON.stringify(content));
  return pathToFileURL(file);
}

describe('build info', () => {
  it("reads the project's semantic version from package.json, and refuses one that is not", () => {
    expect(readBuildInfo()).toEqual({ version: packageVersion, nodeVersion: process.versions.node });
    expect(readBuildInfo(manifest({ version: '1.2.3-rc.1' })).version).toBe('1.2.3-rc.1');
    expect(() => readBuildInfo(manifest({ version: 'latest' }))).toThrow(/"latest" is not a semantic version/);
  });

  it('is exposed as secretbinder_build_info 1 with the version labels', async () => {
    const registry = new Registry();
    registerBuildInfo(registry, { version: '1.2.3', nodeVersion: '24.0.0' });
    expect(await registry.metrics()).toContain('secretbinder_build_info{version="1.2.3",node_version="24.0.0"} 1');
  });

  it('prints one line: program, version, Node version', () => {
    expect(versionLine('secret-binder controller', { version: '1.2.3', nodeVersion: '24.0.0' })).toBe('secret-binder controller 1.2.3 (node 24.0.0)\n');
  });
});
