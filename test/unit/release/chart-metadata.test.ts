import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/**
 * Release metadata that must agree (ADR 0233): package.json's version is the chart's appVersion;
 * both versions are semantic; the Artifact Hub annotations of Chart.yaml name the image of that
 * version, exactly the CRDs of crds/, the license of package.json; the CHANGELOG follows Keep a
 * Changelog and has a section for the unreleased work or the current version.
 */

const root = process.cwd();
const semver = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; license: string };
const chart = parse(readFileSync(join(root, 'charts/secret-binder/Chart.yaml'), 'utf8')) as { version: string; appVersion: string; annotations: Record<string, string> };
const annotation = (name: string): unknown => parse(chart.annotations[`artifacthub.io/${name}`] ?? 'null');
const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8');

describe('release metadata', () => {
  it('versions: semantic, the app version equal in package.json and Chart.yaml', () => {
    expect(pkg.version).toMatch(semver);
    expect(chart.version).toMatch(semver);
    expect(chart.appVersion).toBe(pkg.version);
  });

  it('Artifact Hub: the image of appVersion for amd64 and arm64, the CRDs of crds/, the license, valid changes', () => {
    const images = annotation('images');
    expect(images).toEqual([{ name: 'secret-binder', image: `ghcr.io/secret-binder/secret-binder:${chart.appVersion}`, platforms: ['linux/amd64', 'linux/arm64'] }]);
    const crds = readdirSync(join(root, 'crds'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => parse(readFileSync(join(root, 'crds', f), 'utf8')) as { metadata: { name: string }; spec: { names: { kind: string }; versions: { name: string }[] } })
      .map((c) => ({ kind: c.spec.names.kind, name: c.metadata.name, version: c.spec.versions.map((v) => v.name).join(',') }));
    const listed = annotation('crds') as { kind: string; name: string; version: string; description: string }[];
    expect(listed.map(({ kind, name, version }) => ({ kind, name, version })).sort((a, b) => a.kind.localeCompare(b.kind))).toEqual(crds.sort((a, b) => a.kind.localeCompare(b.kind)));
    for (const c of listed) expect(c.description.length).toBeGreaterThan(10);
    expect(chart.annotations['artifacthub.io/license']).toBe(pkg.license);
    const changes = annotation('changes') as { kind: string; description: string }[];
    expect(changes.length).toBeGreaterThan(0);
    for (const c of changes) expect(['added', 'changed', 'deprecated', 'removed', 'fixed', 'security']).toContain(c.kind);
    expect((annotation('crdsExamples') as { apiVersion: string }[]).every((e) => e.apiVersion === 'secretbinder.dev/v1alpha1')).toBe(true);
  });

  it('CHANGELOG.md: Keep a Changelog headings, every version linked, the current version or Unreleased on top', () => {
    const versions = [...changelog.matchAll(/^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$/gm)].map((m) => ({ name: m[1] ?? '', date: m[2] }));
    expect(versions.length).toBeGreaterThan(0);
    expect(['Unreleased', pkg.version]).toContain(versions[0]?.name);
    for (const v of versions) {
      if (v.name !== 'Unreleased') {
        expect(v.name).toMatch(semver);
        expect(v.date).toBeDefined();
      }
      expect(changelog).toMatch(new RegExp(`^\\[${v.name.replace(/\./g, '\\.')}\\]: https://`, 'm'));
    }
    expect(versions.map((v) => v.name)).toContain(pkg.version);
    const sections = [...changelog.matchAll(/^### (.+)$/gm)].map((m) => m[1]);
    for (const s of sections) expect(['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security']).toContain(s);
  });
});
