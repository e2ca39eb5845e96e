import { describe, expect, it } from '@jest/globals';
import { format, inspect } from 'node:util';
import { SecretValue } from './secret-value.ts';
import { createLogger } from './logger.ts';
import { CapturedOutput } from './captured-output.ts';

const plaintext = 'hunter2-correct-horse-battery';

describe('SecretValue never prints its value', () => {
  const secret = SecretValue.fromString(plaintext);
  const nested = { db: { password: secret, list: [secret] }, map: new Map([['k', secret]]) };

  it.each([
    ['toString', () => secret.toString()],
    ['String()', () => String(secret)],
    ['template literal', () => `value=${String(secret)} / ${secret as unknown as string}`],
    ['concatenation', () => 'value=' + (secret as unknown as string)],
    ['JSON.stringify', () => JSON.stringify(nested)],
    ['util.inspect', () => inspect(nested, { depth: 10, showHidden: true })],
    ['util.format %s %o %O %j', () => format('%s %o %O %j', secret, nested, nested, nested)],
    ['console.log formatting', () => format(nested, secret)],
  ])('through %s', (_how, render) => {
    const out = render();
    expect(out).toContain('[REDACTED]');
    expect(out).not.toContain(plaintext);
  });

  it('keeps the bytes for the one place that reveals them', () => {
    expect(secret.revealText()).toBe(plaintext);
    expect(secret.byteLength).toBe(plaintext.length);
    expect(secret.equals(SecretValue.fromString(plaintext))).toBe(true);
    expect(secret.equals(SecretValue.fromString('other'))).toBe(false);
  });

  it('prints [REDACTED] in the logger output, wherever it sits', async () => {
    const out = new CapturedOutput();
    const log = createLogger({ level: 'debug', component: 'test', stream: out });
    log.info('fetched', { value: secret, nested, items: [1, secret] });
    log.child({ token: secret }).warn('child line');
    const text = await out.text();
    expect(text).not.toContain(plaintext);
    const [first, second] = await out.lines();
    expect(first).toMatchObject({
      message: 'fetched',
      value: '[REDACTED]',
      nested: { db: { password: '[REDACTED]', list: ['[REDACTED]'] }, map: { k: '[REDACTED]' } },
      items: [1, '[REDACTED]'],
    });
    expect(second).toMatchObject({ message: 'child line', token: '[REDACTED]' });
  });
});
