import { AuthFailedError, type BackendContext } from '../backend.port.ts';
import { mapContextError, raceWithSignal } from '../provider.support.ts';
import { encodeId, statusError, type ConjurClient } from './conjur.client.ts';
import type { ConjurConfig } from './conjur.config.ts';

/**
 * Conjur access tokens for the provider (ADR 0243). A token lives 8 minutes at Conjur; it is
 * reused for 5, and one login is shared by every caller that needs it meanwhile.
 *
 * - authn-jwt: a service-account token minted through the context (audience from the spec, sent
 *   only to applianceUrl) is posted as `jwt=<token>` to `/authn-jwt/{service-id}/{account}[/{host}]/authenticate`;
 * - authn (API key): the key from an operator Secret is posted to `/authn/{account}/{login}/authenticate`;
 * - both set: the API key is the fallback when the JWT authenticator refuses the token (401), e.g.
 *   while the authenticator is being set up or its JWKS rotates.
 *
 * authn-k8s is not offered: it authenticates a pod by a client certificate that Conjur injects
 * into the requesting container through `pods/exec`, which an operator holding no pod of its own
 * per binding cannot take part in (and `pods/exec` is a privilege we do not want).
 */

const reuseMs = 5 * 60_000;
const serviceAccountTokenSeconds = 600;

export class ConjurAuth {
  readonly #config: ConjurConfig;
  readonly #context: BackendContext;
  readonly #client: ConjurClient;
  readonly #now: () => number;
  #token: { readonly header: string; readonly until: number } | undefined;
  #login: Promise<string> | undefined;

  constructor(config: ConjurConfig, context: BackendContext, client: ConjurClient, now: () => number = Date.now) {
    this.#config = config;
    this.#context = context;
    this.#client = client;
    this.#now = now;
  }

  /** The `Authorization` header value, logging in when there is no fresh token. */
  async header(signal: AbortSignal): Promise<string> {
    const token = this.#token;
    if (token !== undefined && this.#now() < token.until) return token.header;
    if (this.#login === undefined) {
      const login = this.#logIn().finally(() => {
        if (this.#login === login) this.#login = undefined;
      });
      this.#login = login;
    }
    // A shared login goes on when one caller gives up.
    return raceWithSignal(this.#login, signal, 'Conjur login');
  }

  /** Forgets the token (Conjur answered 401 to it: expired early, or revoked). */
  invalidate(): void {
    this.#token = undefined;
  }

  async #logIn(): Promise<string> {
    const signal = AbortSignal.timeout(15_000);
    let token: string;
    if (this.#config.jwt !== undefined) {
      try {
        token = await this.#jwtLogin(signal);
      } catch (error) {
        // The JWT authenticator refused us: the API key, when there is one, is the fallback.
        if (!(error instanceof AuthFailedError) || this.#config.apiKey === undefined) throw error;
        token = await this.#apiKeyLogin(signal);
      }
    } else {
      token = await this.#apiKeyLogin(signal);
    }
    const header = `Token token="${token}"`;
    this.#token = { header, until: this.#now() + reuseMs };
    this.#context.onLogin('conjur');
    return header;
  }

  async #jwtLogin(signal: AbortSignal): Promise<string> {
    const jwt = this.#config.jwt;
    if (jwt === undefined) throw new AuthFailedError('conjur.auth.jwt is not set');
    let minted: string;
    try {
      const result = await this.#context.requestServiceAccountToken({
        namespace: this.#context.namespace,
        serviceAccountName: jwt.serviceAccountName,
        audiences: [jwt.audience],
        expirationSeconds: serviceAccountTokenSeconds,
        recipient: this.#config.applianceUrl,
      });
      minted = result.token.revealText();
    } catch (error) {
      throw mapContextError(error, `cannot obtain a token for service account ${this.#context.namespace}/${jwt.serviceAccountName}`);
    }
    const host = jwt.hostId === undefined ? '' : `/${encodeId(jwt.hostId)}`;
    return this.#authenticate(
      `/authn-jwt/${encodeId(jwt.serviceId)}/${encodeId(this.#config.account)}${host}/authenticate`,
      `jwt=${encodeURIComponent(minted)}`,
      'application/x-www-form-urlencoded',
      'Conjur authn-jwt login',
      signal,
    );
  }

  async #apiKeyLogin(signal: AbortSignal): Promise<string> {
    const apiKey = this.#config.apiKey;
    if (apiKey === undefined) throw new AuthFailedError('conjur.auth.apiKey is not set');
    let key: string;
    try {
      key = (await this.#context.readOperatorSecret(apiKey.secretRef.name, apiKey.secretRef.key)).revealText().trim();
    } catch (error) {
      throw mapContextError(error, `cannot read the API key from Secret ${this.#context.namespace}/${apiKey.secretRef.name}`);
    }
    return this.#authenticate(
      `/authn/${encodeId(this.#config.account)}/${encodeId(apiKey.login)}/authenticate`,
      key,
      'text/plain',
      'Conjur authn login',
      signal,
    );
  }

  async #authenticate(path: string, body: string, contentType: string, what: string, signal: AbortSignal): Promise<string> {
    const response = await this.#client.send({
      method: 'POST',
      path,
      body,
      // base64: the token comes back ready for the Authorization header.
      headers: { 'content-type': contentType, 'accept-encoding': 'base64' },
      signal,
      what,
    });
    if (response.status !== 200) {
      const error = statusError(response.status, what);
      // A login answered 404 names an authenticator or account that does not exist: a refusal.
      throw response.status === 404 ? new AuthFailedError(`${what}: no such authenticator, account or login (HTTP 404)`) : error;
    }
    const token = response.body.toString('utf8').trim();
    if (!/^[A-Za-z0-9+/=_-]+$/.test(token)) throw new AuthFailedError(`${what}: Conjur answered without a token`);
    return token;
  }
}
