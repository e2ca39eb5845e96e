import { describe, expect, it } from '@jest/globals';
import { CachingTokenReviewer, serviceAccountOf, type TokenIdentity, type TokenReviewer } from './token-review.ts';

class CountingReviewer implements TokenReviewer {
  calls = 0;
  review(token: string): Promise<TokenIdentity> {
    this.calls += 1;
    return Promise.resolve(
      token === 'good' ? { authenticated: true, username: 'system:serviceaccount:ns:plugin', extra: {} } : { authenticated: false, error: 'no' },
    );
  }
}

describe('CachingTokenReviewer', () => {
  it('reuses a success for its ttl only, never a refusal, and keys by audience', async () => {
    let now = 0;
    const inner = new CountingReviewer();
    const cache = new CachingTokenReviewer(inner, { ttlMs: 10_000, now: () => now });
    await cache.review('good', ['a']);
    await cache.review('good', ['a']);
    expect(inner.calls).toBe(1);
    await cache.review('good', ['b']);
    expect(inner.calls).toBe(2);
    now = 10_001;
    await cache.review('good', ['a']);
    expect(inner.calls).toBe(3);
    await cache.review('bad', ['a']);
    await cache.review('bad', ['a']);
    expect(inner.calls).toBe(5);
  });

  it('stays bounded', async () => {
    const inner: TokenReviewer = { review: () => Promise.resolve({ authenticated: true, username: 'u', extra: {} }) };
    const cache = new CachingTokenReviewer(inner, { ttlMs: 10_000, maxEntries: 2 });
    for (const t of ['1', '2', '3', '4']) await cache.review(t, ['a']);
    expect(cache.size).toBe(2);
  });
});

describe('serviceAccountOf', () => {
  it('parses service-account usernames and nothing else', () => {
    expect(serviceAccountOf('system:serviceaccount:kube-system:csi')).toEqual({ namespace: 'kube-system', name: 'csi' });
    expect(serviceAccountOf('system:node:n1')).toBeUndefined();
    expect(serviceAccountOf('system:serviceaccount::x')).toBeUndefined();
    expect(serviceAccountOf('admin')).toBeUndefined();
  });
});
