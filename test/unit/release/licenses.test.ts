import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { accepted, licensesDoc, productionLicenses } from '../../harness/licenses.ts';

/** docs/licenses.md lists the production dependencies' licenses as they are, and each is accepted (ADR 0235). */

const root = process.cwd();

describe('licenses of the production dependencies', () => {
  const packages = productionLicenses(root);

  it('docs/licenses.md is current (npm run gen:licenses)', () => {
    expect(packages.length).toBeGreaterThan(100);
    expect(packages.map((p) => p.name)).toEqual(expect.arrayContaining(['@kubernetes/client-node', 'prom-client', 'winston']));
    expect(readFileSync(join(root, 'docs', 'licenses.md'), 'utf8')).toBe(licensesDoc(packages));
  });

  it('every license is one the project accepts', () => {
    expect(packages.filter((p) => !accepted(p.license)).map((p) => `${p.name}@${p.version}: ${p.license}`)).toEqual([]);
  });

  it('reads SPDX expressions: an OR is accepted by one alternative, an AND needs every part', () => {
    expect(accepted('MIT')).toBe(true);
    expect(accepted('Public Domain OR MIT')).toBe(true);
    expect(accepted('(MIT OR GPL-3.0-only)')).toBe(true);
    expect(accepted('MIT AND GPL-3.0-only')).toBe(false);
    expect(accepted('GPL-3.0-only')).toBe(false);
    expect(accepted('UNKNOWN')).toBe(false);
  });
});
