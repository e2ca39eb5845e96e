import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { EntraTokenCheckOptions } from './azure.entra-token.options.ts';

export { eventGridAppId, type EntraTokenCheckOptions } from './azure.entra-token.options.ts';

/**
 * The Entra (Azure AD) token check of the Event Grid receiver (ADR 0225): Event Grid's
 * "Microsoft Entra protected webhook" delivery sends `Authorization: Bearer <JWT>`, an access token
 * Event Grid's own application obtained for the webhook's app registration. The token is accepted
 * when it is signed (RS256) by a key of the configured JWKS, its issuer and audience are the
 * configured ones, it is within its lifetime, and it was issued to Event Grid's application
 * (`appid` in v1 tokens, `azp` in v2). Verification is jose's; nothing here parses a JWT by hand.
 */
export type EntraVerdict =
  | { readonly kind: 'accepted' }
  /** The sender is not proven: 401. `why` is a jose error code or our own words, never the token. */
  | { readonly kind: 'refused'; readonly why: string }
  /** The keys could not be fetched: nobody can be proven now (503; Event Grid retries). */
  | { readonly kind: 'unavailable'; readonly why: string };

const maxTokenLength = 16 * 1024;
/** Clock skew allowed on `exp`/`nbf`, as Microsoft's own validators allow. */
const clockToleranceSeconds = 300;

export class EntraTokenCheck {
  readonly #options: EntraTokenCheckOptions;
  readonly #keys: JWTVerifyGetKey;

  constructor(options: EntraTokenCheckOptions) {
    this.#options = options;
    // Fetched on first use and cached; an unknown `kid` refetches at most every 30 s, so forged
    // tokens cannot turn into a flood of key fetches.
    this.#keys = createRemoteJWKSet(new URL(options.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 24 * 3600_000 });
  }

  async check(authorization: string | undefined): Promise<EntraVerdict> {
    const match = /^Bearer ([A-Za-z0-9._-]+)$/.exec(authorization ?? '');
    const token = match?.[1];
    if (token === undefined) return { kind: 'refused', why: 'missing bearer token' };
    if (token.length > maxTokenLength) return { kind: 'refused', why: 'bearer token too long' };
    try {
      const { payload } = await jwtVerify(token, this.#keys, {
        issuer: this.#options.issuer,
        audience: this.#options.audience,
        algorithms: ['RS256'],
        clockTolerance: clockToleranceSeconds,
        requiredClaims: ['exp'],
      });
      const sender = typeof payload.appid === 'string' ? payload.appid : payload.azp;
      if (sender !== this.#options.senderAppId) return { kind: 'refused', why: 'token not issued to the sender application' };
      return { kind: 'accepted' };
    } catch (error) {
      if (keysUnavailable(error)) return { kind: 'unavailable', why: error instanceof Error ? error.message : String(error) };
      return { kind: 'refused', why: error instanceof errors.JOSEError ? error.code : 'invalid token' };
    }
  }
}

/** A failure to obtain the keys (network, timeout, not a key set), as opposed to a token that fails. */
function keysUnavailable(error: unknown): boolean {
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return true;
  // jose's key-set fetch answers a non-200 with a plain JOSEError; fetch's own failures are not jose's.
  if (error instanceof errors.JOSEError) return error.code === 'ERR_JOSE_GENERIC';
  return true;
}
