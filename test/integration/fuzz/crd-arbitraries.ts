import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parse } from 'yaml';

/**
 * fast-check arbitraries for our custom resources, drawn from the CRD schemas in crds/ (the single
 * source of truth): a walker turns each openAPIV3Schema node into an arbitrary of valid-ish values
 * (types, enums, patterns, lengths and "exactly one of" CEL rules mostly respected), and a mutation
 * layer breaks some of them (wrong types, missing required fields, out-of-range numbers, odd
 * strings), so the API server's schema and CEL refusals are exercised as well as the controller.
 *
 * No JSON-Schema-to-fast-check library is used: the ones on npm know neither the Kubernetes
 * extensions (x-kubernetes-validations, list-map keys) nor OpenAPI v3's dialect (ADR 0175).
 *
 * Every network endpoint a generated backend could name is pinned to loopback by
 * {@link pinToLoopback}: a fuzzed backend never makes the controller call an address off this
 * machine (and never the cloud default endpoints, IMDS or the AWS default credential chain).
 */

export interface SchemaNode {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  readonly items?: SchemaNode;
  readonly additionalProperties?: SchemaNode | boolean;
  readonly enum?: readonly unknown[];
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly maxItems?: number;
  readonly maxProperties?: number;
  readonly format?: string;
  readonly 'x-kubernetes-validations'?: readonly { readonly rule: string }[];
  readonly 'x-kubernetes-list-map-keys'?: readonly string[];
  readonly 'x-kubernetes-list-type'?: string;
}

export const fuzzedKinds = ['SecretBinding', 'SecretBackend', 'ClusterSecretBackend'] as const;
export type FuzzedKind = (typeof fuzzedKinds)[number];

const crdFile: Record<FuzzedKind, string> = {
  SecretBinding: 'secretbinder.dev_secretbindings.yaml',
  SecretBackend: 'secretbinder.dev_secretbackends.yaml',
  ClusterSecretBackend: 'secretbinder.dev_clustersecretbackends.yaml',
};

/** The `spec` schema of a kind, read from crds/. */
export function specSchema(kind: FuzzedKind, root = process.cwd()): SchemaNode {
  const crd = parse(readFileSync(join(root, 'crds', crdFile[kind]), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
  };
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.['spec'];
  if (spec === undefined) throw new Error(`${crdFile[kind]} has no spec schema`);
  return spec;
}

/** Names the fuzzed objects refer to, so some references resolve (see crd-fuzz.ts). */
export interface FuzzVocabulary {
  /** Backends that exist (SecretBackend in the namespace, or ClusterSecretBackend). */
  readonly backendNames: readonly string[];
  /** Keys some backend holds. */
  readonly keys: readonly string[];
  /** Secrets in the namespace (and keys in them) that auth blocks may name. */
  readonly secretNames: readonly string[];
  readonly secretKeys: readonly string[];
  readonly serviceAccounts: readonly string[];
  readonly namespaces: readonly string[];
  /** Loopback URLs for every endpoint field: the only addresses a fuzzed backend may name. */
  readonly loopbackUrls: readonly string[];
}

const durationUnits = ['ns', 'us', 'ms', 's', 'm', 'h'] as const;
const duration = fc.oneof(
  { arbitrary: fc.constantFrom('10s', '30s', '5m', '1h', '1h30m', '15m', '45s'), weight: 6 },
  { arbitrary: fc.constantFrom('0s', '1s', '24h', '25h', '9s', '500ms', '1.5h'), weight: 2 },
  fc.tuple(fc.integer({ min: 0, max: 100_000 }), fc.constantFrom(...durationUnits)).map(([n, u]) => `${String(n)}${u}`),
);

const dnsLabel = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const odd = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '..', '../etc/passwd', '/abs', 'a//b', 'x/', '.', '\u0000', '%00', '${x}', '\n'),
);

/** Field names whose strings are drawn from the vocabulary (so references sometimes resolve). */
function vocabularyString(name: string, parentPath: readonly string[], v: FuzzVocabulary): fc.Arbitrary<string> | undefined {
  const parent = parentPath[parentPath.length - 1] ?? '';
  const pick = (values: readonly string[]): fc.Arbitrary<string> =>
    values.length === 0 ? dnsLabel : fc.oneof({ arbitrary: fc.constantFrom(...values), weight: 4 }, { arbitrary: dnsLabel, weight: 1 });
  if (['vaultUrl', 'authorityHost', 'applianceUrl'].includes(name)) return fc.constantFrom(...httpsOnly(v.loopbackUrls));
  if (['address', 'endpoint', 'stsEndpoint'].includes(name)) return fc.constantFrom(...v.loopbackUrls);
  if (parent === 'backendRef' && name === 'name') return pick(v.backendNames);
  // A binding's names for its backends, and the files' references to them, from one small set.
  if (parent === 'backends' && name === 'name') return fc.oneof({ arbitrary: fc.constantFrom('aws', 'azure'), weight: 4 }, { arbitrary: dnsLabel, weight: 1 });
  if (name === 'backend') return fc.oneof({ arbitrary: fc.constant('default'), weight: 8 }, { arbitrary: fc.constant('aws'), weight: 2 }, { arbitrary: dnsLabel, weight: 1 });
  if (name === 'key' && parent !== 'secretRef') return pick(v.keys);
  if (parent === 'secretRef' && name === 'name') return pick(v.secretNames);
  if (parent === 'secretRef') return pick(v.secretKeys);
  if (parent === 'serviceAccountRef' && name === 'name') return pick(v.serviceAccounts);
  if (name === 'serviceAccountNames' || name === 'namespaces') return pick([...v.serviceAccounts, ...v.namespaces]);
  if (name === 'path') return fc.oneof({ arbitrary: fc.array(dnsLabel, { minLength: 1, maxLength: 3 }).map((s) => s.join('/')), weight: 20 }, { arbitrary: odd, weight: 1 });
  if (name === 'caBundle') return fc.constantFrom('', 'bm90IGEgY2VydGlmaWNhdGU=', '!!');
  return undefined;
}

function httpsOnly(urls: readonly string[]): string[] {
  const https = urls.filter((u) => u.startsWith('https://'));
  return https.length > 0 ? https : ['https://127.0.0.1:1'];
}

/**
 * Presence constraints that an object's CEL rules state between its fields, parsed from the rule
 * texts our CRDs use: exactly one of (`[has(a), has(b)].filter(x, x).size() == 1`,
 * `has(a) != has(b)`), together (`has(a) == has(b)`), at most one (`!(has(a) && has(b))`), and
 * excludes (`!has(a) || (!has(b) && !has(c))`).
 */
interface Presence {
  readonly exactlyOne: string[][];
  readonly together: string[][];
  readonly atMostOne: string[][];
  readonly excludes: { readonly field: string; readonly others: string[] }[];
  /** `!has(self.a) || has(self.b)`: a only with b (fallback only with from). */
  readonly requires: { readonly field: string; readonly needs: string }[];
}

function presenceRules(node: SchemaNode): Presence {
  const fields = (rule: string): string[] => [...rule.matchAll(/has\(self\.(\w+)\)/g)].map((m) => m[1] ?? '');
  const out: Presence = { exactlyOne: [], together: [], atMostOne: [], excludes: [], requires: [] };
  for (const { rule } of node['x-kubernetes-validations'] ?? []) {
    const r = rule.trim();
    if (/\.filter\(x, x\)\.size\(\) == 1$/.test(r) || /^has\(self\.\w+\) != has\(self\.\w+\)$/.test(r)) out.exactlyOne.push(fields(r));
    else if (/^has\(self\.\w+\) == has\(self\.\w+\)$/.test(r)) out.together.push(fields(r));
    else if (/^!\(has\(self\.\w+\) && has\(self\.\w+\)\)$/.test(r)) out.atMostOne.push(fields(r));
    else if (/^!has\(self\.\w+\) \|\| has\(self\.\w+\)$/.test(r)) {
      const [field = '', needs = ''] = fields(r);
      out.requires.push({ field, needs });
    }
    else if (/^!has\(self\.\w+\) \|\| \((!has\(self\.\w+\)( && )?)+\)$/.test(r)) {
      const [field = '', ...others] = fields(r);
      out.excludes.push({ field, others });
    }
  }
  return out;
}

/** Keeps `present` consistent with the CEL presence rules (the first named field wins ties). */
function applyPresence(present: Set<string>, rules: Presence, picks: readonly number[]): void {
  rules.exactlyOne.forEach((group, i) => {
    const keep = group[(picks[i] ?? 0) % group.length];
    for (const k of group) {
      if (k === keep) present.add(k);
      else present.delete(k);
    }
  });
  for (const { field, others } of rules.excludes) if (present.has(field)) for (const k of others) present.delete(k);
  for (const group of rules.atMostOne) for (const k of group.slice(1)) if (group.slice(0, group.indexOf(k)).some((x) => present.has(x))) present.delete(k);
  for (const group of rules.together) {
    if (group.some((k) => present.has(k))) for (const k of group) present.add(k);
  }
  for (const { field, needs } of rules.requires) if (!present.has(needs)) present.delete(field);
}

/** Whether an array must not be empty (`size(self) > 0`). */
function nonEmpty(node: SchemaNode): boolean {
  return (node['x-kubernetes-validations'] ?? []).some((v) => v.rule.trim() === 'size(self) > 0');
}

function isDuration(node: SchemaNode): boolean {
  return (node['x-kubernetes-validations'] ?? []).some((v) => v.rule.includes('duration(') || v.rule.includes('(ns|us|ms|s|m|h)'));
}

function stringArbitrary(node: SchemaNode, name: string, path: readonly string[], v: FuzzVocabulary): fc.Arbitrary<string> {
  if (node.enum !== undefined) return fc.constantFrom(...(node.enum as string[]));
  const fromVocabulary = vocabularyString(name, path, v);
  if (fromVocabulary !== undefined) return fromVocabulary;
  if (isDuration(node)) return fc.oneof({ arbitrary: duration, weight: 20 }, { arbitrary: odd, weight: 1 });
  if (node.pattern !== undefined) {
    return fc.oneof({ arbitrary: fc.stringMatching(new RegExp(node.pattern)).filter((s) => s.length <= (node.maxLength ?? 256)), weight: 20 }, { arbitrary: odd, weight: 1 });
  }
  const max = Math.min(node.maxLength ?? 24, 24);
  return fc.oneof({ arbitrary: dnsLabel.filter((s) => s.length <= max), weight: 30 }, { arbitrary: odd, weight: 1 });
}

/**
 * An arbitrary of values valid-ish for `node`: most satisfy the schema, some do not (so refusals
 * are covered without a separate mutation pass for strings and numbers).
 */
export function fromSchema(node: SchemaNode, v: FuzzVocabulary, path: readonly string[] = []): fc.Arbitrary<unknown> {
  const name = path[path.length - 1] ?? '';
  switch (node.type) {
    case 'string':
      return stringArbitrary(node, name, path.slice(0, -1), v);
    case 'integer':
    case 'number': {
      if (node.enum !== undefined) return fc.constantFrom(...(node.enum as number[]));
      // Bounds from the schema, or from a CEL rule `self >= a && self <= b` (file modes).
      const rules = (node['x-kubernetes-validations'] ?? []).map((r) => r.rule).join(' ');
      const min = node.minimum ?? Number(/self >= (-?\d+)/.exec(rules)?.[1] ?? 0);
      const max = node.maximum ?? Number(/self <= (-?\d+)/.exec(rules)?.[1] ?? Math.max(min + 1000, 1000));
      return fc.oneof({ arbitrary: fc.integer({ min, max }), weight: 30 }, { arbitrary: fc.integer({ min: -1000, max: 2 ** 31 + 10 }), weight: 1 });
    }
    case 'boolean':
      return fc.boolean();
    case 'array': {
      const items = node.items === undefined ? fc.jsonValue() : fromSchema(node.items, v, [...path, name]);
      const keys = node['x-kubernetes-list-map-keys'];
      const constraints = { minLength: nonEmpty(node) ? 1 : 0, maxLength: Math.min(node.maxItems ?? 3, 3) };
      if (keys !== undefined) return fc.uniqueArray(items, { ...constraints, selector: (item) => JSON.stringify(keys.map((k) => (item as Record<string, unknown> | null)?.[k])) });
      if (node['x-kubernetes-list-type'] === 'set') return fc.uniqueArray(items, { ...constraints, selector: (item) => JSON.stringify(item) });
      return fc.array(items, constraints);
    }
    case 'object':
    default: {
      const properties = node.properties ?? {};
      const keys = Object.keys(properties);
      if (keys.length === 0) {
        if (typeof node.additionalProperties === 'object') {
          return fc.dictionary(dnsLabel, fromSchema(node.additionalProperties, v, [...path, '*']), { maxKeys: 3 });
        }
        return fc.constant({});
      }
      const arbitraries: Record<string, fc.Arbitrary<unknown>> = {};
      for (const key of keys) arbitraries[key] = fromSchema(properties[key] as SchemaNode, v, [...path, key]);
      const required = new Set((node.required ?? []).filter((k) => keys.includes(k)));
      const rules = presenceRules(node);
      // Every field's value is drawn; which optional ones are present is drawn apart (a third of
      // them), then made consistent with the CEL presence rules nine times in ten, so most objects
      // pass CEL and reach the controller while the rest exercise the refusals.
      return fc
        .tuple(
          fc.record(arbitraries),
          fc.array(fc.nat({ max: 2 }), { minLength: keys.length, maxLength: keys.length }),
          fc.array(fc.nat(), { minLength: rules.exactlyOne.length, maxLength: rules.exactlyOne.length }),
          fc.nat({ max: 9 }),
        )
        .map(([values, dice, picks, obey]) => {
          const present = new Set(keys.filter((k, i) => required.has(k) || dice[i] === 0));
          if (obey !== 0) applyPresence(present, rules, picks);
          const out: Record<string, unknown> = {};
          for (const k of keys) if (present.has(k)) out[k] = (values as Record<string, unknown>)[k];
          return out;
        });
    }
  }
}

/** Replaces the value at a random path with a wrong-typed one, or drops it. */
export function mutation(): fc.Arbitrary<(value: unknown) => unknown> {
  const replacement = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer(), fc.string({ maxLength: 8 }), fc.boolean(), fc.constant([]), fc.constant({}), fc.constant({ unknownField: 'x' }));
  return fc.tuple(fc.nat(), replacement).map(([pick, next]) => (value: unknown) => {
    const paths: (string | number)[][] = [];
    const walk = (node: unknown, at: (string | number)[]): void => {
      if (at.length > 0) paths.push(at);
      if (Array.isArray(node)) node.forEach((x, i) => { walk(x, [...at, i]); });
      else if (typeof node === 'object' && node !== null) for (const [k, x] of Object.entries(node)) walk(x, [...at, k]);
    };
    walk(value, []);
    const target = paths[pick % Math.max(paths.length, 1)];
    if (target === undefined) return next;
    const copy = structuredClone(value) as Record<string | number, unknown>;
    let parent: Record<string | number, unknown> = copy;
    for (const step of target.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
    const last = target[target.length - 1] as string | number;
    if (next === undefined && !Array.isArray(parent)) Reflect.deleteProperty(parent, last);
    else parent[last] = next ?? null;
    return copy;
  });
}

/**
 * Pins every endpoint of a backend spec to loopback, whatever the generator or the mutation made:
 * URL fields not among `loopbackUrls` (and still strings) are replaced, AWS always gets explicit
 * endpoints, and the auth methods that would reach a cloud metadata service or the AWS default
 * credential chain (Azure managedIdentity, AWS defaultChain) are swapped for static credentials.
 */
export function pinToLoopback(spec: unknown, loopbackUrls: readonly string[]): unknown {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) return spec;
  const out = structuredClone(spec) as Record<string, unknown>;
  const safe = loopbackUrls[0] ?? 'http://127.0.0.1:1';
  const pin = (block: Record<string, unknown>, field: string, always: boolean): void => {
    const value = block[field];
    if (typeof value === 'string' && !loopbackUrls.includes(value)) block[field] = safe;
    else if (value === undefined && always) block[field] = safe;
  };
  const objectAt = (value: unknown): Record<string, unknown> | undefined =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  const vault = objectAt(out['vault']);
  if (vault !== undefined) pin(vault, 'address', false);
  const aws = objectAt(out['awsSecretsManager']);
  if (aws !== undefined) {
    pin(aws, 'endpoint', true);
    pin(aws, 'stsEndpoint', true);
    const auth = objectAt(aws['auth']);
    if (auth !== undefined && 'defaultChain' in auth) {
      Reflect.deleteProperty(auth, 'defaultChain');
      auth['staticKeys'] = { secretRef: { name: 'fuzz-credentials' } };
    }
  }
  const azure = objectAt(out['azureKeyVault']);
  if (azure !== undefined) {
    const safeHttps = httpsOnly(loopbackUrls)[0] ?? 'https://127.0.0.1:1';
    const pinHttps = (block: Record<string, unknown>, field: string, always: boolean): void => {
      const value = block[field];
      if ((typeof value === 'string' && !httpsOnly(loopbackUrls).includes(value)) || (value === undefined && always)) block[field] = safeHttps;
    };
    pinHttps(azure, 'vaultUrl', false);
    const auth = objectAt(azure['auth']);
    if (auth !== undefined) {
      if ('managedIdentity' in auth) {
        Reflect.deleteProperty(auth, 'managedIdentity');
        auth['clientSecret'] = { tenantId: 't', clientId: 'c', secretRef: { name: 'fuzz-credentials', key: 'client-secret' } };
      }
      for (const method of ['clientSecret', 'workloadIdentity']) {
        const block = objectAt(auth[method]);
        if (block !== undefined) pinHttps(block, 'authorityHost', true);
      }
    }
  }
  return out;
}

/** One fuzzed object (spec only; the runner names it) and whether it was mutated. */
export interface FuzzCase {
  readonly kind: FuzzedKind;
  readonly spec: unknown;
  readonly mutated: boolean;
}

/** Objects of the three kinds: valid-ish from the schema, a quarter of them mutated. */
export function fuzzCase(v: FuzzVocabulary, root = process.cwd()): fc.Arbitrary<FuzzCase> {
  const byKind = fuzzedKinds.map((kind) => {
    const schema = fromSchema(specSchema(kind, root), v, []);
    return fc.tuple(schema, fc.option(mutation(), { freq: 3, nil: undefined })).map(([spec, mutate]): FuzzCase => {
      const mutated = mutate === undefined ? spec : mutate(spec);
      return { kind, spec: kind === 'SecretBinding' ? mutated : pinToLoopback(mutated, v.loopbackUrls), mutated: mutate !== undefined };
    });
  });
  return fc.oneof({ arbitrary: byKind[0] as fc.Arbitrary<FuzzCase>, weight: 3 }, { arbitrary: byKind[1] as fc.Arbitrary<FuzzCase>, weight: 2 }, { arbitrary: byKind[2] as fc.Arbitrary<FuzzCase>, weight: 1 });
}
