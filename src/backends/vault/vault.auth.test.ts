import { describe, expect, it } from '@jest/globals';
import { AuthFailedError, UnavailableError, type BackendContext } from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { VaultSession, type VaultCalls } from './vault.auth.ts';
import type { VaultAuthConfig } from './vault.config.ts';
import type { VaultRequestOptions, VaultResponse } from './vault.client.ts';

/**
 * The token lifecycle, against a scripted stand-in for our own VaultClient (the HTTP side is
 * covered against OpenBao in test/conformance/): when it logs in, renews, re-reads, gives up.
 */

interface Call {
  readonly method: 'read' | 'write';
  readonly path: string;
  readonly body?: Readonly<Record<string, unknown>>;
  readonly token?: string;
}

type Script = (call: Call) => Promise<VaultResponse>;

function scriptedVault(script: Script): VaultCalls & { calls: Call[] } {
  const calls: Call[] = [];
  return {
    calls,
    read(path: string, options: VaultRequestOptions) {
      const call: Call = { method: 'read', path, ...(options.token === undefined ? {} : { token: options.token }) };
      calls.push(call);
      return script(call);
    },
    write(path: string, body: Readonly<Record<string, unknown>>, options: VaultRequestOptions) {
      const call: Call = { method: 'write', path, body, ...(options.token === undefined ? {} : { token: options.token }) };
      calls.push(call);
      return script(call);
    },
  };
}

function apiError(statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { response: { statusCode, body: { errors: [message] } } });
}

function context(overrides: Partial<BackendContext> = {}): BackendContext & { logins: number; tokenRequests: unknown[] } {
  const ctx = {
    namespace: 'team-a',
    logins: 0,
    tokenRequests: [] as unknown[],
    requestServiceAccountToken(request: Parameters<BackendContext['requestServiceAccountToken']>[0]) {
      ctx.tokenRequests.push(request);
      return Promise.resolve({ token: SecretValue.fromString('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2ln'), expiresAt: new Date(0) });
    },
    readOperatorSecret: () => Promise.resolve(SecretValue.fromString('secret-id-1')),
    onLogin() {
      ctx.logins++;
    },
    ...overrides,
  };
  return ctx;
}

const kubernetes: VaultAuthConfig = { method: 'kubernetes', role: 'app', mountPath: 'k8s/prod', serviceAccountName: 'reader', audiences: ['vault'], loginAddress: 'https://vault.example.com' };
const signal = (): AbortSignal => AbortSignal.timeout(5000);

/** A login answer; renew-self answers with `renewTtl` (or fails when it is an Error). */
function vaultWith(options: { ttl: number; renewTtl?: number | Error; tokens?: string[] }): ReturnType<typeof scriptedVault> {
  const tokens = [...(options.tokens ?? ['hvs.token-1', 'hvs.token-2', 'hvs.token-3'])];
  return scriptedVault((call) => {
    if (call.path.endsWith('/login')) {
      return Promise.resolve({ auth: { client_token: tokens.shift(), lease_duration: options.ttl, renewable: true } });
    }
    if (call.path === 'auth/token/renew-self') {
      if (options.renewTtl instanceof Error) return Promise.reject(options.renewTtl);
      return Promise.resolve({ auth: { client_token: call.token, lease_duration: options.renewTtl ?? options.ttl, renewable: true } });
    }
    if (call.path === 'auth/token/revoke-self') return Promise.resolve({});
    return Promise.reject(apiError(404, 'unexpected call'));
  });
}

describe('VaultSession', () => {
  it('logs in once with a TokenRequest token of the configured service account, for concurrent callers', async () => {
    const vault = vaultWith({ ttl: 3600 });
    const ctx = context();
    const session = new VaultSession(kubernetes, vault, ctx, () => 0);
    const tokens = await Promise.all(Array.from({ length: 5 }, () => session.token(signal())));
    expect(tokens.map((t) => t.revealText())).toEqual(Array(5).fill('hvs.token-1'));
    expect(vault.calls).toHaveLength(1);
    expect(vault.calls[0]?.path).toBe('auth/k8s/prod/login');
    expect(vault.calls[0]?.body).toEqual({ role: 'app', jwt: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2ln' });
    expect(ctx.tokenRequests).toEqual([{ namespace: 'team-a', serviceAccountName: 'reader', audiences: ['vault'], expirationSeconds: 600, recipient: 'https://vault.example.com' }]);
    expect(ctx.logins).toBe(1);
  });

  it('keeps the token until two thirds of its TTL, then renews it rather than logging in', async () => {
    let now = 0;
    const vault = vaultWith({ ttl: 300 });
    const ctx = context();
    const session = new VaultSession(kubernetes, vault, ctx, () => now);
    await session.token(signal());
    now = 199_000;
    await session.token(signal());
    expect(vault.calls.map((c) => c.path)).toEqual(['auth/k8s/prod/login']);
    now = 201_000;
    expect((await session.token(signal())).revealText()).toBe('hvs.token-1');
    expect(vault.calls.map((c) => c.path)).toEqual(['auth/k8s/prod/login', 'auth/token/renew-self']);
    expect(vault.calls[1]?.token).toBe('hvs.token-1');
    expect(vault.calls[1]?.body).toEqual({ increment: '300s' });
    expect(ctx.logins).toBe(1);
  });

  it('logs in again when a renewal gives back less than a third of the TTL (max TTL reached) or fails', async () => {
    for (const renewTtl of [60, apiError(403, 'permission denied')]) {
      let now = 0;
      const vault = vaultWith({ ttl: 300, renewTtl });
      const ctx = context();
      const session = new VaultSession(kubernetes, vault, ctx, () => now);
      await session.token(signal());
      now = 250_000;
      expect((await session.token(signal())).revealText()).toBe('hvs.token-2');
      expect(vault.calls.map((c) => c.path)).toEqual(['auth/k8s/prod/login', 'auth/token/renew-self', 'auth/k8s/prod/login']);
      expect(ctx.logins).toBe(2);
    }
  });

  it('does not try to renew an expired token', async () => {
    let now = 0;
    const vault = vaultWith({ ttl: 300 });
    const session = new VaultSession(kubernetes, vault, context(), () => now);
    await session.token(signal());
    now = 301_000;
    await session.token(signal());
    expect(vault.calls.map((c) => c.path)).toEqual(['auth/k8s/prod/login', 'auth/k8s/prod/login']);
  });

  it('keeps a live token when Vault is unreachable at refresh time, but not when the login is refused', async () => {
    let now = 0;
    let failure: Error | undefined;
    const vault = scriptedVault((call) => {
      if (failure !== undefined) return Promise.reject(failure);
      if (call.path.endsWith('/login')) return Promise.resolve({ auth: { client_token: 'hvs.live', lease_duration: 300, renewable: false } });
      return Promise.reject(apiError(404, 'unexpected'));
    });
    const session = new VaultSession(kubernetes, vault, context(), () => now);
    await session.token(signal());
    now = 250_000;
    failure = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect((await session.token(signal())).revealText()).toBe('hvs.live');
    // Retried shortly after, not on every call.
    const attempts = vault.calls.length;
    await session.token(signal());
    expect(vault.calls).toHaveLength(attempts);
    now = 261_000;
    failure = apiError(403, 'permission denied');
    await expect(session.token(signal())).rejects.toBeInstanceOf(AuthFailedError);
  });

  it('logs in again after invalidate(), and only for the token it holds', async () => {
    const vault = vaultWith({ ttl: 3600 });
    const session = new VaultSession(kubernetes, vault, context(), () => 0);
    const first = await session.token(signal());
    session.invalidate(SecretValue.fromString('hvs.someone-else'));
    expect((await session.token(signal())).revealText()).toBe('hvs.token-1');
    session.invalidate(first);
    expect((await session.token(signal())).revealText()).toBe('hvs.token-2');
  });

  it('loads a static token from its Secret, checks it, re-reads it every five minutes, counts a login per new value', async () => {
    let now = 0;
    let secret = 'hvs.static-1';
    const vault = scriptedVault((call) =>
      call.path === 'auth/token/lookup-self'
        ? Promise.resolve({ data: { ttl: 0, renewable: false } })
        : Promise.reject(apiError(404, 'unexpected')),
    );
    const ctx = context({ readOperatorSecret: () => Promise.resolve(SecretValue.fromString(secret)) });
    const session = new VaultSession({ method: 'token', secretRef: { name: 'vault', key: 'token' } }, vault, ctx, () => now);
    expect((await session.token(signal())).revealText()).toBe('hvs.static-1');
    now = 200_000;
    await session.token(signal());
    expect(vault.calls).toHaveLength(1);
    now = 301_000;
    await session.token(signal());
    expect(ctx.logins).toBe(1);
    secret = 'hvs.static-2';
    now = 602_000;
    expect((await session.token(signal())).revealText()).toBe('hvs.static-2');
    expect(vault.calls.map((c) => c.token)).toEqual(['hvs.static-1', 'hvs.static-1', 'hvs.static-2']);
    expect(ctx.logins).toBe(2);
  });

  it('reports a refused static token as AuthFailed without the token', async () => {
    const vault = scriptedVault(() => Promise.reject(apiError(403, 'permission denied for hvs.static-secret-token')));
    const ctx = context({ readOperatorSecret: () => Promise.resolve(SecretValue.fromString('hvs.static-secret-token')) });
    const session = new VaultSession({ method: 'token', secretRef: { name: 'vault', key: 'token' } }, vault, ctx, () => 0);
    const error = await session.token(signal()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthFailedError);
    expect(String(error)).not.toContain('hvs.static-secret-token');
    expect(ctx.logins).toBe(0);
  });

  it('logs in with AppRole using the secret id from the Secret', async () => {
    const vault = vaultWith({ ttl: 3600 });
    const session = new VaultSession({ method: 'appRole', roleId: 'role-1', mountPath: 'approle', secretRef: { name: 'ar', key: 'id' } }, vault, context(), () => 0);
    await session.token(signal());
    expect(vault.calls[0]).toEqual({ method: 'write', path: 'auth/approle/login', body: { role_id: 'role-1', secret_id: 'secret-id-1' } });
  });

  it('lets an impatient caller go while the shared login goes on for the others', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const vault = scriptedVault(async () => {
      await gate;
      return { auth: { client_token: 'hvs.slow', lease_duration: 3600, renewable: true } };
    });
    const session = new VaultSession(kubernetes, vault, context(), () => 0);
    const controller = new AbortController();
    const impatient = session.token(controller.signal);
    const patient = session.token(signal());
    controller.abort();
    await expect(impatient).rejects.toBeInstanceOf(UnavailableError);
    release();
    expect((await patient).revealText()).toBe('hvs.slow');
    expect(vault.calls).toHaveLength(1);
  });

  it('revokes the token it logged in for on close, and then refuses to hand out tokens', async () => {
    const vault = vaultWith({ ttl: 3600 });
    const session = new VaultSession(kubernetes, vault, context(), () => 0);
    await session.token(signal());
    await session.close();
    expect(vault.calls.at(-1)).toEqual({ method: 'write', path: 'auth/token/revoke-self', body: {}, token: 'hvs.token-1' });
    await expect(session.token(signal())).rejects.toBeInstanceOf(UnavailableError);
  });

  it('never revokes a static token it was given', async () => {
    const vault = scriptedVault(() => Promise.resolve({ data: { ttl: 0 } }));
    const session = new VaultSession({ method: 'token', secretRef: { name: 'v', key: 't' } }, vault, context(), () => 0);
    await session.token(signal());
    await session.close();
    expect(vault.calls.map((c) => c.path)).toEqual(['auth/token/lookup-self']);
  });
});
