import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import AjvDraft04 from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import { AppsV1Api } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { writeKvSecret } from '../../harness/openbao.ts';
import { eventually } from '../support/cluster.ts';
import { allRuns, leaks, runCli, startCli, type CliRun } from './cli.support.ts';
import { startCliWorld, type CliWorld } from './cli-world.ts';

/**
 * `kubectl-secretbinder` as a process against the real API server and a running controller
 * (issue #19): each command's output and exit code, bad input included, and no secret value (nor
 * any 8-character fragment of one) in any output format.
 */

let world: CliWorld;
const cli = (...args: string[]): Promise<CliRun> => runCli(args, { kubeconfig: world.kubeconfig });

beforeAll(async () => {
  world = await startCliWorld();
}, 180_000);

afterAll(async () => {
  await world.close();
}, 120_000);

interface Explained {
  pod: { name: string; node: string };
  containers: {
    name: string;
    kind: string;
    nothing?: { state: string; message: string };
    bindings: { binding: string; state: string; reason?: string; delivered: string; latestContentHmac?: string; files: { fullPath: string; mode: number; format: string; sources: { key: string; property?: string; resolvedVersions: string[] }[] }[] }[];
  }[];
}

describe('explain', () => {
  it('tells per container what it gets, from where, and whether it is current — or why it gets nothing', async () => {
    const run = await cli('explain', 'pod/web', '-o', 'json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const e = JSON.parse(run.stdout) as Explained;
    expect(e.pod).toMatchObject({ name: 'web', node: world.delivery.nodes[0]?.node });
    const app = e.containers.find((c) => c.name === 'app');
    expect(app?.bindings).toHaveLength(1);
    const delivered = app?.bindings[0];
    expect(delivered).toMatchObject({ binding: 'db', state: 'Delivered', delivered: 'current' });
    expect(delivered?.latestContentHmac).toBe((await world.delivery.bindingStatus('db'))?.contentHmac);
    expect(delivered?.files.map((f) => [f.fullPath, f.mode, f.format])).toEqual([
      ['/var/run/secrets/app/db/password', 0o440, 'raw'],
      ['/var/run/secrets/app/config.json', 0o400, 'json'],
    ]);
    expect(delivered?.files[0]?.sources).toEqual([{ key: world.dbKey, property: 'password', requested: 'latest', resolvedVersions: ['1'] }]);
    expect(e.containers.find((c) => c.name === 'sidecar')).toMatchObject({ bindings: [], nothing: { state: 'NotListed' } });
    // A container that mounts the volume without being listed: the broker refuses the whole volume.
    const nosy = JSON.parse((await cli('explain', 'pod/nosy', '-o', 'json')).stdout) as Explained;
    for (const name of ['app', 'logger']) {
      expect(nosy.containers.find((c) => c.name === name)?.bindings[0]).toMatchObject({ binding: 'db', state: 'Denied', reason: 'ContainerNotAllowed', delivered: 'none' });
    }
  });

  it('names the reason from the closed list for a failing binding and a missing one', async () => {
    const lost = JSON.parse((await cli('explain', 'pod/lost', '-o', 'json')).stdout) as Explained;
    expect(lost.containers[0]?.bindings[0]).toMatchObject({ binding: 'broken', state: 'Failing', reason: 'KeyNotFound', delivered: 'none' });
    const ghost = parse((await cli('explain', 'ghost', '-o', 'yaml')).stdout) as Explained;
    expect(ghost.containers[0]?.bindings[0]).toMatchObject({ binding: 'nothing-here', state: 'Denied', reason: 'NotEntitled' });
  });

  it('prints a table by default', async () => {
    const run = await cli('explain', 'pod/web');
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe(`Pod ${world.ns}/web on node ${world.delivery.nodes[0]?.node ?? ''} (Pending, service account web)`);
    expect(lines.find((l) => l.startsWith('app '))).toMatch(/^app\s+app\s+db\s+Delivered\s+-\s+SecretBackend\/backend\s+hmac-sha256:[0-9a-f]{12}\s+current\s+\d+[smh] ago\s+2 file\(s\) at \/var\/run\/secrets\/app$/);
    expect(lines.find((l) => l.startsWith('sidecar '))).toMatch(/NotListed/);
    expect(run.stdout).toContain(`/var/run/secrets/app/config.json[user]`);
  });

  it('fails with one line and a distinct exit code on bad input', async () => {
    const unknown = await cli('explain', 'pod/nope');
    expect([unknown.code, unknown.stdout, unknown.stderr.trim().split('\n').length]).toEqual([3, '', 1]);
    expect(unknown.stderr).toMatch(/^error: Error from server \(NotFound\): pods "nope" in namespace "cli-app-[0-9a-f]+": .*not found/);
    const malformed = await cli('explain', 'deployment/web');
    expect([malformed.code, malformed.stderr]).toEqual([2, 'error: "deployment/web" is not a pod reference (expected pod/NAME)\n']);
    const format = await cli('explain', 'pod/web', '-o', 'wide');
    expect([format.code, format.stderr]).toEqual([2, 'error: unsupported output format "wide" (one of: table, json, yaml)\n']);
    const flag = await cli('explain', 'pod/web', '--bogus');
    expect([flag.code, flag.stderr]).toEqual([2, "error: unknown option '--bogus'\n"]);
    const context = await cli('explain', 'pod/web', '--context', 'elsewhere');
    expect([context.code, context.stderr]).toEqual([2, 'error: context "elsewhere" does not exist in the kubeconfig\n']);
  });

  it('refuses without rights, and works with the chart\'s secret-binder-viewer role', async () => {
    const denied = await runCli(['explain', 'pod/web', '-n', world.ns], { kubeconfig: world.nobodyKubeconfig });
    expect(denied.code).toBe(4);
    expect(denied.stderr).toMatch(/^error: Error from server \(Forbidden\): pods "web" is forbidden: User "system:serviceaccount:cli-app-[0-9a-f]+:nobody" cannot get resource "pods"/);
    expect(denied.stderr.trim().split('\n')).toHaveLength(1);
    const viewer = await runCli(['explain', 'pod/web', '-n', world.ns, '-o', 'json'], { kubeconfig: world.viewerKubeconfig });
    expect([viewer.code, viewer.stderr]).toEqual([0, '']);
  });

  it('has help', async () => {
    const help = await cli('explain', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: kubectl-secretbinder explain [options] <pod>');
  });
});

interface Consumers {
  consumers: { namespace: string; binding: string; pod: string; container: string; node: string; workload: string; delivered: string; keys: string[] }[];
}

describe('who-uses', () => {
  it('lists every consuming pod, container and node of a binding, and of a backend key', async () => {
    const run = await cli('who-uses', 'secretbinding/db', '-o', 'json');
    expect([run.code, run.stderr]).toEqual([0, '']);
    const node = world.delivery.nodes[0]?.node;
    const expected = ['api', 'web'].map((pod) => ({ namespace: world.ns, binding: 'db', pod, container: 'app', node, workload: `Pod/${pod}`, delivered: 'current', keys: [world.dbKey] }));
    expect((JSON.parse(run.stdout) as Consumers).consumers).toMatchObject(expected);
    const byKey = await cli('who-uses', '--backend', 'backend', '--key', world.dbKey, '-o', 'yaml');
    expect((parse(byKey.stdout) as Consumers).consumers).toMatchObject(expected);
    const allNamespaces = await cli('who-uses', '--backend', 'backend', '--key', world.dbKey, '-A', '-o', 'json');
    expect((JSON.parse(allNamespaces.stdout) as Consumers).consumers).toMatchObject(expected);
    const none = await cli('who-uses', '--backend', 'backend', '--key', 'no/such/key');
    expect([none.code, none.stdout]).toEqual([0, 'No consumers.\n']);
  });

  it('prints a table, only the stale with --stale, and a Graphviz graph with -o dot', async () => {
    const table = await cli('who-uses', 'db');
    expect(table.stdout.split('\n')[0]).toMatch(/^NAMESPACE\s+BINDING\s+POD\s+CONTAINER\s+NODE\s+WORKLOAD\s+DELIVERED\s+LATEST$/);
    expect(table.stdout).toMatch(/\sweb\s+app\s+\S+\s+Pod\/web\s+current\s+hmac-sha256:[0-9a-f]{12}\n/);
    expect((await cli('who-uses', 'secretbinding/db', '--stale')).stdout).toBe('No stale consumers.\n');
    const dot = await cli('who-uses', 'secretbinding/db', '-o', 'dot');
    expect(dot.code).toBe(0);
    expect(dot.stdout).toMatch(/^digraph secretbinder \{/);
    expect(dot.stdout).toContain(`"backend:${world.ns}/backend" -> "key:${world.ns}/backend:${world.dbKey}";`);
    expect(dot.stdout).toContain(`"key:${world.ns}/backend:${world.dbKey}" -> "binding:${world.ns}/db";`);
    expect(dot.stdout).toContain(`"binding:${world.ns}/db" -> "pod:${world.ns}/web";`);
    expect(dot.stdout).toContain(`"pod:${world.ns}/web" -> "container:${world.ns}/web/app";`);
  });

  it('--watch keeps the table live as consumers come and go', async () => {
    const watch = startCli(['who-uses', 'secretbinding/db', '--watch'], { kubeconfig: world.kubeconfig });
    try {
      await watch.waitFor(' web ', 60_000);
      expect(watch.output()).not.toContain(' late ');
      const side = world.delivery.nodes[0];
      await world.delivery.core.createNamespacedPod({
        namespace: world.ns,
        body: {
          metadata: { name: 'late', labels: { app: 'web' } },
          spec: { nodeName: side?.node, serviceAccountName: 'web', automountServiceAccountToken: false, containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 's', mountPath: '/s' }] }], volumes: [{ name: 's', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } } }] },
        },
      });
      await watch.waitFor(' late ', 60_000);
      await world.delivery.core.deleteNamespacedPod({ namespace: world.ns, name: 'late', gracePeriodSeconds: 0 });
      // A third table, without the pod again.
      await eventually('the table without late', () => Promise.resolve(/# .*\n(?:(?!# )[^\n]*\n)*$/.exec(watch.output())?.[0].includes(' late ') === false && watch.output().split('\n# ').length >= 3 ? true : undefined), 60_000);
    } finally {
      const run = await watch.stop();
      expect(run.code).toBe(0);
    }
  });

  it('fails with one line on bad input', async () => {
    const unknown = await cli('who-uses', 'secretbinding/nope');
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/^error: Error from server \(NotFound\): secretbindings.secretbinder.dev "nope" in namespace "cli-app-[0-9a-f]+": .*\n$/);
    const neither = await cli('who-uses');
    expect([neither.code, neither.stderr]).toEqual([2, 'error: give secretbinding/NAME, or --backend NAME and --key PATH\n']);
    const denied = await runCli(['who-uses', 'secretbinding/db', '-n', world.ns], { kubeconfig: world.nobodyKubeconfig });
    expect(denied.code).toBe(4);
    expect(denied.stderr.trim().split('\n')).toHaveLength(1);
  });
});

const fixtures = join('test', 'integration', 'cli', 'fixtures', 'sprawl');
/** The made-up credentials of the sprawl fixture files (each matches its format, opens nothing). */
const fixtureSecrets = [
  'AKIAQX7RZK3MT5WB2N4H',
  'hunter2-Plaintext-Qw9',
  'Zx8vKq3mWp7r',
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjbGktZml4dHVyZSIsIm5hbWUiOiJGaXh0dXJlIn0.q7Rk2vTn9XwZ4bLmP3sYc8dHf6GjK1aNe5Uo0iVy',
  'n8Vq2LxR7tYp4KwZ9sMb3HdF',
  'ghp_R4nd0mF1xtureT0kenAbCdEfGhIjKlMnOpQr',
  'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu',
];

interface Findings {
  findings: { rule: string; severity: string; location: { kind: string; namespace: string; name: string; container?: string; fieldPath: string; file?: string; line?: number }; suggestion?: { kind: string; spec: { containers: string[]; files: { key: string }[] } } }[];
  summary: Record<string, number>;
}

const short = (f: Findings['findings'][number]): string => `${f.rule} ${f.severity} ${f.location.kind}/${f.location.name} ${f.location.container ?? '-'} ${f.location.file ?? ''}:${String(f.location.line ?? '-')} ${f.location.fieldPath}`;

describe('audit sprawl', () => {
  it('reports each known finding of the fixture manifests, with its location and a suggested SecretBinding', async () => {
    const run = await cli('audit', 'sprawl', '-f', join(fixtures, 'findings'), '-o', 'json');
    expect([run.code, run.stderr]).toEqual([0, '']);
    const result = JSON.parse(run.stdout) as Findings;
    const d = `${fixtures}/findings/deployment.yaml`;
    const h = `${fixtures}/findings/helm-output.yaml`;
    const web = 'spec.template.spec.containers[0]';
    expect(result.findings.map(short).sort()).toEqual([
      `SBS001 high Deployment/shop web ${d}:19 ${web}.env[0].value`,
      `SBS001 high Deployment/shop web ${d}:23 ${web}.env[2].value`,
      `SBS001 high CronJob/report report ${h}:20 spec.jobTemplate.spec.template.spec.containers[0].env[0].value`,
      `SBS001 high Pod/debug shell ${h}:47 spec.containers[0].env[0].value`,
      `SBS002 high Deployment/shop web ${d}:21 ${web}.env[1].value`,
      `SBS003 medium CronJob/report report ${h}:22 spec.jobTemplate.spec.template.spec.containers[0].env[1].value`,
      `SBS004 medium Deployment/shop web ${d}:28 ${web}.env[4].valueFrom.secretKeyRef`,
      `SBS005 medium Deployment/shop web ${d}:30 ${web}.envFrom[0].secretRef`,
      `SBS006 low Deployment/shop web ${d}:35 spec.template.spec.volumes[0].secret`,
      `SBS007 low Secret/legacy-api - ${h}:28 metadata.name`,
      `SBS008 high Secret/legacy-api - ${h}:28 data`,
    ].sort());
    expect(result.summary).toEqual({ high: 6, medium: 3, low: 2 });
    const keyRef = result.findings.find((f) => f.rule === 'SBS004');
    expect(keyRef?.suggestion).toEqual({
      apiVersion: 'secretbinder.dev/v1alpha1', kind: 'SecretBinding', metadata: { name: 'shop-secrets', namespace: 'retail' },
      spec: { backendRef: { kind: 'SecretBackend', name: 'my-backend' }, podSelector: { matchLabels: { app: 'shop' } }, containers: ['web'], files: [{ path: 'webhook-secret', key: 'retail/stripe', property: 'webhook-secret' }] },
    });
  });

  it('finds nothing in the clean set (no false positive)', async () => {
    const run = await cli('audit', 'sprawl', '-f', join(fixtures, 'clean'), '--fail-on', 'low');
    expect([run.code, run.stdout, run.stderr]).toEqual([0, 'No findings.\n', '']);
  });

  it('writes SARIF 2.1.0 that validates against the schema, and gates CI with --fail-on', async () => {
    const run = await cli('audit', 'sprawl', '-f', join(fixtures, 'findings'), '-o', 'sarif', '--fail-on', 'high');
    expect(run.code).toBe(5);
    expect(run.stderr).toBe('error: 6 finding(s) at or above high\n');
    const schema = JSON.parse(readFileSync(join('test', 'integration', 'cli', 'sarif-schema-2.1.0-rtm.5.json'), 'utf8')) as object;
    // The schema's `language` pattern is not valid with the u flag (an unescaped `]`): plain RegExps.
    const ajv = new AjvDraft04.default({ allErrors: true, strict: false, unicodeRegExp: false });
    addFormats.default(ajv);
    const validate = ajv.compile(schema);
    const sarif = JSON.parse(run.stdout) as { version: string; runs: { results: { ruleId: string; locations: { physicalLocation?: { region?: { startLine: number } } }[] }[] }[] };
    expect(validate(sarif) ? [] : validate.errors).toEqual([]);
    expect(sarif.version).toBe('2.1.0');
    expect(sarif.runs[0]?.results).toHaveLength(11);
    // The validator can fail: a result without its required message is refused.
    const broken = JSON.parse(run.stdout) as { runs: { results: Record<string, unknown>[] }[] };
    delete broken.runs[0]?.results[0]?.['message'];
    expect(validate(broken)).toBe(false);
    const medium = await cli('audit', 'sprawl', '-f', join(fixtures, 'findings', 'deployment.yaml'), '--fail-on', 'medium', '-o', 'yaml');
    expect(medium.code).toBe(5);
    expect((parse(medium.stdout) as Findings).summary).toEqual({ high: 3, medium: 2, low: 1 });
  });

  it('reads helm template output from stdin and refuses an invalid manifest with one line', async () => {
    const stdin = await runCli(['audit', 'sprawl', '-f', '-', '-o', 'json'], { kubeconfig: world.kubeconfig, stdin: readFileSync(join(fixtures, 'findings', 'helm-output.yaml'), 'utf8') });
    expect((JSON.parse(stdin.stdout) as Findings).findings.map((f) => `${f.rule} ${f.location.file ?? ''}:${String(f.location.line)}`).sort()).toEqual(['SBS001 <stdin>:20', 'SBS001 <stdin>:47', 'SBS003 <stdin>:22', 'SBS007 <stdin>:28', 'SBS008 <stdin>:28']);
    const dir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
    writeFileSync(join(dir, 'bad.yaml'), 'kind: Pod\nmetadata: {name: x\n');
    const bad = await cli('audit', 'sprawl', '-f', join(dir, 'bad.yaml'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: .*bad\.yaml:\d+: invalid YAML: [^\n]+\n$/);
    const missing = await cli('audit', 'sprawl', '-f', join(dir, 'nope'));
    expect([missing.code, missing.stderr]).toEqual([2, `error: ${join(dir, 'nope')}: no such file or directory\n`]);
    const severity = await cli('audit', 'sprawl', '--fail-on', 'critical');
    expect(severity.code).toBe(2);
  });

  it('audits the cluster: pods and their owners, and Secrets by metadata only', async () => {
    const run = await cli('audit', 'sprawl', '-o', 'json');
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect((JSON.parse(run.stdout) as Findings).findings.map(short).sort()).toEqual([
      `SBS002 high Pod/leaky app :- spec.containers[0].env[0].value`,
      `SBS004 medium Deployment/legacy app :- spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef`,
      `SBS007 low Secret/forgotten - :- metadata.name`,
    ]);
    const all = JSON.parse((await cli('audit', 'sprawl', '-A', '-o', 'json')).stdout) as Findings;
    expect(all.findings.filter((f) => f.location.namespace === world.ns)).toHaveLength(3);
    // The viewer role cannot list Secrets: the rest still runs, and it says what it skipped.
    const viewer = await runCli(['audit', 'sprawl', '-n', world.ns, '-o', 'json'], { kubeconfig: world.viewerKubeconfig });
    expect(viewer.code).toBe(0);
    expect(viewer.stderr).toBe('warning: no right to list Secrets here: the UnreferencedSecret rule (SBS007) did not run\n');
    expect((JSON.parse(viewer.stdout) as Findings).findings.map((f) => f.rule).sort()).toEqual(['SBS002', 'SBS004']);
  });
});

const renderDir = join('test', 'integration', 'cli', 'fixtures', 'render');

describe('render (offline)', () => {
  it('shows the file tree, modes and formats with value shapes, for a pod', async () => {
    const run = await cli('render', '-f', join(renderDir, 'binding.yaml'), '--pod', join(renderDir, 'pod.yaml'));
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(run.stdout).toBe(
      [
        'SecretBinding retail/catalog-db: valid',
        '',
        '/var/run/secrets/catalog   (containers: api)',
        '├── app.env          0440   dotenv',
        '├── db/config.json   0400   json',
        '└── db/password      0440   raw',
        '',
        '--- db/password (0440, raw)',
        '<apps/catalog/db#password>',
        '',
        '--- db/config.json (0400, json)',
        '{',
        '  "user": "<apps/catalog/db#username>",',
        '  "password": "<apps/catalog/db#password>"',
        '}',
        '',
        '--- app.env (0440, dotenv)',
        'API_TOKEN="<apps/catalog/api @3>"',
        '',
      ].join('\n'),
    );
    const dir = mkdtempSync(join(tmpdir(), 'sb-render-'));
    writeFileSync(join(dir, 'values.yaml'), 'apps/catalog/db: {username: sample-user, password: sample-pass}\napps/catalog/api: sample-token\n');
    const sampled = parse((await cli('render', '-f', join(renderDir, 'binding.yaml'), '--values', join(dir, 'values.yaml'), '-o', 'yaml')).stdout) as { files: { path: string; content: string }[] };
    expect(sampled.files.map((f) => [f.path, f.content])).toEqual([
      ['db/password', 'sample-pass'],
      ['db/config.json', '{\n  "user": "sample-user",\n  "password": "sample-pass"\n}\n'],
      ['app.env', 'API_TOKEN="sample-token"\n'],
    ]);
  });

  it('refuses what the API server refuses — schema and CEL rules — with one line, and a pod it would not serve', async () => {
    const base = readFileSync(join(renderDir, 'binding.yaml'), 'utf8');
    const dir = mkdtempSync(join(tmpdir(), 'sb-render-'));
    const cases: [string, string, RegExp][] = [
      ['mode: 0400', 'mode: 01000', /spec\.files\[1\]\.mode: Invalid value: mode must be between 0 and 0777/],
      ['path: db/password', 'path: ../escape', /spec\.files\[0\]\.path: Invalid value: path must not contain '\.\.'/],
      ['refreshInterval: 1m', 'refreshInterval: 5s', /spec\.refreshInterval: Invalid value: refreshInterval must be at least 10s/],
      ['strategy: Refresh', 'strategy: Sometimes', /spec\.rotation\.strategy: Unsupported value: supported values: "Refresh", "RollingRestart", "None"/],
      ['containers: [api]', 'containers: []', /spec\.containers: Invalid value: containers must name at least one container/],
      ['- {path: db/password, key: apps/catalog/db, property: password}', '- {path: db, key: apps/catalog/db, property: password}', /spec\.files: Invalid value: a file path must not also be the directory of another file/],
    ];
    const api = world.delivery.custom;
    for (const [from, to, message] of cases) {
      const text = base.replace(from, to);
      expect(text).not.toBe(base);
      writeFileSync(join(dir, 'bad.yaml'), text);
      const run = await cli('render', '-f', join(dir, 'bad.yaml'));
      expect([run.code, run.stdout]).toEqual([2, '']);
      expect(run.stderr).toMatch(/^error: .*bad\.yaml: SecretBinding catalog-db is invalid: [^\n]+\n$/);
      expect(run.stderr).toMatch(message);
      // The API server refuses the same object (server-side dry run).
      const object = parse(text, { version: '1.1' }) as { metadata: { namespace?: string } };
      delete object.metadata.namespace;
      const status = await api.createNamespacedCustomObject({ group: 'secretbinder.dev', version: 'v1alpha1', plural: 'secretbindings', namespace: world.ns, body: object, dryRun: 'All' }).then(() => 201, (e: unknown) => (e as { code?: number }).code);
      expect(status).toBe(422);
    }
    const valid = parse(base, { version: '1.1' }) as { metadata: { namespace?: string } };
    delete valid.metadata.namespace;
    await api.createNamespacedCustomObject({ group: 'secretbinder.dev', version: 'v1alpha1', plural: 'secretbindings', namespace: world.ns, body: valid, dryRun: 'All' });

    writeFileSync(join(dir, 'pod.yaml'), readFileSync(join(renderDir, 'pod.yaml'), 'utf8').replace('name: metrics\n          image: exporter:1', 'name: metrics\n          image: exporter:1\n          volumeMounts: [{name: db, mountPath: /db}]'));
    const refused = await cli('render', '-f', join(renderDir, 'binding.yaml'), '--pod', join(dir, 'pod.yaml'));
    expect([refused.code, refused.stderr]).toEqual([5, `error: ${join(dir, 'pod.yaml')}: ContainerNotAllowed: container metrics mounts the volume but SecretBinding catalog-db does not list it\n`]);
    const missing = await cli('render', '-f', join(dir, 'nope.yaml'));
    expect([missing.code, missing.stderr]).toEqual([2, `error: ${join(dir, 'nope.yaml')}: cannot read the file\n`]);
    const none = await cli('render');
    expect([none.code, none.stderr]).toEqual([2, "error: required option '-f, --filename <file>' not specified\n"]);
  });
});

describe('refresh and restart', () => {
  it('refresh asks for a check now and waits until every consumer holds the new content', async () => {
    const d = world.delivery;
    const key = `cli-${d.suffix}/rotating`;
    await writeKvSecret(d.bao, key, { token: world.secrets[0] ?? '' });
    await d.createBinding('rotating', { podSelector: { matchLabels: { app: 'rotating' } }, refreshInterval: '10s', files: [{ path: 'token', key, property: 'token' }] });
    const side = d.nodes[0];
    if (side === undefined) throw new Error('no node');
    const pod = await d.core.createNamespacedPod({
      namespace: world.ns,
      body: {
        metadata: { name: 'rotating', labels: { app: 'rotating' } },
        spec: { nodeName: side.node, serviceAccountName: 'web', automountServiceAccountToken: false, containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 's', mountPath: '/s' }] }], volumes: [{ name: 's', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'rotating' } } }] },
      },
    });
    await eventually('publish rotating', async () => (await side.kubelet.publishPod(pod).catch(() => undefined))?.[0], 30_000);
    const before = (await d.bindingStatus('rotating'))?.contentHmac ?? '';

    const unchanged = await cli('refresh', 'secretbinding/rotating', '--timeout', '3s');
    expect(unchanged.code).toBe(6);
    expect(unchanged.stderr).toMatch(/^waiting: content hmac-sha256:[0-9a-f]{12} \(unchanged\), 1 consumer\(s\), 0 stale \(\d+s\)\n/);
    expect(unchanged.stderr).toMatch(/error: secretbinding\/rotating: not refreshed within 3s: the content did not change .*\n$/);

    await writeKvSecret(d.bao, key, { token: world.secrets[1] ?? '' });
    const refreshed = await cli('refresh', 'secretbinding/rotating');
    expect(refreshed.code).toBe(0);
    const after = (await d.bindingStatus('rotating'))?.contentHmac ?? '';
    expect(after).not.toBe(before);
    expect(refreshed.stdout).toBe(`secretbinding/rotating refreshed: content ${before.slice(0, 24)} → ${after.slice(0, 24)}, 1 consumer(s) current\n`);
    expect((await d.bindingStatus('rotating'))?.consumers).toMatchObject({ pods: 1, stale: 0 });

    const denied = await runCli(['refresh', 'secretbinding/rotating', '-n', world.ns], { kubeconfig: world.viewerKubeconfig });
    expect(denied.code).toBe(4);
    expect(denied.stderr).toMatch(/^error: Error from server \(Forbidden\): secretbindings.secretbinder.dev "rotating" is forbidden: .*cannot patch resource "secretbindings"[^\n]*\n$/);
    const unknown = await cli('refresh', 'secretbinding/nope');
    expect(unknown.code).toBe(3);
  });

  it('restart rolls the workloads a RollingRestart binding selects, and refuses other strategies', async () => {
    const d = world.delivery;
    await d.createBinding('rolling', { podSelector: { matchLabels: { app: 'roll' } }, rotation: { strategy: 'RollingRestart' }, files: [{ path: 'p', key: world.dbKey, property: 'password' }] });
    const apps = d.kc.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: world.ns,
      body: { metadata: { name: 'roll' }, spec: { replicas: 0, selector: { matchLabels: { app: 'roll' } }, template: { metadata: { labels: { app: 'roll' } }, spec: { containers: [{ name: 'app', image: 'busybox' }] } } } },
    });
    const run = await cli('restart', 'secretbinding/rolling');
    expect([run.code, run.stdout]).toEqual([0, 'deployment/roll restarted\n']);
    expect(run.stderr).toBe('deployment/roll restarting\ndeployment/roll rolled out\n');
    const template = (await apps.readNamespacedDeployment({ namespace: world.ns, name: 'roll' })).spec?.template.metadata?.annotations;
    expect(template?.['secretbinder.dev/restarted-at']).toMatch(/^\d{4}-\d\d-\d\dT/);
    const refresh = await cli('restart', 'secretbinding/db');
    expect([refresh.code, refresh.stderr]).toEqual([2, 'error: secretbinding/db has rotation strategy Refresh: restart is for RollingRestart bindings (use refresh)\n']);
  });
});

describe('no secret value in any output', () => {
  it('finds no value, nor any 8-character fragment of one, in what every command printed', () => {
    expect(allRuns.length).toBeGreaterThan(0);
    expect(leaks(allRuns, [...world.secrets, ...fixtureSecrets])).toEqual([]);
  });
});
