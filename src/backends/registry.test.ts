import { describe, expect, it } from '@jest/globals';
import { InvalidConfigError, providerNames, type BackendContext } from './backend.port.ts';
import { backendProviders, createBackend, parseBackendSpec, providerFor } from './registry.ts';

const context: BackendContext = {
  namespace: 'ns',
  requestServiceAccountToken: () => Promise.reject(new Error('unused')),
  readOperatorSecret: () => Promise.reject(new Error('unused')),
  onLogin: () => undefined,
};

describe('backend registry', () => {
  it('registers exactly one provider per provider name, under its own name', () => {
    expect(Object.keys(backendProviders).sort()).toEqual([...providerNames].sort());
    for (const name of providerNames) expect(providerFor(name).name).toBe(name);
  });

  it('finds the one provider block of a spec and lets the provider validate it', async () => {
    const parsed = parseBackendSpec({ fake: { keys: [{ key: 'a' }] }, refreshInterval: '5m', rateLimit: {} });
    expect(parsed.provider).toBe('fake');
    const backend = createBackend(parsed, context);
    expect(backend.provider).toBe('fake');
    const [outcome] = await backend.fetch([{ key: 'a', version: { kind: 'latest' } }], { signal: new AbortController().signal });
    expect(outcome?.ok).toBe(true);
    await backend.close();
  });

  it('refuses a spec with no provider block, or with two', () => {
    expect(() => parseBackendSpec({ refreshInterval: '5m' })).toThrow(new InvalidConfigError('exactly one of vault, awsSecretsManager, azureKeyVault, conjur, fake must be set; none is'));
    expect(() => parseBackendSpec({ fake: { keys: [] }, vault: { address: 'https://v' } })).toThrow(/found vault, fake/);
  });

  it('passes the provider validation error through', () => {
    expect(() => parseBackendSpec({ fake: { keys: 'nope' } })).toThrow(InvalidConfigError);
  });
});
