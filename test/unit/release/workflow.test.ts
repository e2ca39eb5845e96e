import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

/**
 * The release workflow (ADR 0234) cannot run here; it must still be correct. actionlint (built from
 * its Go module by test/harness/install/go-tools.sh, with Debian's shellcheck for the `run:`
 * scripts) checks every workflow, and the release workflow is read for what a release must do.
 */

const root = process.cwd();
const cache = process.env['SECRET_BINDER_CACHE'] ?? join(homedir(), '.cache', 'secret-binder');
const actionlint = join(cache, 'actionlint', process.env['SECRET_BINDER_ACTIONLINT_VERSION'] ?? 'v1.7.12', 'bin', 'actionlint');
const workflows = join(root, '.github', 'workflows');

function lint(dir: string): { status: number | null; output: string } {
  if (!existsSync(actionlint)) throw new Error(`${actionlint} is missing: run test/harness/install/go-tools.sh`);
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, f));
  const result = spawnSync(actionlint, ['-no-color', '-oneline', ...files], { cwd: dir, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface Step {
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
}
interface Job {
  readonly needs?: string | string[];
  readonly permissions?: Record<string, string>;
  readonly steps: Step[];
}
const workflow = parse(readFileSync(join(workflows, 'release.yml'), 'utf8')) as { on: { push: { tags: string[] } }; permissions: Record<string, string>; jobs: Record<string, Job> };
const job = (name: string): Job => {
  const found = workflow.jobs[name];
  if (found === undefined) throw new Error(`release.yml has no job ${name}`);
  return found;
};
const runs = (j: Job): string => j.steps.map((s) => s.run ?? '').join('\n');
const uses = (j: Job, action: string): Step | undefined => j.steps.find((s) => s.uses?.startsWith(`${action}@`) === true);

describe('the release workflow', () => {
  it('passes actionlint (shellcheck included), and actionlint finds a planted mistake', () => {
    expect(readdirSync(workflows)).toContain('release.yml');
    expect(lint(workflows)).toEqual({ status: 0, output: '' });
    const planted = mkdtempSync(join(tmpdir(), 'sb-actionlint-'));
    writeFileSync(join(planted, 'bad.yml'), 'on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nothing }}\n');
    const bad = lint(planted);
    expect(bad.status).not.toBe(0);
    expect(bad.output).toMatch(/property "nothing" is not defined/);
  });

  it('runs on version tags and first runs the whole CI on a full clone, checking the tag against package.json', () => {
    expect(workflow.on.push.tags.every((t) => t.startsWith('v[0-9]+.'))).toBe(true);
    expect(workflow.permissions).toEqual({ contents: 'read' });
    const test = job('test');
    expect(uses(test, 'actions/checkout')?.with?.['fetch-depth']).toBe(0);
    expect(runs(test)).toMatch(/bash \.ci\/run/);
    expect(runs(test)).toMatch(/package\.json/);
    expect(runs(test)).toMatch(/npm run -s audit:prod/);
  });

  it('builds the image from the Dockerfile for amd64 and arm64, pushes it with an SBOM and provenance, signs it keyless', () => {
    const image = job('image');
    expect(image.needs).toBe('test');
    expect(image.permissions).toMatchObject({ 'id-token': 'write', packages: 'write', attestations: 'write' });
    const build = uses(image, 'docker/build-push-action');
    expect(build?.with).toMatchObject({ file: 'Dockerfile', platforms: 'linux/amd64,linux/arm64', push: true, sbom: true, provenance: 'mode=max' });
    expect(runs(image)).toMatch(/cosign sign --yes "\$IMAGE@\$DIGEST"/);
    expect(uses(image, 'actions/attest-build-provenance')).toBeDefined();
    expect(uses(image, 'sigstore/cosign-installer')).toBeDefined();
  });

  it('pushes the chart as an OCI artifact pinned to the image digest, signs it keyless, attests it; then the release notes', () => {
    const chart = job('chart');
    expect(chart.needs).toEqual(['test', 'image']);
    expect(chart.permissions).toMatchObject({ 'id-token': 'write', packages: 'write' });
    expect(runs(chart)).toMatch(/helm push "dist\/secret-binder-\$VERSION\.tgz" "oci:\/\/\$CHART_REPOSITORY"/);
    expect(runs(chart)).toMatch(/digest: \\"\$IMAGE_DIGEST\\"/);
    expect(runs(chart)).toMatch(/cosign sign --yes "\$CHART_REPOSITORY\/secret-binder@\$DIGEST"/);
    expect(uses(chart, 'actions/attest-build-provenance')).toBeDefined();
    expect(runs(job('release'))).toMatch(/CHANGELOG\.md/);
  });
});
