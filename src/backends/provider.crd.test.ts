import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { awsSecretsManagerProvider } from './aws/index.ts';
import { azureKeyVaultProvider } from './azure/index.ts';
import { conjurProvider } from './conjur/index.ts';
import { testCaBundle } from './provider.test-fixtures.ts';
import { vaultProvider } from './vault/index.ts';

/**
 * Drift guard between crds/ (the source of truth for field names) and the providers' strict
 * parsers: for each provider block of both backend CRDs and each auth method, a spec with every
 * field the CRD declares must parse. A field added to a CRD without the parser learning it fails
 * here, not at the first apply.
 */

interface SchemaNode {
  readonly type?: string;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly default?: unknown;
  readonly enum?: readonly unknown[];
}

/** Example values for fields whose shape a plain string does not satisfy. */
const examples: Readonly<Record<string, unknown>> = {
  address: 'https://vault.example.com:8200',
  endpoint: 'https://secretsmanager.eu-west-1.amazonaws.com',
  stsEndpoint: 'https://sts.eu-west-1.amazonaws.com',
  vaultUrl: 'https://my-vault.vault.azure.net',
  applianceUrl: 'https://conjur.example.com',
  authorityHost: 'https://login.microsoftonline.com',
  region: 'eu-west-1',
  roleArn: 'arn:aws:iam::123456789012:role/app',
  serviceVersion: '7.5',
  caBundle: testCaBundle,
  mount: 'secret',
  mountPath: 'kubernetes',
};

function example(name: string, node: SchemaNode): unknown {
  if (node.properties !== undefined) {
    return Object.fromEntries(Object.entries(node.properties).map(([key, child]) => [key, example(key, child)]));
  }
  if (node.enum !== undefined) return node.enum[0];
  if (node.default !== undefined) return node.default;
  if (name in examples) return examples[name];
  if (node.type === 'object') return {};
  if (node.type === 'integer') return 1;
  if (node.type === 'boolean') return false;
  return `${name}-value`;
}

const providers = { vault: vaultProvider, awsSecretsManager: awsSecretsManagerProvider, azureKeyVault: azureKeyVaultProvider, conjur: conjurProvider } as const;

describe.each(['secretbinder.dev_secretbackends.yaml', 'secretbinder.dev_clustersecretbackends.yaml'])('%s', (file) => {
  const crd = parse(readFileSync(new URL(`../../crds/${file}`, import.meta.url), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
  };
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec?.properties ?? {};

  it.each(Object.keys(providers) as (keyof typeof providers)[])('every %s field the CRD declares is understood', (name) => {
    const block = spec[name];
    expect(block?.properties?.auth?.properties).toBeDefined();
    const methods = Object.keys(block?.properties?.auth?.properties ?? {});
    expect(methods.length).toBeGreaterThan(0);
    for (const method of methods) {
      const full = example(name, block as SchemaNode) as Record<string, unknown>;
      const auth = full.auth as Record<string, unknown>;
      const only = { ...full, auth: { [method]: auth[method] } };
      expect(() => providers[name].parseConfig(only)).not.toThrow();
    }
  });
});
