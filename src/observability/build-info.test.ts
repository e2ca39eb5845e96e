import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { readBuildInfo, registerBuildInfo, versionLine } from './build-info.ts';

const root = process.cwd();
const packageVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

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

  it.each([
    ['controller', 'src/main.ts'],
    ['node plugin', 'src/delivery/node-plugin.main.ts'],
    ['release check', 'src/release-check/release-check.main.ts'],
  ])('the %s prints its version with --version and exits 0', (program, entry) => {
    const out = execFileSync(process.execPath, [join(root, entry), '--version'], { encoding: 'utf8' });
    expect(out).toBe(versionLine(`secret-binder ${program}`, readBuildInfo()));
    expect(out).toMatch(new RegExp(`^secret-binder ${program} ${packageVersion.replace(/\./g, '\\.')} \\(node \\d+\\.\\d+\\.\\d+\\)\\n$`));
  });
});
