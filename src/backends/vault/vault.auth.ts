import { AuthFailedError, BackendError, UnavailableError, type BackendContext } from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { mapContextError, raceWithSignal } from '../provider.support.ts';
import type { VaultAuthConfig } from './vault.config.ts';
import { encodeSecretPath, type VaultClient, type VaultResponse } from './vault.client.ts';
import { mapVaultError } from './vault.errors.ts';

/**
 * The Vault token of one backend identity: obtained once, shared by every call, renewed (or
 * replaced by a new login) when two thirds of its TTL have passed, and dropped when Vault says it
 * is no longer valid. One login per identity per token lifetime, never one per call (ADR 0062).
 */

/** A service-account token for the kubernetes login is used once; the minimum TokenRequest allows. */
const loginJwtSeconds = 600;
/** A shared login/renewal gets this long, whoever waits on it. */
const refreshTimeoutMs = 30_000;
/** After a failed refresh with a token still alive, the next attempt comes this much later. */
const retryRefreshMs = 10_000;
/** A static token is re-read from its Secret this often (rotation by the user). */
const staticRecheckMs = 5 * 60_000;

/** The two calls the session makes (a seam for unit tests of the token lifecycle). */
export type VaultCalls = Pick<VaultClient, 'read' | 'write'>;

interface HeldToken {
  readonly token: SecretValue;
  /** Epoch ms after which the token is dead; undefined: no expiry (root / periodic-less tokens). */
  readonly expiresAt: number | undefined;
  /** Epoch ms from which the next caller renews or replaces it. */
  readonly refreshAt: number;
  readonly renewable: boolean;
  /** The TTL it was issued with, in ms; a renewal that cannot give a third of it back re-logs in. */
  readonly issuedTtlMs: number;
  /** Obtained by a login of ours (and so ours to revoke), not a user's static token. */
  readonly ownedByUs: boolean;
}

export class VaultSession {
  readonly #auth: VaultAuthConfig;
  readonly #client: VaultCalls;
  readonly #context: BackendContext;
  readonly #now: () => number;
  #held: HeldToken | undefined;
  #pending: Promise<HeldToken> | undefined;
  #closed = false;

  constructor(auth: VaultAuthConfig, client: VaultCalls, context: BackendContext, now: () => number = Date.now) {
    this.#auth = auth;
    this.#client = client;
    this.#context = context;
    this.#now = now;
  }

  /** A valid token, logging in or renewing first if needed. Throws a port error. */
  async token(signal: AbortSignal): Promise<SecretValue> {
    if (this.#closed) throw new UnavailableError('Vault backend is closed');
    const held = this.#held;
    if (held !== undefined && this.#now() < held.refreshAt) return held.token;
    this.#pending ??= this.#refresh(held).finally(() => {
      this.#pending = undefined;
    });
    return (await raceWithSignal(this.#pending, signal, 'Vault login')).token;
  }

  /** Forgets `token` if it is the one held (Vault said it is invalid); the next call logs in. */
  invalidate(token: SecretValue): void {
    if (this.#held?.token.equals(token) === true) this.#held = undefined;
  }

  /** Revokes a token we logged in for (best effort) and stops handing out tokens. */
  async close(): Promise<void> {
    this.#closed = true;
    const held = this.#held;
    this.#held = undefined;
    if (held?.ownedByUs !== true) return;
    try {
      await this.#client.write('auth/token/revoke-self', {}, { token: held.token.revealText(), signal: AbortSignal.timeout(2000) });
    } catch {
      // The token expires on its own; a failed revoke must not fail the close.
    }
  }

  async #refresh(held: HeldToken | undefined): Promise<HeldToken> {
    const signal = AbortSignal.timeout(refreshTimeoutMs);
    const now = this.#now();
    const alive = held !== undefined && (held.expiresAt === undefined || now < held.expiresAt);
    let next: HeldToken | undefined;
    try {
      if (this.#auth.method === 'token') {
        next = await this.#loadStaticToken(held, signal);
      } else {
        if (held !== undefined && alive && held.renewable) next = await this.#tryRenew(held, signal);
        next ??= await this.#login(signal);
      }
    } catch (error) {
      // Vault or the API server is briefly unreachable, but the token we hold still lives: keep
      // using it and try again shortly, rather than fail calls that would succeed.
      const retryable = error instanceof BackendError && error.retryable;
      if (held === undefined || !alive || !retryable) throw error;
      next = { ...held, refreshAt: Math.min(now + retryRefreshMs, held.expiresAt ?? Number.POSITIVE_INFINITY) };
    }
    if (!this.#closed) this.#held = next;
    return next;
  }

  /** Renews the token; undefined when that fails or gives back too little (max TTL reached). */
  async #tryRenew(held: HeldToken, signal: AbortSignal): Promise<HeldToken | undefined> {
    const token = held.token.revealText();
    try {
      const answer = await this.#client.write(
        'auth/token/renew-self',
        { increment: `${Math.round(held.issuedTtlMs / 1000)}s` },
        { token, signal },
      );
      const lease = readAuth(answer);
      if (lease.ttlSeconds * 1000 < held.issuedTtlMs / 3) return undefined;
      return this.#hold(held.token, lease.ttlSeconds, lease.renewable, held.ownedByUs, held.issuedTtlMs);
    } catch {
      // Renewal is an optimisation: a failed one falls back to a fresh login.
      return undefined;
    }
  }

  async #login(signal: AbortSignal): Promise<HeldToken> {
    const auth = this.#auth;
    let path: string;
    let body: Record<string, unknown>;
    let credential: SecretValue;
    if (auth.method === 'kubernetes') {
      const sa = `${this.#context.namespace}/${auth.serviceAccountName}`;
      try {
        credential = (
          await this.#context.requestServiceAccountToken({
            namespace: this.#context.namespace,
            serviceAccountName: auth.serviceAccountName,
            audiences: auth.audiences,
            expirationSeconds: loginJwtSeconds,
            recipient: auth.loginAddress,
          })
        ).token;
      } catch (error) {
        throw mapContextError(error, `cannot obtain a token for service account ${sa}`);
      }
      path = `auth/${encodeMount(auth.mountPath)}/login`;
      body = { role: auth.role, jwt: credential.revealText() };
    } else if (auth.method === 'appRole') {
      credential = await this.#readSecret(auth.secretRef.name, auth.secretRef.key);
      path = `auth/${encodeMount(auth.mountPath)}/login`;
      body = { role_id: auth.roleId, secret_id: credential.revealText() };
    } else {
      throw new Error('static tokens are loaded, not logged in');
    }
    let answer: VaultResponse;
    try {
      answer = await this.#client.write(path, body, { signal });
    } catch (error) {
      throw mapVaultError(error, { operation: 'login', signal, credentials: [credential.revealText()] });
    }
    const lease = readAuth(answer);
    if (lease.token === undefined) throw new AuthFailedError('Vault login answered without a client token');
    this.#context.onLogin('vault');
    return this.#hold(lease.token, lease.ttlSeconds, lease.renewable, true, lease.ttlSeconds * 1000);
  }

  /** The token from its Secret, checked (and its TTL learnt) with lookup-self; renewed if it can be. */
  async #loadStaticToken(held: HeldToken | undefined, signal: AbortSignal): Promise<HeldToken> {
    if (this.#auth.method !== 'token') throw new Error('not a static token');
    const ref = this.#auth.secretRef;
    const token = await this.#readSecret(ref.name, ref.key);
    const same = held?.token.equals(token) === true;
    const text = token.revealText();
    let answer: VaultResponse;
    try {
      answer = await this.#client.read('auth/token/lookup-self', { token: text, signal });
    } catch (error) {
      throw mapVaultError(error, { operation: 'token lookup', signal, credentials: [text] });
    }
    const data = (answer.data ?? {}) as { ttl?: unknown; renewable?: unknown; creation_ttl?: unknown };
    const ttl = typeof data.ttl === 'number' ? data.ttl : 0;
    const renewable = data.renewable === true;
    const creationTtl = typeof data.creation_ttl === 'number' && data.creation_ttl > 0 ? data.creation_ttl : ttl;
    if (!same) this.#context.onLogin('vault');
    let next = this.#hold(token, ttl, renewable, false, creationTtl * 1000);
    if (renewable && ttl > 0 && ttl * 1000 < (creationTtl * 1000 * 2) / 3) next = (await this.#tryRenew(next, signal)) ?? next;
    return { ...next, refreshAt: Math.min(next.refreshAt, this.#now() + staticRecheckMs) };
  }

  async #readSecret(name: string, key: string): Promise<SecretValue> {
    try {
      return await this.#context.readOperatorSecret(name, key);
    } catch (error) {
      throw mapContextError(error, `cannot read Vault credentials from Secret ${this.#context.namespace}/${name} (key "${key}")`);
    }
  }

  #hold(token: SecretValue, ttlSeconds: number, renewable: boolean, ownedByUs: boolean, issuedTtlMs: number): HeldToken {
    const now = this.#now();
    if (ttlSeconds <= 0) {
      return { token, expiresAt: undefined, refreshAt: Number.POSITIVE_INFINITY, renewable, issuedTtlMs, ownedByUs };
    }
    const ttlMs = ttlSeconds * 1000;
    return { token, expiresAt: now + ttlMs, refreshAt: now + (ttlMs * 2) / 3, renewable, issuedTtlMs, ownedByUs };
  }
}

function readAuth(answer: VaultResponse): { token: SecretValue | undefined; ttlSeconds: number; renewable: boolean } {
  const auth = (answer.auth ?? {}) as { client_token?: unknown; lease_duration?: unknown; renewable?: unknown };
  return {
    token: typeof auth.client_token === 'string' && auth.client_token !== '' ? SecretValue.fromString(auth.client_token) : undefined,
    ttlSeconds: typeof auth.lease_duration === 'number' ? auth.lease_duration : 0,
    renewable: auth.renewable === true,
  };
}

/** A mount path (validated by the config schema) with each segment URL-encoded. */
export function encodeMount(mount: string): string {
  return encodeSecretPath(mount) ?? encodeURIComponent(mount);
}
