import { describe, expect, it } from '@jest/globals';
import {
  annotationsIn,
  checkAnnotations,
  checkFlags,
  checkLinks,
  checkReasons,
  checkRepository,
  checkValues,
  flagsIn,
  reasonsIn,
  repositoryFacts,
  slug,
  type Doc,
} from './docs-checks.ts';

/** The docs checks (ADR 0191): the repository passes, and each check finds a planted mismatch. */

const root = process.cwd();

describe('the documentation is true to the code', () => {
  it('has no finding (reasons, annotations, flags, values paths, links)', () => {
    const findings = checkRepository(root).map((f) => `${f.file}:${String(f.line)}: ${f.message}`);
    expect(findings).toEqual([]);
  });

  it('reads real facts (so the check above cannot pass on nothing)', () => {
    const facts = repositoryFacts(root);
    expect(facts.reasons).toContain('AuthFailed');
    expect(facts.reasons.length).toBeGreaterThan(15);
    expect(facts.annotations).toEqual(expect.arrayContaining(['inject', 'bindings', 'refresh-requested']));
    expect(facts.flags['controller']).toEqual(expect.arrayContaining(['lease-duration', 'broker-address']));
    expect(facts.flags['node-plugin']).toEqual(expect.arrayContaining(['tmpfs-size', 'broker-url']));
    expect(facts.docs.map((d) => d.path)).toEqual(expect.arrayContaining(['README.md', 'docs/troubleshooting.md', 'docs/values.md', 'docs/configuration.md']));
  });
});

describe('each docs check finds a planted mismatch, with file and line', () => {
  const guide = (rows: string): Doc => ({ path: 'docs/troubleshooting.md', text: `# T\n\n| Reason | Do |\n|---|---|\n${rows}\n` });

  it('reasons: unset, undocumented, and invented ones', () => {
    const sources = [{ path: 'src/a.ts', text: "reason: 'AuthFailed'" }];
    expect(checkReasons({ reasons: ['AuthFailed'], sources, docs: [guide('| `AuthFailed` | fix |')] })).toEqual([]);
    expect(checkReasons({ reasons: ['AuthFailed', 'Pending'], sources, docs: [guide('| `AuthFailed` | fix |')] }).map((f) => f.message)).toEqual([
      'reason Pending is in the closed list but no code sets it: set it where it helps, or remove it',
      'reason Pending is not documented in the troubleshooting guide',
    ]);
    expect(checkReasons({ reasons: ['AuthFailed'], sources, docs: [guide('| `AuthFailed` | fix |\n| `CredentialsNotFound` | x |')] })).toEqual([
      { file: 'docs/troubleshooting.md', line: 6, message: '`CredentialsNotFound` is not a reason the code can report' },
    ]);
  });

  it('annotations: unknown in a doc, undocumented in the code', () => {
    const docs = [{ path: 'docs/x.md', text: 'label `secretbinder.dev/inject`\nand `secretbinder.dev/mount-path.web`\nand secretbinder.dev/injekt' }];
    expect(checkAnnotations({ annotations: ['inject', 'mount-path'], docs })).toEqual([{ file: 'docs/x.md', line: 3, message: 'secretbinder.dev/injekt is not a label or annotation the code knows' }]);
    expect(checkAnnotations({ annotations: ['inject', 'mount-path', 'injekt', 'audit'], docs }).map((f) => f.message)).toEqual(['secretbinder.dev/audit is defined in the code but no document names it']);
  });

  it('flags: unknown and undocumented, per program', () => {
    const docs = [{ path: 'docs/configuration.md', text: '# C\n\n## The controller (`controller`)\n\n| `--lease-duration` | x |\n| `--lease-time` | y |\n' }];
    expect(checkFlags({ flags: { controller: ['lease-duration', 'renew-deadline'] }, docs })).toEqual([
      { file: 'docs/configuration.md', line: 6, message: '--lease-time is not a flag of controller' },
      { file: 'docs/configuration.md', line: 3, message: '--renew-deadline of controller is not documented' },
    ]);
    expect(checkFlags({ flags: { 'node-plugin': ['x'] }, docs })[0]?.message).toBe('no section names `node-plugin`');
  });

  it('values: a path that does not exist, a leaf the reference misses', () => {
    const values = { nodePlugin: { tmpfsSize: '4Mi', resources: { requests: { cpu: '10m' } } }, webhook: { enabled: true } };
    const reference = { path: 'docs/values.md', text: '## `nodePlugin`\n| `nodePlugin.tmpfsSize` | 4Mi |\n| `nodePlugin.resources` | {} |\n## `webhook`\n| `webhook.enabled` | true |\n## `broker`' };
    expect(checkValues({ values, docs: [reference] })).toEqual([]);
    const doc = { path: 'docs/t.md', text: 'raise\n`nodePlugin.tmpfsSize=8Mi` or `controller.auditLog`, not `nodePlugin.maxAge`' };
    expect(checkValues({ values, docs: [reference, doc] })).toEqual([{ file: 'docs/t.md', line: 2, message: 'values path nodePlugin.maxAge does not exist in charts/secret-binder/values.yaml' }]);
    expect(checkValues({ values: { ...values, broker: { port: 1 } }, docs: [reference] }).map((f) => f.message)).toEqual(['values path broker.port is not in the values reference']);
  });

  it('links: a missing file and a missing anchor; fenced blocks and URLs are not links', () => {
    const files: Record<string, string> = { '/r/docs/a.md': '# A\n## Two words here\n', '/r/README.md': '' };
    const fs = { exists: (p: string) => p in files, read: (p: string) => files[p] ?? '' };
    const doc = { path: 'README.md', text: 'see [a](docs/a.md#two-words-here), [b](docs/b.md)\n[c](docs/a.md#three)\n```\n[d](nowhere.md)\n```\n[e](https://example.com/x)' };
    expect(checkLinks([doc], '/r', fs)).toEqual([
      { file: 'README.md', line: 1, message: 'link target docs/b.md does not exist' },
      { file: 'README.md', line: 2, message: 'link docs/a.md#three: docs/a.md has no heading #three' },
    ]);
    expect(slug('The `image` (build, push) — 3 ways')).toBe('the-image-build-push--3-ways');
  });

  it('reads flags, annotations and reasons the way the sources write them', () => {
    expect(flagsIn("const options = {\n  kubeconfig: { type: 'string' },\n  'lease-duration': { type: 'string', default: '1' },\n}")).toEqual(['kubeconfig', 'lease-duration']);
    expect(
      annotationsIn(
        "const a = `${driverName}/inject`; const b = 'secretbinder.dev/refresh-requested'; const v = 'secretbinder.dev/v1alpha1'; " +
          "const m = `${driverName}/mount-path.${binding}`; const s = '/plugins/secretbinder.dev/csi.sock'; const i = 'secretbinder.dev/audit/v1';",
      ),
    ).toEqual(['inject', 'refresh-requested', 'mount-path']);
    const { reasons, withoutList } = reasonsIn("export const reasons = [\n  /** 'NotThis' */\n  'A',\n  'B',\n] as const;\nreturn 'A';");
    expect(reasons).toEqual(['A', 'B']);
    expect(withoutList).not.toContain("'B'");
  });
});
