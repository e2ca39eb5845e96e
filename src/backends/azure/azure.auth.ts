import {
  ClientAssertionCredential,
  ClientSecretCredential,
  ManagedIdentityCredential,
  type AccessToken,
  type GetTokenOptions,
  type TokenCredential,
} from '@azure/identity';
import { rootCertificates } from 'node:tls';
import type { BackendContext } from '../backend.port.ts';
import type { SecretValue } from '../../observability/secret-value.ts';
import { mapContextError } from '../provider.support.ts';
import type { AzureConfig } from './azure.config.ts';

/**
 * The Entra ID credential of one backend identity. The SecretClient's bearer-token policy caches
 * the access token and asks the credential again only shortly before it expires, so there is one
 * login per token lifetime; {@link CountingCredential} reports each new token to `onLogin`.
 *
 * - workloadIdentity: ClientAssertionCredential whose assertion is a *function* minting a fresh
 *   service-account token (TokenRequest, audience `api://AzureADTokenExchange` by default) — no
 *   token file, as AKS workload identity would use.
 * - clientSecret: ClientSecretCredential built from the Secret's value, rebuilt when the value
 *   changes (re-read at most every 15 minutes, when a token is needed).
 * - managedIdentity: ManagedIdentityCredential (system-assigned, or the given client id).
 *
 * A configured `authorityHost` turns MSAL's instance discovery off (it would ask the public cloud
 * about a private authority), and the backend's caBundle is trusted for the authority too: a
 * private cloud's authority and vault usually share their CA.
 *
 * ADR 0064.
 */

const assertionTokenSeconds = 600;
/** A cached assertion is replaced this long before it expires. */
const assertionMarginMs = 120_000;
const clientSecretRecheckMs = 15 * 60_000;

export interface AzureCredential {
  readonly credential: TokenCredential;
  /** Credentials currently in use, removed verbatim from error messages. */
  known(): readonly string[];
}

/** `tlsOptions` trusting the system roots plus `caPem` (the SDK's `ca` replaces the roots). */
export function tlsOptions(caPem: string | undefined): { tlsOptions?: { ca: string[] } } {
  return caPem === undefined ? {} : { tlsOptions: { ca: [...rootCertificates, caPem] } };
}

interface AuthorityOptions {
  readonly authorityHost?: string;
  readonly disableInstanceDiscovery?: boolean;
  readonly tlsOptions?: { ca: string[] };
}

function authorityOptions(authorityHost: string | undefined, caPem: string | undefined): AuthorityOptions {
  return {
    ...(authorityHost === undefined ? {} : { authorityHost, disableInstanceDiscovery: true }),
    ...tlsOptions(caPem),
  };
}

export function azureCredential(config: AzureConfig, context: BackendContext, now: () => number = Date.now): AzureCredential {
  const auth = config.auth;
  if (auth.method === 'workloadIdentity') {
    let lastAssertion = '';
    let reuseUntil = 0;
    // MSAL asks for the assertion on every token request, even one it then answers from its
    // cache; a token stays usable for its lifetime (as AKS's projected file is), so reuse it.
    const getAssertion = async (): Promise<string> => {
      if (lastAssertion !== '' && now() < reuseUntil) return lastAssertion;
      try {
        const minted = await context.requestServiceAccountToken({
          namespace: context.namespace,
          serviceAccountName: auth.serviceAccountName,
          audiences: [auth.audience],
          expirationSeconds: assertionTokenSeconds,
          recipient: auth.authorityHost ?? 'https://login.microsoftonline.com',
        });
        lastAssertion = minted.token.revealText();
        reuseUntil = Math.min(minted.expiresAt.getTime(), now() + assertionTokenSeconds * 1000) - assertionMarginMs;
        return lastAssertion;
      } catch (error) {
        throw mapContextError(error, `cannot obtain a token for service account ${context.namespace}/${auth.serviceAccountName}`);
      }
    };
    const inner = new ClientAssertionCredential(auth.tenantId, auth.clientId, getAssertion, authorityOptions(auth.authorityHost, config.caPem));
    return { credential: new CountingCredential(inner, context), known: () => [lastAssertion] };
  }
  if (auth.method === 'clientSecret') {
    const inner = new SecretBackedClientSecretCredential(auth, authorityOptions(auth.authorityHost, config.caPem), context, now);
    return { credential: new CountingCredential(inner, context), known: () => inner.known() };
  }
  const inner = new ManagedIdentityCredential({ ...(auth.clientId === undefined ? {} : { clientId: auth.clientId }), ...tlsOptions(config.caPem) });
  return { credential: new CountingCredential(inner, context), known: () => [] };
}

/** Calls `onLogin` once per new access token (not per cached one the policy hands back). */
class CountingCredential implements TokenCredential {
  readonly #inner: TokenCredential;
  readonly #context: BackendContext;
  #lastExpiry: number | undefined;

  constructor(inner: TokenCredential, context: BackendContext) {
    this.#inner = inner;
    this.#context = context;
  }

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    const token = await this.#inner.getToken(scopes, options);
    if (token !== null && token.expiresOnTimestamp !== this.#lastExpiry) {
      this.#lastExpiry = token.expiresOnTimestamp;
      this.#context.onLogin('azureKeyVault');
    }
    return token;
  }
}

/** A ClientSecretCredential whose secret comes from a Kubernetes Secret, read lazily (no I/O at construction). */
class SecretBackedClientSecretCredential implements TokenCredential {
  readonly #auth: Extract<AzureConfig['auth'], { method: 'clientSecret' }>;
  readonly #options: AuthorityOptions;
  readonly #context: BackendContext;
  readonly #now: () => number;
  #current: { credential: ClientSecretCredential; secret: SecretValue; checkedAt: number } | undefined;

  constructor(
    auth: Extract<AzureConfig['auth'], { method: 'clientSecret' }>,
    options: AuthorityOptions,
    context: BackendContext,
    now: () => number,
  ) {
    this.#auth = auth;
    this.#options = options;
    this.#context = context;
    this.#now = now;
  }

  known(): readonly string[] {
    return this.#current === undefined ? [] : [this.#current.secret.revealText()];
  }

  async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
    const current = this.#current;
    if (current === undefined || this.#now() - current.checkedAt > clientSecretRecheckMs) {
      let secret: SecretValue;
      try {
        secret = await this.#context.readOperatorSecret(this.#auth.secretRef.name, this.#auth.secretRef.key);
      } catch (error) {
        throw mapContextError(
          error,
          `cannot read the Azure client secret from Secret ${this.#context.namespace}/${this.#auth.secretRef.name} (key "${this.#auth.secretRef.key}")`,
        );
      }
      if (current?.secret.equals(secret) === true) {
        current.checkedAt = this.#now();
      } else {
        const credential = new ClientSecretCredential(this.#auth.tenantId, this.#auth.clientId, secret.revealText().trim(), this.#options);
        this.#current = { credential, secret, checkedAt: this.#now() };
      }
    }
    return (this.#current as { credential: ClientSecretCredential }).credential.getToken(scopes, options);
  }
}
