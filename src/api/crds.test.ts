import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import type {
  ClusterSecretBackendAwsSecretsManager,
  ClusterSecretBackendAzureKeyVault,
  ClusterSecretBackendConjur,
  ClusterSecretBackendFake,
  ClusterSecretBackendSpec,
  ClusterSecretBackendVault,
} from './v1alpha1/cluster-secret-backend.generated.ts';
import {
  apiVersion,
  conditionStatuses,
  defaults,
  group,
  reasons,
  resources,
  version,
  type AwsSecretsManagerProviderSpec,
  type AzureKeyVaultProviderSpec,
  type Condition,
  type ConjurProviderSpec,
  type FakeProviderSpec,
  type SecretBackendSpec,
  type VaultProviderSpec,
} from './v1alpha1/index.ts';

/**
 * Static checks of `crds/` and `deploy/examples/`: what the API server cannot tell us (every field
 * documented, the two backend kinds in step, every validation rule exercised by an example, the
 * hand-written constants matching the CRDs). The integration test applies them to a real server.
 */

const root = process.cwd();
const crdDir = join(root, 'crds');
// deploy/examples: what the demo applies and makes Ready locally; docs/examples: one example per
// provider and auth method, for stores that exist only outside this machine.
const examplesDir = join(root, 'deploy/examples');
const docsExamplesDir = join(root, 'docs/examples');
const invalidDir = join(examplesDir, 'invalid');

type Schema = { [key: string]: unknown };

interface Crd {
  metadata: { name: string };
  spec: {
    group: string;
    scope: 'Namespaced' | 'Cluster';
    names: { kind: string; listKind: string; plural: string; shortNames?: string[]; categories?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: { name: string; jsonPath: string }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
}

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function loadCrds(): Crd[] {
  return readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => parse(readFileSync(join(crdDir, f), 'utf8')) as Crd);
}

function crdOf(kind: string): Crd {
  const crd = loadCrds().find((c) => c.spec.names.kind === kind);
  if (crd === undefined) throw new Error(`no CRD for ${kind}`);
  return crd;
}

function schemaOf(kind: string): Schema {
  const v = crdOf(kind).spec.versions.find((x) => x.name === version);
  if (v === undefined) throw new Error(`${kind} has no ${version}`);
  return v.schema.openAPIV3Schema;
}

/** Walks a schema: every property and array item, with its path. */
function* walk(schema: Schema, path: string): Generator<[string, Schema]> {
  const props = schema['properties'];
  if (isObject(props)) {
    for (const [name, child] of Object.entries(props)) {
      if (!isObject(child)) continue;
      const childPath = path === '' ? name : `${path}.${name}`;
      yield [childPath, child];
      yield* walk(child, childPath);
    }
  }
  const items = schema['items'];
  if (isObject(items)) {
    yield [`${path}[]`, items];
    yield* walk(items, `${path}[]`);
  }
}

function at(schema: Schema, path: string): Schema {
  for (const [p, s] of walk(schema, '')) if (p === path) return s;
  throw new Error(`no schema at ${path}`);
}

function withoutDocs(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutDocs);
  if (!isObject(schema)) return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([k]) => k !== 'description')
      .map(([k, v]) => [k, withoutDocs(v)]),
  );
}

/** Every CEL rule message in a schema. */
function ruleMessages(schema: Schema): string[] {
  const own = (s: Schema): string[] => {
    const rules = s['x-kubernetes-validations'];
    return Array.isArray(rules) ? rules.map((r) => String((r as Schema)['message'])) : [];
  };
  return [...own(schema), ...[...walk(schema, '')].flatMap(([, s]) => own(s))];
}

interface Example {
  file: string;
  expect: string | undefined;
  doc: Schema;
}

function loadExamples(dir: string): Example[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      const expect = /^# expect: (.+)$/m.exec(text)?.[1];
      // kubectl reads YAML 1.1 (0440 is octal there); read examples the same way.
      return parseAllDocuments(text, { version: '1.1' }).map((d) => ({ file: f, expect, doc: d.toJS() as Schema }));
    });
}

describe('CRDs', () => {
  const crds = loadCrds();

  it('define exactly our three kinds, in the group and version index.ts exports', () => {
    expect(crds.map((c) => c.spec.names.kind).sort()).toEqual(Object.keys(resources).sort());
    for (const crd of crds) {
      const r = resources[crd.spec.names.kind as keyof typeof resources];
      expect(crd.spec.group).toBe(group);
      expect(crd.metadata.name).toBe(`${r.plural}.${group}`);
      expect(crd.spec.names.plural).toBe(r.plural);
      expect(crd.spec.names.listKind).toBe(r.listKind);
      expect(crd.spec.scope).toBe(r.namespaced ? 'Namespaced' : 'Cluster');
      expect(crd.spec.names.categories).toContain('secretbinder');
      expect(crd.spec.names.shortNames?.length).toBeGreaterThan(0);
      expect(crd.spec.versions).toHaveLength(1);
      const v = crd.spec.versions[0];
      expect(v?.name).toBe(version);
      expect(v?.served && v.storage).toBe(true);
      expect(v?.subresources?.status).toEqual({});
      expect(v?.additionalPrinterColumns?.map((c) => c.name)).toEqual(
        expect.arrayContaining(['Ready', 'Reason', 'Age']),
      );
    }
  });

  it('start with a document marker, so `helm show crds` (which concatenates the files) yields one document per CRD', () => {
    const files = readdirSync(crdDir).filter((f) => f.endsWith('.yaml'));
    expect(files.filter((f) => !readFileSync(join(crdDir, f), 'utf8').startsWith('---\n'))).toEqual([]);
  });

  it('describe every field, so kubectl explain documents it', () => {
    const undocumented: string[] = [];
    for (const crd of crds) {
      const schema = schemaOf(crd.spec.names.kind);
      if (typeof schema['description'] !== 'string') undocumented.push(crd.spec.names.kind);
      for (const [path, node] of walk(schema, '')) {
        // The API server forbids anything but the type on the root metadata.
        if (path === 'metadata') continue;
        const description = node['description'];
        if (typeof description !== 'string' || description.trim().length < 8) {
          undocumented.push(`${crd.spec.names.kind}.${path}`);
        }
      }
    }
    expect(undocumented).toEqual([]);
  });

  it('bound every string and list, so the API server can bound the cost of the CEL rules', () => {
    const unbounded: string[] = [];
    for (const crd of crds) {
      for (const [path, node] of walk(schemaOf(crd.spec.names.kind), '')) {
        const exempt = path === 'apiVersion' || path === 'kind' || node['format'] === 'date-time';
        if (node['type'] === 'string' && node['maxLength'] === undefined && node['enum'] === undefined && !exempt) {
          unbounded.push(`${crd.spec.names.kind}.${path}`);
        }
        if (node['type'] === 'array' && node['maxItems'] === undefined) unbounded.push(`${crd.spec.names.kind}.${path}`);
      }
    }
    expect(unbounded).toEqual([]);
  });

  it('give both backend kinds the same spec, except the access rules of the cluster-scoped one', () => {
    const namespaced = { ...at(schemaOf('SecretBackend'), 'spec') };
    const cluster = at(schemaOf('ClusterSecretBackend'), 'spec');
    const clusterProps = { ...(cluster['properties'] as Schema) };
    delete clusterProps['access'];
    const { required, ...clusterRest } = cluster;
    expect(required).toEqual(['access']);
    // Only the namespaced kind refuses the controller's own cloud identities (defaultChain,
    // managedIdentity): a tenant must not borrow them; the cluster kind has access rules instead.
    const rules = namespaced['x-kubernetes-validations'] as { rule: string }[];
    const ownIdentity = rules.filter((r) => /defaultChain|managedIdentity/.test(r.rule));
    expect(ownIdentity).toHaveLength(2);
    namespaced['x-kubernetes-validations'] = rules.filter((r) => !ownIdentity.includes(r));
    expect(withoutDocs({ ...clusterRest, properties: clusterProps })).toEqual(withoutDocs(namespaced));
  });

  it('declare the condition shape the Condition type describes', () => {
    for (const crd of crds) {
      const condition = at(schemaOf(crd.spec.names.kind), 'status.conditions[]');
      const keys: (keyof Condition)[] = [
        'type',
        'status',
        'observedGeneration',
        'lastTransitionTime',
        'reason',
        'message',
      ];
      expect(Object.keys(condition['properties'] as Schema).sort()).toEqual([...keys].sort());
      expect(at(condition, 'status')['enum']).toEqual([...conditionStatuses]);
      const reasonPattern = new RegExp(String(at(condition, 'reason')['pattern']));
      for (const reason of reasons) expect(reason).toMatch(reasonPattern);
      const conditions = at(schemaOf(crd.spec.names.kind), 'status.conditions');
      expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
    }
  });

  it('apply the defaults index.ts exports', () => {
    const backend = schemaOf('SecretBackend');
    const binding = schemaOf('SecretBinding');
    expect(at(backend, 'spec.refreshInterval')['default']).toBe(defaults.refreshInterval);
    expect(at(backend, 'spec.rateLimit.qps')['default']).toBe(defaults.rateLimit.qps);
    expect(at(backend, 'spec.rateLimit.burst')['default']).toBe(defaults.rateLimit.burst);
    expect(at(backend, 'spec.rateLimit.maxConcurrency')['default']).toBe(defaults.rateLimit.maxConcurrency);
    expect(at(binding, 'spec.files[].mode')['default']).toBe(defaults.fileMode);
    expect(at(binding, 'spec.rotation.strategy')['default']).toBe(defaults.rotation.strategy);
    expect(at(binding, 'spec.rotation.debounce')['default']).toBe(defaults.rotation.debounce);
    expect(at(binding, 'spec.onBackendUnavailable.policy')['default']).toBe(defaults.onBackendUnavailable.policy);
  });
});

describe('examples', () => {
  const good = [...loadExamples(examplesDir), ...loadExamples(docsExamplesDir)];
  const invalid = loadExamples(invalidDir);

  it('are our resources, one object per file, invalid ones saying what the API server will answer', () => {
    for (const example of [...good, ...invalid]) {
      expect(example.doc['apiVersion']).toBe(apiVersion);
      expect(Object.keys(resources)).toContain(example.doc['kind']);
    }
    expect(new Set(good.map((e) => e.file)).size).toBe(good.length);
    expect(good.filter((e) => e.expect !== undefined).map((e) => e.file)).toEqual([]);
    expect(invalid.filter((e) => e.expect === undefined).map((e) => e.file)).toEqual([]);
    expect(new Set(invalid.map((e) => e.file)).size).toBe(invalid.length);
  });

  it('cover every backend provider and binding feature', () => {
    const specs = good.map((e) => e.doc['spec'] as Schema);
    for (const kind of ['SecretBackend', 'ClusterSecretBackend']) {
      const providers = good
        .filter((e) => e.doc['kind'] === kind)
        .flatMap((e) => Object.keys(e.doc['spec'] as Schema))
        .filter((k) => ['vault', 'awsSecretsManager', 'azureKeyVault', 'conjur', 'fake'].includes(k));
      expect(new Set(providers)).toEqual(new Set(['vault', 'awsSecretsManager', 'azureKeyVault', 'conjur', 'fake']));
    }
    const text = JSON.stringify(specs);
    for (const feature of ['"format":"dotenv"', '"format":"json"', '"RollingRestart"', '"version":"1"']) {
      expect(text).toContain(feature);
    }
    // YAML 1.1 octal, as kubectl reads it.
    expect(text).toContain('"mode":256');
  });

  it('exercise every CEL rule with an invalid example', () => {
    const expectations = invalid.map((e) => e.expect ?? '');
    const uncovered = Object.keys(resources)
      .flatMap((kind) => ruleMessages(schemaOf(kind)))
      .filter((message) => !expectations.some((e) => message.includes(e)));
    expect([...new Set(uncovered)]).toEqual([]);
  });
});

// Type-level checks (tsc fails if they break): the provider blocks are the same type in both
// backend kinds, so a provider parses either.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type AllTrue<T extends readonly true[]> = T;
export type _ProviderBlocksMatch = AllTrue<
  [
    Same<VaultProviderSpec, ClusterSecretBackendVault>,
    Same<AwsSecretsManagerProviderSpec, ClusterSecretBackendAwsSecretsManager>,
    Same<AzureKeyVaultProviderSpec, ClusterSecretBackendAzureKeyVault>,
    Same<ConjurProviderSpec, ClusterSecretBackendConjur>,
    Same<FakeProviderSpec, ClusterSecretBackendFake>,
    Same<
      Omit<ClusterSecretBackendSpec, 'access' | 'vault' | 'awsSecretsManager' | 'azureKeyVault' | 'conjur' | 'fake' | 'rateLimit'>,
      Omit<SecretBackendSpec, 'vault' | 'awsSecretsManager' | 'azureKeyVault' | 'conjur' | 'fake' | 'rateLimit'>
    >,
  ]
>;
