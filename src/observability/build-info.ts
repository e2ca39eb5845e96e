import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { defineGauge } from './metrics.ts';

/**
 * What a binary is: the project's semantic version (package.json's `version`, the chart's
 * `appVersion`) and the Node.js runtime. `--version` prints it; the controller exposes it as the
 * `secretbinder_build_info` gauge (value 1), as Prometheus exporters conventionally do (ADR 0233).
 */
export interface BuildInfo {
  readonly version: string;
  readonly nodeVersion: string;
}

/**
 * Read once from the package.json beside the sources (`src/` in a checkout, `dist/` in the image:
 * both sit one level below it).
 */
export function readBuildInfo(packageJsonUrl: URL = new URL('../../package.json', import.meta.url)): BuildInfo {
  const manifest = JSON.parse(readFileSync(packageJsonUrl, 'utf8')) as { version?: unknown };
  if (typeof manifest.version !== 'string' || !/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(manifest.version)) {
    throw new Error(`${packageJsonUrl.pathname}: version ${JSON.stringify(manifest.version)} is not a semantic version`);
  }
  return { version: manifest.version, nodeVersion: process.versions.node };
}

/** The line `--version` prints: `<program> <version> (node <version>)`. */
export function versionLine(program: string, info: BuildInfo): string {
  return `${program} ${info.version} (node ${info.nodeVersion})\n`;
}

/** Whether the command line asks for the version only (checked before any other flag is parsed). */
export function wantsVersion(argv: readonly string[]): boolean {
  return argv.includes('--version');
}

/**
 * `secretbinder_build_info{version,node_version} 1`. The two labels take exactly one value each
 * (this process's), so the label set stays closed.
 */
export function registerBuildInfo(registry: Registry, info: BuildInfo): void {
  defineGauge(registry, {
    name: 'secretbinder_build_info',
    help: 'Always 1; the labels say which version of secret-binder and of Node.js this process runs.',
    labels: { version: [info.version], node_version: [info.nodeVersion] },
  }).set({ version: info.version, node_version: info.nodeVersion }, 1);
}
