import { describe, expect, it } from '@jest/globals';
import { checkEnvLiteral, entropy, randomLooking, secretLikeName } from './sprawl-rules.ts';
import { scan } from './sprawl.ts';

describe('sprawl rules', () => {
  it('recognises known formats, secret-like names and random-looking literals', () => {
    expect(checkEnvLiteral('X', 'AKIAQX7RZK3MT5WB2N4H')?.rule).toBe('SBS001');
    expect(checkEnvLiteral('URL', 'mysql://root:pw12345@db:3306/x')?.rule).toBe('SBS001');
    expect(checkEnvLiteral('API_TOKEN', 'letmein')?.rule).toBe('SBS002');
    expect(checkEnvLiteral('SEED', 'n8Vq2LxR7tYp4KwZ9sMb3HdF')?.rule).toBe('SBS003');
  });

  it('leaves ordinary settings alone', () => {
    for (const [name, value] of [
      ['DB_PASSWORD_FILE', '/run/secrets/db'],
      ['PUBLIC_KEY', 'abc-def-ghi'],
      ['TOKEN_TTL', '15m'],
      ['DB_PASSWORD', '$(DB_PASSWORD)'],
      ['GIT_COMMIT', '9fceb02d0ae598e95dc970b74767f19372d61af8'],
      ['INSTANCE_ID', '3f2b8c4e-9a1d-4e7f-b6c5-0d8e2a7f1c93'],
      ['UPSTREAM', 'https://api.example.com/v1/items'],
      ['ENABLED', 'true'],
    ] as const) {
      expect([name, checkEnvLiteral(name, value)]).toEqual([name, undefined]);
    }
    expect(secretLikeName('CACHE_KEY_PREFIX')).toBe(false);
    expect(randomLooking('aaaaaaaaaaaaaaaaaaaaaaaa')).toBe(false);
    expect(entropy('abab')).toBe(1);
  });

  it('reports where a value is, never the value', () => {
    const value = 'hunter2-Plaintext-Qw9';
    const findings = scan(
      [{ object: { kind: 'Pod', metadata: { name: 'p', namespace: 'n' }, spec: { containers: [{ name: 'c', env: [{ name: 'DB_PASSWORD', value }] }] } } }],
      { secretsRead: false },
    );
    expect(findings.map((f) => [f.rule, f.location.fieldPath])).toEqual([['SBS002', 'spec.containers[0].env[0].value']]);
    const text = JSON.stringify(findings);
    for (let i = 0; i + 8 <= value.length; i++) expect(text).not.toContain(value.slice(i, i + 8));
  });
});
