import { describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { SecretValue } from '../../observability/secret-value.ts';
import { renderFiles, valueRefId, valueRefsOf, type FileTemplate, type ValueRef } from './file-set.ts';

const latest = { kind: 'latest' } as const;
const values = new Map<string, string>([
  [valueRefId({ key: 'app/db', version: latest, property: 'user' }), 'alice'],
  [valueRefId({ key: 'app/db', version: latest, property: 'password' }), 'p"a$s\\w=o:r d\nline2'],
  [valueRefId({ key: 'app/api', version: latest }), 'tok-123'],
  [valueRefId({ key: 'app/api', version: { kind: 'id', id: '3' } }), 'tok-old'],
]);
const valueOf = (ref: ValueRef): SecretValue => {
  const value = values.get(valueRefId(ref));
  if (value === undefined) throw new Error(`no value for ${valueRefId(ref)}`);
  return SecretValue.fromString(value);
};

const formatted = (format: 'json' | 'dotenv' | 'properties' | 'yaml'): FileTemplate => ({
  kind: 'formatted',
  path: `db.${format}`,
  mode: 0o440,
  format,
  items: [
    { name: 'DB_USER', ref: { key: 'app/db', version: latest, property: 'user' } },
    { name: 'DB_PASSWORD', ref: { key: 'app/db', version: latest, property: 'password' } },
  ],
});

describe('file set rendering', () => {
  it('deduplicates value references across files, keeping versions and properties apart', () => {
    const templates: FileTemplate[] = [
      { kind: 'single', path: 'token', mode: 0o400, ref: { key: 'app/api', version: latest } },
      { kind: 'single', path: 'token.old', mode: 0o400, ref: { key: 'app/api', version: { kind: 'id', id: '3' } } },
      formatted('json'),
      formatted('dotenv'),
    ];
    expect(valueRefsOf(templates).map(valueRefId)).toHaveLength(4);
  });

  it('renders single files with their modes', () => {
    const [file] = renderFiles([{ kind: 'single', path: 'token', mode: 0o400, ref: { key: 'app/api', version: latest } }], valueOf);
    expect(file?.path).toBe('token');
    expect(file?.mode).toBe(0o400);
    expect(file?.content.revealText()).toBe('tok-123');
  });

  it('renders json and yaml that parse back to the values', () => {
    const [json] = renderFiles([formatted('json')], valueOf);
    expect(JSON.parse(json?.content.revealText() ?? '')).toEqual({ DB_USER: 'alice', DB_PASSWORD: 'p"a$s\\w=o:r d\nline2' });
    const [yaml] = renderFiles([formatted('yaml')], valueOf);
    expect(parseYaml(yaml?.content.revealText() ?? '')).toEqual({ DB_USER: 'alice', DB_PASSWORD: 'p"a$s\\w=o:r d\nline2' });
  });

  it('escapes dotenv values so quotes, dollars, backslashes and newlines survive', () => {
    const [file] = renderFiles([formatted('dotenv')], valueOf);
    expect(file?.content.revealText()).toBe('DB_USER="alice"\nDB_PASSWORD="p\\"a\\$s\\\\w=o:r d\\nline2"\n');
  });

  it('escapes java properties separators, backslashes and newlines', () => {
    const [file] = renderFiles([formatted('properties')], valueOf);
    expect(file?.content.revealText()).toBe('DB_USER=alice\nDB_PASSWORD=p"a$s\\\\w\\=o\\:r d\\nline2\n');
  });

  it('never prints the rendered content', () => {
    const [file] = renderFiles([formatted('json')], valueOf);
    expect(JSON.stringify(file)).not.toContain('alice');
  });
});
