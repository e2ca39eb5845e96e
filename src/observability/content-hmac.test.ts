import { describe, expect, it } from '@jest/globals';
import { contentHmac } from './content-hmac.ts';
import { SecretValue } from './secret-value.ts';

const key = SecretValue.fromString('0123456789abcdef0123456789abcdef');
const file = (path: string, content: string) => ({ path, content: SecretValue.fromString(content) });

describe('contentHmac', () => {
  it('is a keyed SHA-256 HMAC in a stable textual form', () => {
    expect(contentHmac(key, [file('a', '1')])).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
  });

  it('does not depend on file order', () => {
    const one = contentHmac(key, [file('b.txt', 'B'), file('a.txt', 'A'), file('c/d', 'D')]);
    const two = contentHmac(key, [file('c/d', 'D'), file('a.txt', 'A'), file('b.txt', 'B')]);
    expect(one).toBe(two);
  });

  it('changes with any content, any path and the key', () => {
    const base = contentHmac(key, [file('a', 'x'), file('b', 'y')]);
    expect(contentHmac(key, [file('a', 'x'), file('b', 'z')])).not.toBe(base);
    expect(contentHmac(key, [file('a', 'x'), file('c', 'y')])).not.toBe(base);
    expect(contentHmac(key, [file('a', 'x')])).not.toBe(base);
    expect(contentHmac(SecretValue.fromString('another-key-of-sufficient-len'), [file('a', 'x'), file('b', 'y')])).not.toBe(base);
  });

  it('keeps path/content boundaries unambiguous', () => {
    expect(contentHmac(key, [file('ab', 'c')])).not.toBe(contentHmac(key, [file('a', 'bc')]));
    expect(contentHmac(key, [file('a', ''), file('b', 'x')])).not.toBe(contentHmac(key, [file('a', 'x'), file('b', '')]));
  });

  it('accepts raw bytes and SecretValues alike', () => {
    expect(contentHmac(key, [{ path: 'a', content: new TextEncoder().encode('v') }])).toBe(contentHmac(key, [file('a', 'v')]));
  });

  it('refuses duplicate paths and short keys', () => {
    expect(() => contentHmac(key, [file('a', '1'), file('a', '2')])).toThrow(/duplicate/);
    expect(() => contentHmac(SecretValue.fromString('short'), [file('a', '1')])).toThrow(/at least 16 bytes/);
  });
});
