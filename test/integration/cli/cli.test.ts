import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { allRuns, leaks, runCli, type CliRun } from './cli.support.ts';
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

describe('no secret value in any output', () => {
  it('finds no value, nor any 8-character fragment of one, in what every command printed', () => {
    expect(allRuns.length).toBeGreaterThan(10);
    expect(leaks(allRuns, world.secrets)).toEqual([]);
  });
});
