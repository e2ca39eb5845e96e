/**
 * Generates the TypeScript types of our custom resources from `crds/*.yaml`, the single source of
 * truth, into `src/api/v1alpha1/<kind>.generated.ts`.
 *
 *   node src/api/codegen/gen-types.ts           write the files
 *   node src/api/codegen/gen-types.ts --check   exit 1 and name the files that drifted (CI)
 *
 * The spec and status schemas become interfaces (field descriptions become TSDoc); a few nested
 * objects get names (see {@link namedTypes}), the rest stay inline. Conditions and label selectors
 * map to shared types instead of being generated once per kind.
 */
import { readdirSync, readFileSync, writeFileSync, existsSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, type JSONSchema } from 'json-schema-to-typescript';
import { parse } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const crdDir = join(root, 'crds');
const outDir = join(root, 'src/api/v1alpha1');
const servedVersion = 'v1alpha1';

/** The parts of a CustomResourceDefinition the generator reads. */
interface Crd {
  readonly spec: {
    readonly group: string;
    readonly names: { readonly kind: string; readonly listKind?: string };
    readonly versions: readonly {
      readonly name: string;
      readonly storage: boolean;
      readonly schema: { readonly openAPIV3Schema: Schema };
    }[];
  };
}

/** An OpenAPI v3 schema node as CRDs write it (a plain JSON object). */
type Schema = { [key: string]: unknown };

/**
 * Names for nested objects, by path from the resource root (`[]` steps into array items). `*`
 * stands for the kind. Paths missing from a CRD are skipped.
 */
const namedTypes: Readonly<Record<string, string>> = {
  'spec.vault': '*Vault',
  'spec.vault.auth': '*VaultAuth',
  'spec.awsSecretsManager': '*AwsSecretsManager',
  'spec.awsSecretsManager.auth': '*AwsAuth',
  'spec.azureKeyVault': '*AzureKeyVault',
  'spec.azureKeyVault.auth': '*AzureAuth',
  'spec.conjur': '*Conjur',
  'spec.conjur.auth': '*ConjurAuth',
  'spec.fake': '*Fake',
  'spec.fake.keys[]': '*FakeKey',
  'spec.rateLimit': '*RateLimit',
  'spec.access[]': '*AccessRule',
  'spec.backendRef': '*BackendRef',
  'spec.backends[]': '*NamedBackend',
  'spec.backends[].backendRef': '*NamedBackendRef',
  'spec.files[].from': '*Source',
  'spec.files[].fallback': '*FallbackSource',
  'spec.files[]': '*File',
  'spec.files[].items[]': '*FileItem',
  'spec.rotation': '*Rotation',
  'spec.onBackendUnavailable': '*OnBackendUnavailable',
  'status.backendVersions[]': '*BackendVersion',
  'status.backends[]': '*BackendHealth',
  'status.sources[]': '*SourceServed',
  'status.consumers': '*Consumers',
};

/** Schemas replaced by hand-written or library types; the value is the module that exports it. */
const sharedTypes = {
  Condition: './conditions.ts',
  V1LabelSelector: '@kubernetes/client-node',
} as const;
type SharedType = keyof typeof sharedTypes;

function sharedTypeFor(path: string, schema: Schema): SharedType | undefined {
  if (path.endsWith('.conditions[]')) return 'Condition';
  const props = schema['properties'];
  if (isObject(props) && 'matchLabels' in props && 'matchExpressions' in props) return 'V1LabelSelector';
  return undefined;
}

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Rewrites a CRD schema node for json-schema-to-typescript: names, shared types, closed objects,
 * `Record<string, never>` for the empty marker objects (`defaultChain: {}`). Returns a copy.
 */
function prepare(schema: Schema, path: string, kind: string, used: Set<SharedType>): Schema {
  const out: Schema = {};
  const shared = sharedTypeFor(path, schema);
  if (shared !== undefined) {
    used.add(shared);
    return copyDocs(schema, { tsType: shared });
  }
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-')) continue;
    if (key === 'properties' && isObject(value)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, child]) => [
          name,
          isObject(child) ? prepare(child, path === '' ? name : `${path}.${name}`, kind, used) : child,
        ]),
      );
    } else if (key === 'items' && isObject(value)) {
      out[key] = prepare(value, `${path}[]`, kind, used);
    } else {
      out[key] = value;
    }
  }
  if (schema['type'] === 'object') {
    if (schema['properties'] === undefined && schema['additionalProperties'] === undefined) {
      return copyDocs(schema, { tsType: 'Record<string, never>' });
    }
    if (schema['additionalProperties'] === undefined) out['additionalProperties'] = false;
  }
  const name = namedTypes[path];
  if (name !== undefined) out['title'] = name.replace('*', kind);
  return out;
}

function copyDocs(schema: Schema, replacement: Schema): Schema {
  const out: Schema = { ...replacement };
  if (typeof schema['description'] === 'string') out['description'] = schema['description'];
  return out;
}

function kebab(kind: string): string {
  return kind.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

async function generate(crdFile: string): Promise<{ file: string; content: string }> {
  const crd = parse(readFileSync(crdFile, 'utf8')) as Crd;
  const { group, names } = crd.spec;
  const kind = names.kind;
  const version = crd.spec.versions.find((v) => v.name === servedVersion);
  if (version === undefined) throw new Error(`${crdFile}: no version ${servedVersion}`);
  const rootSchema = version.schema.openAPIV3Schema;
  const props = rootSchema['properties'];
  if (!isObject(props) || !isObject(props['spec'])) throw new Error(`${crdFile}: schema has no spec`);

  const used = new Set<SharedType>();
  const spec = prepare(props['spec'], 'spec', kind, used);
  const status = isObject(props['status']) ? prepare(props['status'], 'status', kind, used) : undefined;
  const apiVersion = `${group}/${servedVersion}`;
  const resource: JSONSchema = {
    title: kind,
    type: 'object',
    description: typeof rootSchema['description'] === 'string' ? rootSchema['description'] : undefined,
    additionalProperties: false,
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    properties: {
      apiVersion: { tsType: `'${apiVersion}'` },
      kind: { tsType: `'${kind}'` },
      metadata: { tsType: 'V1ObjectMeta' },
      spec: { ...spec, title: `${kind}Spec` },
      ...(status === undefined ? {} : { status: { ...status, title: `${kind}Status` } }),
    },
  };
  const body = await compile(resource, kind, {
    bannerComment: '',
    additionalProperties: false,
    strictIndexSignatures: true,
    unknownAny: true,
    maxItems: -1,
    format: true,
    style: { singleQuote: true, printWidth: 120, trailingComma: 'all' },
  });
  const listKind = names.listKind ?? `${kind}List`;
  const imports = new Map<string, Set<string>>([['@kubernetes/client-node', new Set(['V1ListMeta', 'V1ObjectMeta'])]]);
  for (const type of used) {
    const from = sharedTypes[type];
    imports.set(from, (imports.get(from) ?? new Set()).add(type));
  }
  const importLines = [...imports]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([from, types]) => `import type { ${[...types].sort().join(', ')} } from '${from}';`);
  const header = [
    `// Generated from crds/${basename(crdFile)} by src/api/codegen/gen-types.ts. Do not edit:`,
    '// change the CRD and run `npm run gen:types`.',
    '',
    ...importLines,
    '',
  ].join('\n');
  const list = [
    '',
    `/** A list of ${kind} objects, as the API server returns it. */`,
    `export interface ${listKind} {`,
    `  apiVersion: '${apiVersion}';`,
    `  kind: '${listKind}';`,
    '  metadata: V1ListMeta;',
    `  items: ${kind}[];`,
    '}',
    '',
  ].join('\n');
  return { file: join(outDir, `${kebab(kind)}.generated.ts`), content: `${header}\n${body.trimEnd()}\n${list}` };
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const crdFiles = readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(crdDir, f));
  const outputs = await Promise.all(crdFiles.map(generate));
  const expected = new Set(outputs.map((o) => o.file));
  const stale = readdirSync(outDir)
    .filter((f) => f.endsWith('.generated.ts'))
    .map((f) => join(outDir, f))
    .filter((f) => !expected.has(f));

  const drifted: string[] = [];
  const report = (file: string, change: string): void => {
    drifted.push(file);
    process.stdout.write(`${relative(root, file)}: ${check ? 'out of date' : change}\n`);
  };
  for (const { file, content } of outputs) {
    const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    if (current === content) continue;
    report(file, current === undefined ? 'created' : 'updated');
    if (!check) writeFileSync(file, content);
  }
  for (const file of stale) {
    report(file, 'removed (its CRD is gone)');
    if (!check) unlinkSync(file);
  }
  if (check && drifted.length > 0) {
    process.stderr.write('generated types drifted from crds/: run `npm run gen:types`\n');
    return 1;
  }
  return 0;
}

process.exitCode = await main();
