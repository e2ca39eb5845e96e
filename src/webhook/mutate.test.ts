import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { AdmissionRequest, Decision } from './admission.ts';
import { mutate, type MutateContext } from './mutate.ts';
import { validate } from './validate.ts';

/**
 * Golden tests: every `testdata/mutate/<case>.input.json` (namespace + pod) is admitted against the
 * bindings of `testdata/mutate/bindings.json`, and the decision — the exact JSON patch, or the
 * refusal message — must equal `<case>.golden.json`. `UPDATE_GOLDEN=1` rewrites the golden files
 * (review the diff before committing).
 */

const dir = join(import.meta.dirname, 'testdata', 'mutate');
const bindings = JSON.parse(readFileSync(join(dir, 'bindings.json'), 'utf8')) as SecretBinding[];
const ctx: MutateContext = {
  operatorNamespace: 'secret-binder-system',
  lookupBinding: (namespace, name) => bindings.find((b) => b.metadata.namespace === namespace && b.metadata.name === name),
};
const cases = readdirSync(dir)
  .filter((f) => f.endsWith('.input.json'))
  .map((f) => f.slice(0, -'.input.json'.length))
  .sort();

interface Input {
  readonly namespace: string;
  readonly pod: V1Pod;
}

function request(input: Input, uid = 'u-1'): AdmissionRequest {
  return {
    uid,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: input.namespace,
    operation: 'CREATE',
    object: input.pod,
  };
}

function load(name: string): Input {
  return JSON.parse(readFileSync(join(dir, `${name}.input.json`), 'utf8')) as Input;
}

describe('mutate (golden)', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(10);
  });

  it.each(cases)('%s', (name) => {
    const decision = mutate(request(load(name)), ctx);
    const goldenPath = join(dir, `${name}.golden.json`);
    // eslint-disable-next-line no-restricted-properties -- test-only switch that regenerates the golden files
    if (process.env['UPDATE_GOLDEN'] === '1') writeFileSync(goldenPath, `${JSON.stringify(decision, null, 2)}\n`);
    const golden = JSON.parse(readFileSync(goldenPath, 'utf8')) as Decision;
    expect(decision).toEqual(golden);
  });
});

describe('mutate (behaviour of the patch)', () => {
  const patched = (name: string): V1Pod => {
    const input = load(name);
    const decision = mutate(request(input), ctx);
    if (decision.outcome !== 'patched') throw new Error(`expected a patch, got ${decision.outcome}`);
    return fastJsonPatch.applyPatch(structuredClone(input.pod), fastJsonPatch.deepClone(decision.patch) as fastJsonPatch.Operation[]).newDocument;
  };

  it('adds one read-only CSI volume and mounts it only into the listed containers', () => {
    const pod = patched('one-binding');
    expect(pod.spec?.volumes).toEqual([{ name: 'secretbinder-db', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } } }]);
    expect(pod.spec?.containers.find((c) => c.name === 'app')?.volumeMounts).toEqual([
      { name: 'secretbinder-db', mountPath: '/var/run/secrets/secretbinder/db', readOnly: true },
    ]);
    expect(pod.spec?.containers.find((c) => c.name === 'proxy')?.volumeMounts).toBeUndefined();
    expect(pod.metadata?.annotations?.['secretbinder.dev/injected']).toBe('db');
  });

  it('uses per-binding and pod-wide mount paths, includes init containers, keeps existing mounts', () => {
    const pod = patched('two-bindings-paths');
    const mounts = (c: string): unknown => [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((x) => x.name === c)?.volumeMounts;
    expect(mounts('migrate')).toEqual([{ name: 'secretbinder-db', mountPath: '/etc/db', readOnly: true }]);
    expect(mounts('app')).toEqual([
      { name: 'cache', mountPath: '/cache' },
      { name: 'secretbinder-db', mountPath: '/etc/db', readOnly: true },
      { name: 'secretbinder-api-keys', mountPath: '/etc/keys', readOnly: true },
    ]);
    expect(mounts('worker')).toEqual([{ name: 'secretbinder-api-keys', mountPath: '/etc/keys', readOnly: true }]);
  });

  it('never runs twice: the patched pod is admitted unchanged', () => {
    for (const name of ['one-binding', 'two-bindings-paths', 'reuse-existing-volume']) {
      const again = mutate(request({ namespace: 'shop', pod: patched(name) }), ctx);
      expect(again).toEqual({ outcome: 'allowed', warnings: [] });
    }
  });

  it('produces pods the validating webhook accepts', () => {
    for (const name of ['one-binding', 'two-bindings-paths', 'reuse-existing-volume']) {
      expect(validate(request({ namespace: 'shop', pod: patched(name) }), ctx.lookupBinding).outcome).toBe('allowed');
    }
  });

  it('ignores UPDATEs and other resources', () => {
    const input = load('one-binding');
    expect(mutate({ ...request(input), operation: 'UPDATE' }, ctx).outcome).toBe('allowed');
    expect(mutate({ ...request(input), resource: { group: 'apps', version: 'v1', resource: 'deployments' } }, ctx).outcome).toBe('allowed');
  });
});
