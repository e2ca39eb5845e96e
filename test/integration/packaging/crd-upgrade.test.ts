import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { adminKubeConfig, errorText, eventually, installCrds } from '../support/cluster.ts';
import { runCrdUpgradeStep } from './crd-upgrade.support.ts';
import { chartDir } from './helm.support.ts';

/**
 * The CRD upgrade step of docs/upgrading.md (ADR 0231), run verbatim against the world's API
 * server: with the CRDs of a next chart version that adds an optional field to SecretBinding's spec,
 * stored bindings survive and the new field is accepted and kept; with the current chart's CRDs
 * again (a downgrade or a re-run) the field is gone from the schema and the bindings still stand.
 */

const namespace = 'crd-upgrade';

/** A copy of the chart whose SecretBinding CRD has one more optional field, `spec.note`: the next version. */
function nextChart(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'sb-next-chart-')), 'secret-binder');
  cpSync(chartDir, dir, { recursive: true });
  const file = join(dir, 'crds', 'secretbinder.dev_secretbindings.yaml');
  const crd = parse(readFileSync(file, 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } } }[] } };
  for (const v of crd.spec.versions) {
    v.schema.openAPIV3Schema.properties.spec.properties['note'] = { type: 'string', maxLength: 256, description: 'A note for the humans who read this binding (added by the next version).' };
  }
  writeFileSync(file, `---\n${stringify(crd)}`);
  return dir;
}

let kc: KubeConfig;
let custom: CustomObjectsApi;

function binding(name: string, spec: Record<string, unknown> = {}): object {
  return {
    apiVersion: `${group}/${version}`,
    kind: 'SecretBinding',
    metadata: { name },
    spec: { backendRef: { name: 'nowhere' }, podSelector: { matchLabels: { app: name } }, containers: ['app'], files: [{ path: 'token', key: 'app/token' }], ...spec },
  };
}

/** Creates a binding with strict field validation: an unknown field is refused, not silently pruned. */
async function createStrict(body: object): Promise<void> {
  await custom.createNamespacedCustomObject({ group, version, namespace, plural: resources.SecretBinding.plural, body, fieldValidation: 'Strict' });
}

async function readSpec(name: string): Promise<Record<string, unknown>> {
  const object = (await custom.getNamespacedCustomObject({ group, version, namespace, plural: resources.SecretBinding.plural, name })) as { spec: Record<string, unknown> };
  return object.spec;
}

describe('CRD upgrade: the documented server-side apply step', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    custom = kc.makeApiClient(CustomObjectsApi);
    await installCrds(kc);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    await createStrict(binding('stored-before'));
  });

  afterAll(async () => {
    await kc.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace }).catch(() => undefined);
    // The harness's own field manager owns the CRDs again, as every other suite expects.
    await installCrds(kc);
  });

  it('the current CRDs refuse the field the next version adds', async () => {
    let refusal = '';
    await createStrict(binding('too-early', { note: 'hello' })).catch((error: unknown) => {
      refusal = errorText(error);
    });
    expect(refusal).toMatch(/unknown field "spec\.note"/);
  });

  it('with the next version\'s CRDs: stored bindings stay as they were, the new field is accepted and kept', async () => {
    const before = await readSpec('stored-before');
    const next = nextChart();
    const output = await runCrdUpgradeStep(next).finally(() => {
      rmSync(dirname(next), { recursive: true, force: true });
    });
    process.stdout.write(`crd upgrade (next version): ${output}`);
    expect(output.trim().split('\n').sort()).toEqual([
      'customresourcedefinition.apiextensions.k8s.io/clustersecretbackends.secretbinder.dev serverside-applied',
      'customresourcedefinition.apiextensions.k8s.io/secretbackends.secretbinder.dev serverside-applied',
      'customresourcedefinition.apiextensions.k8s.io/secretbindings.secretbinder.dev serverside-applied',
    ]);
    const extensions = kc.makeApiClient(ApiextensionsV1Api);
    const crd = await extensions.readCustomResourceDefinition({ name: `${resources.SecretBinding.plural}.${group}` });
    expect(crd.status?.storedVersions).toEqual([version]);
    expect(Object.keys(crd.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.['spec']?.properties ?? {})).toContain('note');
    // The API server publishes the new schema a moment after the CRD update.
    await eventually('the new schema served', async () =>
      createStrict(binding('with-note', { note: 'hello' })).then(
        () => true,
        (error: unknown) => {
          if (/unknown field/.test(errorText(error))) return undefined;
          throw error;
        },
      ),
    );
    expect((await readSpec('with-note'))['note']).toBe('hello');
    expect(await readSpec('stored-before')).toEqual(before);
  });

  it('re-running the step with the current chart (a downgrade) removes the field from the schema; every binding stays', async () => {
    await runCrdUpgradeStep(chartDir);
    const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: `${resources.SecretBinding.plural}.${group}` });
    expect(Object.keys(crd.spec.versions[0]?.schema?.openAPIV3Schema?.properties?.['spec']?.properties ?? {})).not.toContain('note');
    // For a moment after a schema change the API server answers 429 "storage is (re)initializing"
    // for the kind; clients retry (kubectl, the controller's informers), so does this list.
    const listed = await eventually('bindings listed after the CRD change', async () =>
      custom.listNamespacedCustomObject({ group, version, namespace, plural: resources.SecretBinding.plural }).then(
        (list) => list as { items: { metadata: { name: string } }[] },
        (error: unknown) => {
          if (/\b429\b|TooManyRequests/.test(errorText(error))) return undefined;
          throw error;
        },
      ),
    );
    expect(listed.items.map((b) => b.metadata.name).sort()).toEqual(['stored-before', 'with-note']);
  });
});
