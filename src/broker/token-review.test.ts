import { describe, expect, it } from '@jest/globals';
import { CachingTokenReviewer, extraKeys, serviceAccountOf, TokenReviewCache, type TokenIdentity, type TokenReviewer } from './token-review.ts';

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

describe('TokenReviewCache', () => {
  const identity = (uid: string): TokenIdentity => ({ authenticated: true, username: 'system:serviceaccount:ns:web', extra: { [extraKeys.podUid]: [uid] } });
  const jwt = (exp: number): string => `h.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.s`;

  it('keeps an entry no longer than its ttl nor past the token exp, and never a refusal', () => {
    let now = 1_000_000;
    const cache = new TokenReviewCache({ ttlMs: 120_000, now: () => now });
    const shortLived = jwt((now + 30_000) / 1000);
    cache.remember(shortLived, ['a'], identity('u1'));
    cache.remember('opaque', ['a'], identity('u2'));
    cache.remember('refused', ['a'], { authenticated: false, error: 'no' });
    expect(cache.lookup(shortLived, ['a'])).toEqual(identity('u1'));
    expect(cache.lookup(shortLived, ['b'])).toBeUndefined();
    expect(cache.lookup('refused', ['a'])).toBeUndefined();
    now += 30_001;
    expect(cache.lookup(shortLived, ['a'])).toBeUndefined();
    expect(cache.lookup('opaque', ['a'])).toEqual(identity('u2'));
    now += 90_000;
    expect(cache.lookup('opaque', ['a'])).toBeUndefined();
    // Already expired: not stored at all.
    cache.remember(jwt(now / 1000 - 1), ['a'], identity('u3'));
    expect(cache.size).toBe(0);
  });

  it('forgets a token, and every token of a pod', () => {
    const cache = new TokenReviewCache({ ttlMs: 120_000 });
    cache.remember('t1', ['a'], identity('u1'));
    cache.remember('t2', ['a'], identity('u1'));
    cache.remember('t3', ['a'], identity('u2'));
    cache.forgetPod('u1');
    expect([cache.lookup('t1', ['a']), cache.lookup('t2', ['a'])]).toEqual([undefined, undefined]);
    cache.forget('t3', ['a']);
    expect(cache.size).toBe(0);
  });
});
