import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { group, resources, version, type ResourceKind, type SecretBinding } from '../../src/api/v1alpha1/index.ts';
import {
  adminKubeConfig,
  errorText,
  eventually,
  fieldManager,
  getRaw,
  installCrds,
  loadExamples,
  root,
  type Example,
} from './support/cluster.ts';

/**
 * The CRDs against a real kube-apiserver: they install and become Established (so every CEL rule
 * is within the cost budget), every good example is accepted with the documented defaults, every
 * invalid example is refused with the message its `# expect:` line names, the status subresource
 * and printer columns work, and the published OpenAPI carries the field descriptions.
 */

describe('CRDs on a real API server', () => {
  let config: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  const suffix = randomBytes(4).toString('hex');
  const namespace = `crds-${suffix}`;

  /** Creates an example in dry-run (nothing persists, names never collide) and returns the result. */
  async function dryRunCreate(object: Example['object']): Promise<Example['object']> {
    const kind = object.kind as ResourceKind;
    const r = resources[kind];
    // Cluster-scoped names are shared with other suites of the same world: dry-run under a unique name.
    const body = r.namespaced ? object : { ...object, metadata: { ...(object.metadata as Record<string, unknown>), name: `${object.metadata?.name ?? ''}-${suffix}` } };
    const common = { group, version, plural: r.plural, body, dryRun: 'All', fieldManager, fieldValidation: 'Strict' };
    const created: unknown = r.namespaced
      ? await custom.createNamespacedCustomObject({ ...common, namespace })
      : await custom.createClusterCustomObject(common);
    return created as Example['object'];
  }

  beforeAll(async () => {
    config = adminKubeConfig();
    core = config.makeApiClient(CoreV1Api);
    custom = config.makeApiClient(CustomObjectsApi);
    await installCrds(config);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  }, 60_000);

  afterAll(async () => {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  });

  it('installs our three kinds with their names, short names and category', async () => {
    const extensions = config.makeApiClient(ApiextensionsV1Api);
    for (const [kind, r] of Object.entries(resources)) {
      const crd = await extensions.readCustomResourceDefinition({ name: `${r.plural}.${group}` });
      expect(crd.status?.acceptedNames?.kind).toBe(kind);
      expect(crd.status?.acceptedNames?.shortNames?.length).toBeGreaterThan(0);
      expect(crd.status?.acceptedNames?.categories).toContain('secretbinder');
      expect(crd.spec.scope).toBe(r.namespaced ? 'Namespaced' : 'Cluster');
    }
  });

  const good = [...loadExamples(join(root, 'deploy/examples')), ...loadExamples(join(root, 'docs/examples'))];
  const invalid = loadExamples(join(root, 'deploy/examples/invalid'));

  it.each(good.map((e) => [e.file, e] as const))('accepts %s', async (_file, example) => {
    const created = await dryRunCreate(example.object);
    expect(created.metadata?.name).toMatch(new RegExp(`^${example.object.metadata?.name ?? ''}(-${suffix})?$`));
    expect(created.spec).toBeDefined();
  });

  it.each(invalid.map((e) => [e.file, e] as const))('refuses %s with its message', async (_file, example) => {
    const outcome = await dryRunCreate(example.object).then(
      () => 'accepted',
      (error: unknown) => errorText(error),
    );
    expect(outcome).toMatch(/^(400|422) /);
    expect(outcome).toContain(example.expect);
  });

  it('applies the documented defaults', async () => {
    const binding = good.find((e) => e.object.kind === 'SecretBinding' && e.file === 'binding-single-files.yaml');
    const backend = good.find((e) => e.object.kind === 'SecretBackend' && e.file === 'secret-backend-openbao-token.yaml');
    if (binding === undefined || backend === undefined) throw new Error('examples missing');
    const b = (await dryRunCreate(binding.object)) as unknown as SecretBinding;
    expect(b.spec.files.map((f) => f.mode)).toEqual([0o440, 0o400, 0o440]);
    expect(b.spec.rotation).toEqual({ strategy: 'Refresh', debounce: '30s' });
    expect(b.spec.onBackendUnavailable).toEqual({ policy: 'ServeLastKnownGood' });
    expect(b.spec.backendRef.kind).toBe('SecretBackend');
    const s = (await dryRunCreate(backend.object)) as unknown as { spec: Record<string, unknown> };
    expect(s.spec['refreshInterval']).toBe('5m');
    expect(s.spec['rateLimit']).toEqual({ qps: 10, burst: 20, maxConcurrency: 4 });
    expect(s.spec['vault']).toMatchObject({ mount: 'secret', kvVersion: 2 });
  });

  it('keeps status behind the status subresource and shows it in the printer columns', async () => {
    const example = good.find((e) => e.file === 'binding-rolling-restart.yaml');
    if (example === undefined) throw new Error('example missing');
    const r = resources.SecretBinding;
    const name = example.object.metadata?.name ?? '';
    const base = { group, version, namespace, plural: r.plural };
    const status: SecretBinding['status'] = {
      observedGeneration: 1,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          observedGeneration: 1,
          lastTransitionTime: '2026-01-02T03:04:05Z',
          reason: 'Reconciled',
          message: 'files served to 3 pods',
        },
      ],
      contentHmac: 'hmac-sha256:0f1e2d3c',
      backendVersions: [{ key: 'app/db', version: '7' }],
      lastSyncTime: '2026-01-02T03:04:05Z',
      consumers: { pods: 3, workloads: 1, stale: 0 },
    };
    // Status sent with the object is dropped: only the subresource writes it.
    const created = (await custom.createNamespacedCustomObject({
      ...base,
      body: { ...example.object, status },
      fieldManager,
    })) as SecretBinding;
    expect(created.status).toBeUndefined();
    const updated = (await custom.replaceNamespacedCustomObjectStatus({
      ...base,
      name,
      body: { ...created, status },
      fieldManager,
    })) as SecretBinding;
    expect(updated.status).toEqual(status);
    expect(updated.metadata.generation).toBe(created.metadata.generation);

    const table = await getRaw(
      config,
      `/apis/${group}/${version}/namespaces/${namespace}/${r.plural}/${name}`,
      'application/json;as=Table;v=v1;g=meta.k8s.io',
    );
    expect(table.status).toBe(200);
    const parsed = JSON.parse(table.body) as { columnDefinitions: { name: string }[]; rows: { cells: unknown[] }[] };
    const columns = parsed.columnDefinitions.map((c) => c.name);
    const row = parsed.rows[0]?.cells ?? [];
    const cell = (column: string): unknown => row[columns.indexOf(column)];
    expect(cell('Backend')).toBe('demo');
    expect(cell('Ready')).toBe('True');
    expect(cell('Reason')).toBe('Reconciled');
    expect(cell('Pods')).toBe(3);
    expect(cell('Rotation')).toBe('RollingRestart');
    expect(columns).toEqual(expect.arrayContaining(['Synced', 'Age']));
  });

  it('publishes the field descriptions in OpenAPI v3, as kubectl explain reads them', async () => {
    type Schema = { description?: string; properties?: Record<string, Schema>; items?: Schema; $ref?: string; allOf?: Schema[] };
    const document = await eventually('OpenAPI v3 for our group', async () => {
      const answer = await getRaw(config, `/openapi/v3/apis/${group}/${version}`, 'application/json');
      if (answer.status !== 200) return undefined;
      const doc = JSON.parse(answer.body) as { components?: { schemas?: Record<string, Schema> } };
      const schemas = doc.components?.schemas ?? {};
      return Object.keys(resources).every((k) => `dev.secretbinder.${version}.${k}` in schemas) ? schemas : undefined;
    });
    const undocumented: string[] = [];
    const visit = (schema: Schema, path: string): void => {
      for (const [name, child] of Object.entries(schema.properties ?? {})) {
        const childPath = `${path}.${name}`;
        if (name === 'metadata' && path.split('.').length === 1) continue;
        if (child.$ref === undefined && child.allOf === undefined && (child.description ?? '').length === 0) {
          undocumented.push(childPath);
        }
        visit(child, childPath);
      }
      if (schema.items !== undefined) visit(schema.items, `${path}[]`);
    };
    for (const kind of Object.keys(resources)) {
      const schema = document[`dev.secretbinder.${version}.${kind}`];
      expect(schema?.description).toMatch(new RegExp(`^${kind} `));
      if (schema !== undefined) visit(schema, kind);
    }
    expect(undocumented).toEqual([]);
    const files = document[`dev.secretbinder.${version}.SecretBinding`]?.properties?.['spec']?.properties?.['files'];
    expect(files?.items?.properties?.['path']?.description).toContain('relative to the volume root');
  });
});
