import { createPublicKey, randomBytes, randomUUID, timingSafeEqual, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ClientConfig, FederatedCredentialConfig, KeyVaultDoubleConfig } from './config.ts';
import { keyVaultResource } from './config.ts';

/**
 * The double's Microsoft Entra–like token issuer: OAuth 2.0 client credentials with a client
 * secret or a federated client assertion (workload identity), and an IMDS-like managed-identity
 * endpoint. Access tokens are opaque random strings remembered with their client, resource and
 * expiry; the vault accepts only those.
 *
 * Error answers follow Entra's shape (`error`, `error_description` starting with an AADSTS code,
 * `error_codes`, ids, timestamp): what @azure/identity turns into an AuthenticationError.
 */

export type TokenGrant = 'clientSecret' | 'clientAssertion' | 'managedIdentity';

export interface IssuedToken {
  readonly token: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly resource: string;
  readonly grant: TokenGrant;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

/** An Entra error answer. */
export class EntraError extends Error {
  readonly status: number;
  readonly error: string;
  /** AADSTS code; undefined for IMDS answers, which carry only `error` and `error_description`. */
  readonly aadsts: number | undefined;
  readonly description: string;
  constructor(status: number, error: string, aadsts: number | undefined, description: string) {
    super(aadsts === undefined ? description : `AADSTS${aadsts}: ${description}`);
    this.name = 'EntraError';
    this.status = status;
    this.error = error;
    this.aadsts = aadsts;
    this.description = description;
  }

  body(): Record<string, unknown> {
    if (this.aadsts === undefined) return { error: this.error, error_description: this.description };
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    return {
      error: this.error,
      error_description: `${this.message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [this.aadsts],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${this.aadsts}`,
    };
  }
}

const clientAssertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Tolerated clock difference for an assertion's exp/nbf. */
const assertionSkewSeconds = 300;

function secretsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

interface JwtParts {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

function parseJwt(jwt: string): JwtParts | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return undefined;
  const [h = '', p = '', s = ''] = parts;
  try {
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as unknown;
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as unknown;
    if (typeof header !== 'object' || header === null || typeof payload !== 'object' || payload === null) return undefined;
    return {
      header: header as Record<string, unknown>,
      payload: payload as Record<string, unknown>,
      signingInput: Buffer.from(`${h}.${p}`),
      signature: Buffer.from(s, 'base64url'),
    };
  } catch {
    return undefined;
  }
}

function verifySignature(jwt: JwtParts, key: KeyObject): boolean {
  const alg = jwt.header.alg;
  if (alg === 'ES256') return verify('sha256', jwt.signingInput, { key, dsaEncoding: 'ieee-p1363' }, jwt.signature);
  if (alg === 'RS256') return verify('sha256', jwt.signingInput, key, jwt.signature);
  return false;
}

export class TokenAuthority {
  readonly #config: KeyVaultDoubleConfig;
  readonly #tokens = new Map<string, IssuedToken>();
  /** Tokens revoked by `revokeAll` (until they would have expired): answered with a CAE claims challenge. */
  readonly #revoked = new Map<string, number>();
  /** Public keys of federated issuers, read on first use (the file may appear after the double starts). */
  readonly #keys = new Map<string, KeyObject>();

  constructor(config: KeyVaultDoubleConfig, tokens: readonly IssuedToken[] = []) {
    this.#config = config;
    for (const t of tokens) this.#tokens.set(t.token, t);
  }

  get tenantId(): string {
    return this.#config.tenantId;
  }

  /** Unexpired tokens, for persistence. */
  snapshot(): IssuedToken[] {
    const now = Date.now();
    return [...this.#tokens.values()].filter((t) => t.expiresAt > now);
  }

  /**
   * Revokes every token issued so far. The vault answers a revoked token with a continuous
   * access evaluation challenge (`error="insufficient_claims"`), on which the Azure SDK gets a
   * new token at once: a forced re-login.
   */
  revokeAll(): number {
    const count = this.#tokens.size;
    for (const t of this.#tokens.values()) this.#revoked.set(t.token, t.expiresAt);
    this.#tokens.clear();
    return count;
  }

  isRevoked(token: string): boolean {
    const until = this.#revoked.get(token);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#revoked.delete(token);
    return false;
  }

  /** The token, if this authority issued it, it has not expired and was not revoked. */
  lookup(token: string): IssuedToken | undefined {
    const found = this.#tokens.get(token);
    if (found === undefined) return undefined;
    if (found.expiresAt <= Date.now()) {
      this.#tokens.delete(token);
      return undefined;
    }
    return found;
  }

  client(clientId: string): ClientConfig | undefined {
    return this.#config.clients.find((c) => c.clientId === clientId);
  }

  /** OpenID Connect discovery document of the tenant, as MSAL reads it. */
  openIdConfiguration(origin: string, tenant: string): Record<string, unknown> {
    this.#checkTenant(tenant);
    const base = `${origin}/${tenant}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${base}/v2.0`,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid'],
      tenant_region_scope: null,
      cloud_instance_name: 'secret-binder.test',
      cloud_graph_host_name: 'graph.secret-binder.test',
      msgraph_host: 'graph.secret-binder.test',
      rbac_url: 'https://pas.secret-binder.test',
    };
  }

  #checkTenant(tenant: string): void {
    if (tenant !== this.#config.tenantId) {
      throw new EntraError(400, 'invalid_request', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
    }
  }

  /** `POST /{tenant}/oauth2/v2.0/token`, client credentials grant. */
  tokenFromClientCredentials(tenant: string, form: URLSearchParams): IssuedToken {
    this.#checkTenant(tenant);
    const grantType = form.get('grant_type');
    if (grantType !== 'client_credentials') {
      throw new EntraError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType ?? ''}'.`);
    }
    const clientId = form.get('client_id') ?? '';
    const client = this.client(clientId);
    if (client === undefined) {
      throw new EntraError(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant.`,
      );
    }
    const resource = this.#resourceOfScope(form.get('scope') ?? '');
    const secret = form.get('client_secret');
    const assertion = form.get('client_assertion');
    let grant: TokenGrant;
    if (secret !== null) {
      if (client.clientSecret === undefined || !secretsEqual(secret, client.clientSecret)) {
        throw new EntraError(
          401,
          'invalid_client',
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
        );
      }
      grant = 'clientSecret';
    } else if (assertion !== null) {
      if (form.get('client_assertion_type') !== clientAssertionType) {
        throw new EntraError(400, 'invalid_request', 90014, `The required field 'client_assertion_type' is missing or is not '${clientAssertionType}'.`);
      }
      this.#checkFederatedAssertion(client, assertion);
      grant = 'clientAssertion';
    } else {
      throw new EntraError(401, 'invalid_client', 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.");
    }
    return this.#issue(client.clientId, resource, grant);
  }

  /** IMDS-like `GET /metadata/identity/oauth2/token?resource=...&client_id=...` (header `Metadata: true`). */
  tokenFromManagedIdentity(query: URLSearchParams): IssuedToken {
    const resource = (query.get('resource') ?? '').replace(/\/$/, '');
    if (resource !== keyVaultResource) {
      throw new EntraError(400, 'invalid_resource', 500011, `The resource principal named ${resource} was not found in the tenant.`);
    }
    const wanted = query.get('client_id');
    const identities = this.#config.clients.filter((c) => c.managedIdentity === true);
    const identity = wanted === null ? identities[0] : identities.find((c) => c.clientId === wanted);
    if (identity === undefined) throw new EntraError(400, 'invalid_request', undefined, 'Identity not found');
    return this.#issue(identity.clientId, resource, 'managedIdentity');
  }

  #resourceOfScope(scope: string): string {
    const scopes = scope.split(' ').filter((s) => s !== '');
    const dotDefault = scopes.find((s) => s.endsWith('/.default'));
    if (dotDefault === undefined) {
      throw new EntraError(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const resource = dotDefault.slice(0, -'/.default'.length).replace(/\/$/, '');
    if (resource !== keyVaultResource) {
      throw new EntraError(
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${resource} was not found in the tenant named ${this.#config.tenantId}. This can happen if the application has not been installed by the administrator of the tenant.`,
      );
    }
    return resource;
  }

  #publicKey(path: string): KeyObject {
    let key = this.#keys.get(path);
    if (key === undefined) {
      key = createPublicKey(readFileSync(path));
      this.#keys.set(path, key);
    }
    return key;
  }

  /**
   * Entra's checks of a federated credential: the assertion is a JWT signed by the trusted
   * issuer's key, with the expected issuer, audience and (if configured) subject, valid now.
   */
  #checkFederatedAssertion(client: ClientConfig, assertion: string): void {
    const federated: FederatedCredentialConfig | undefined = client.federated;
    const jwt = parseJwt(assertion);
    if (jwt === undefined) throw new EntraError(400, 'invalid_request', 50027, 'JWT token is invalid or malformed.');
    const { iss, sub, aud, exp, nbf } = jwt.payload;
    if (federated === undefined || iss !== federated.issuer) {
      throw new EntraError(400, 'invalid_client', 700211, `No matching federated identity record found for presented assertion issuer '${String(iss)}'.`);
    }
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes(federated.audience)) {
      throw new EntraError(400, 'invalid_client', 700212, `No matching federated identity record found for presented assertion audience '${audiences.map(String).join(',')}'.`);
    }
    if (federated.subject !== undefined && sub !== federated.subject) {
      throw new EntraError(400, 'invalid_client', 700213, `No matching federated identity record found for presented assertion subject '${String(sub)}'.`);
    }
    const now = Date.now() / 1000;
    if (typeof exp !== 'number' || exp + assertionSkewSeconds < now || (typeof nbf === 'number' && nbf - assertionSkewSeconds > now)) {
      throw new EntraError(400, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
    }
    let valid: boolean;
    try {
      valid = verifySignature(jwt, this.#publicKey(federated.publicKeyPath));
    } catch {
      valid = false;
    }
    if (!valid) throw new EntraError(400, 'invalid_client', 700027, 'Client assertion failed signature validation.');
  }

  #issue(clientId: string, resource: string, grant: TokenGrant): IssuedToken {
    const issued: IssuedToken = {
      token: randomBytes(32).toString('base64url'),
      tenantId: this.#config.tenantId,
      clientId,
      resource,
      grant,
      expiresAt: Date.now() + this.#config.tokenLifetimeSeconds * 1000,
    };
    this.#tokens.set(issued.token, issued);
    return issued;
  }
}
