import { readFileSync } from 'node:fs';
import { run, isCelError } from '@bufbuild/cel';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';

/**
 * Offline validation of a SecretBinding as the API server would do it at `kubectl apply`: the
 * CRD's OpenAPI v3 schema (with ajv), then its `x-kubernetes-validations` CEL rules (with
 * @bufbuild/cel), each evaluated with `self` bound to its node — integers as CEL ints, objects as
 * maps, as the API server types them. Transition rules (`oldSelf`) need a stored object and are
 * skipped. Errors read like the API server's: `spec.files[0].mode: Invalid value: …`.
 */

interface SchemaNode {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
  readonly additionalProperties?: SchemaNode | boolean;
  readonly 'x-kubernetes-validations'?: readonly { readonly rule: string; readonly message?: string }[];
}

/** The SecretBinding CRD's schema (the one of `crds/`, shipped next to dist/ in the image). */
export function loadBindingSchema(crdPath: string): SchemaNode {
  const crd = parse(readFileSync(crdPath, 'utf8')) as { spec: { versions: { name: string; schema: { openAPIV3Schema: SchemaNode } }[] } };
  const schema = crd.spec.versions.find((v) => v.name === 'v1alpha1')?.schema.openAPIV3Schema;
  if (schema === undefined) throw new Error(`${crdPath}: no v1alpha1 schema`);
  return schema;
}

function fieldPath(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '');
}

function schemaError(e: ErrorObject): string {
  const path = fieldPath(e.instancePath);
  const field = e.keyword === 'required' ? [path, String((e.params as { missingProperty?: string }).missingProperty)].filter((p) => p !== '').join('.') : path || '<root>';
  if (e.keyword === 'required') return `${field}: Required value`;
  if (e.keyword === 'enum') return `${field}: Unsupported value: supported values: ${((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
  if (e.keyword === 'additionalProperties') return `${field}: unknown field "${String((e.params as { additionalProperty?: string }).additionalProperty)}"`;
  return `${field}: Invalid value: ${e.message ?? e.keyword}`;
}

/** CEL values typed as the API server types them from the schema. */
function toCel(value: unknown, schema: SchemaNode | undefined): unknown {
  if (schema?.type === 'integer' && typeof value === 'number') return BigInt(value);
  if (Array.isArray(value)) return value.map((v) => toCel(v, schema?.items));
  if (value !== null && typeof value === 'object') {
    const extra = typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    return new Map(Object.entries(value).map(([k, v]) => [k, toCel(v, schema?.properties?.[k] ?? extra)]));
  }
  return value;
}

function celErrors(schema: SchemaNode, value: unknown, path: string): string[] {
  const errors: string[] = [];
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    if (rule.rule.includes('oldSelf')) continue;
    const result = run(rule.rule, { self: toCel(value, schema) as never });
    if (isCelError(result)) errors.push(`${path || '<root>'}: Invalid value: rule "${rule.rule}" could not be evaluated: ${result.message}`);
    else if (result !== true) errors.push(`${path || '<root>'}: Invalid value: ${rule.message ?? `failed rule: ${rule.rule}`}`);
  }
  if (Array.isArray(value) && schema.items !== undefined) {
    for (const [i, item] of value.entries()) errors.push(...celErrors(schema.items, item, `${path}[${String(i)}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const child = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (child !== undefined) errors.push(...celErrors(child, v, path === '' ? k : `${path}.${k}`));
    }
  }
  return errors;
}

export type BindingValidator = (object: unknown) => string[];

/** A validator for SecretBinding objects: every schema error, else every CEL rule error. */
export function bindingValidator(schema: SchemaNode): BindingValidator {
  // OpenAPI's int32/int64/byte formats and the x-kubernetes-* keywords are not JSON Schema's.
  const validate = new Ajv({ allErrors: true, strict: false, validateFormats: false }).compile(schema);
  return (object) => {
    const errors: string[] = [];
    const name = (object as { metadata?: { name?: unknown } } | null)?.metadata?.name;
    if (typeof name !== 'string' || name === '') errors.push('metadata.name: Required value: name is required');
    if (!validate(object)) return [...errors, ...(validate.errors ?? []).map(schemaError)];
    return [...errors, ...celErrors(schema, object, '')];
  };
}
