import { isIP } from 'node:net';
import type { AuditBackendRef, AuditLog } from '../observability/audit.ts';
import type { SecretValue } from '../observability/secret-value.ts';
import { TokenRefusedError, UnavailableError, type ServiceAccountTokenRequest, type TokenRefusal } from './backend.port.ts';

/**
 * The one door through which the controller mints service-account tokens for backend logins
 * (Vault kubernetes auth, AWS web identity, Azure workload identity). A backend's author chooses
 * the account, the audience and the address the token is sent to, so every request is judged
 * before a token exists and once more after (ADR 0150):
 *
 * 1. the audience is set and is not the broker's (nor another configured one);
 * 2. the recipient is `https`; plain `http` only to a loopback address, and only when the
 *    controller was started with the development flag;
 * 3. the account is not the controller's own nor the node plugin's;
 * 4. the account opts in to this backend: its `secretbinder.dev/backends` annotation names it;
 * 5. after minting, TokenReview without audiences asks the API server whether the token would be
 *    an API credential (its audience one of `--api-audiences`); if so it is dropped, never sent.
 *
 * Every mint and every refusal goes to the audit channel — names, audience, recipient, expiry,
 * never the token.
 */

/** The annotation by which a service account opts in to backends minting its tokens. */
export const backendsAnnotation = 'secretbinder.dev/backends';

/** TokenRequest's minimum lifetime, and the most we ever ask for. */
export const maxTokenSeconds = 600;

/** The backend a token is minted for. */
export type MintingBackend = AuditBackendRef;

/** What the minter needs from the cluster; the composition root implements it with the kube client. */
export interface TokenMinterPorts {
  /** The account's annotations; throws (as the kube client does, with a `code`) when it cannot be read. */
  readServiceAccountAnnotations(namespace: string, name: string): Promise<Readonly<Record<string, string>>>;
  /** TokenRequest. */
  mint(request: Omit<ServiceAccountTokenRequest, 'recipient'>): Promise<{ readonly token: SecretValue; readonly expiresAt: Date }>;
  /**
   * TokenReview of `token` without audiences, i.e. for the API server's own audiences: whether it
   * authenticates, and for which of them.
   */
  reviewAsApiCredential(token: SecretValue): Promise<{ readonly authenticated: boolean; readonly audiences: readonly string[] }>;
  /** The user the controller runs as (SelfSubjectReview), e.g. `system:serviceaccount:ns:name`. */
  ownUsername(): Promise<string>;
}

export interface TokenMinterOptions {
  readonly ports: TokenMinterPorts;
  readonly audit: AuditLog;
  /** Audiences refused besides the API server's: the broker's (`secretbinder.dev`). */
  readonly refusedAudiences: readonly string[];
  /** Accounts never minted for besides the controller's own: the node plugin's. */
  readonly reservedAccounts: readonly { readonly namespace: string; readonly name: string }[];
  /** Development only: allow plain http to a loopback address. */
  readonly allowLoopbackHttp: boolean;
  /** The flag that sets `allowLoopbackHttp`, named in refusals. */
  readonly loopbackHttpFlag: string;
}

export class TokenMinter {
  readonly #options: TokenMinterOptions;
  /** Audiences the API server answered as its own; refused from then on before minting. */
  readonly #apiAudiences = new Set<string>();
  #own: Promise<string> | undefined;

  constructor(options: TokenMinterOptions) {
    this.#options = options;
  }

  /** Mints for `backend`, or throws a {@link TokenRefusedError} (audited either way). */
  async mint(backend: MintingBackend, request: ServiceAccountTokenRequest): Promise<{ readonly token: SecretValue; readonly expiresAt: Date }> {
    const serviceAccount = { namespace: request.namespace, name: request.serviceAccountName };
    const audiences = [...request.audiences];
    const refuse = (refusal: TokenRefusal, detail: string): TokenRefusedError => {
      this.#options.audit.mintRefused({ reason: refusal, detail, backend, serviceAccount, audiences, recipient: request.recipient });
      return new TokenRefusedError(refusal, detail);
    };
    const sa = `service account ${request.namespace}/${request.serviceAccountName}`;

    const audienceProblem = this.#audienceProblem(audiences);
    if (audienceProblem !== undefined) throw refuse('AudienceNotAllowed', audienceProblem);
    const recipientProblem = judgeRecipient(request.recipient, this.#options.allowLoopbackHttp, this.#options.loopbackHttpFlag);
    if (recipientProblem !== undefined) throw refuse('InsecureTokenEndpoint', recipientProblem);
    if (await this.#reserved(serviceAccount)) {
      throw refuse('ServiceAccountReserved', `${sa} is the controller's or the node plugin's own; no backend may use its tokens`);
    }
    const annotations = await this.#options.ports.readServiceAccountAnnotations(request.namespace, request.serviceAccountName);
    const entry = annotationEntry(backend);
    if (!optedIn(annotations[backendsAnnotation], entry)) {
      throw refuse('ServiceAccountNotOptedIn', `${sa} does not opt in to this backend: add "${entry}" to its annotation ${backendsAnnotation}`);
    }

    const expirationSeconds = Math.min(request.expirationSeconds, maxTokenSeconds);
    const minted = await this.#options.ports.mint({ namespace: request.namespace, serviceAccountName: request.serviceAccountName, audiences, expirationSeconds });
    const review = await this.#options.ports.reviewAsApiCredential(minted.token);
    if (review.authenticated) {
      for (const audience of review.audiences) this.#apiAudiences.add(audience);
      for (const audience of audiences) this.#apiAudiences.add(audience);
      // The token is dropped here: it never leaves this function.
      throw refuse('AudienceNotAllowed', `audience ${audiences.map((a) => `"${a}"`).join(', ')} is one of the API server's own audiences; a token for it would be an API credential`);
    }
    this.#options.audit.minted({
      backend,
      serviceAccount,
      audiences,
      recipient: request.recipient,
      expirationSeconds,
      expiresAt: minted.expiresAt.toISOString(),
    });
    return minted;
  }

  #audienceProblem(audiences: readonly string[]): string | undefined {
    if (audiences.length === 0 || audiences.some((a) => a.trim() === '')) {
      return 'an explicit audience is required; an empty one would mean the API server\'s own';
    }
    const refused = audiences.find((a) => this.#options.refusedAudiences.includes(a));
    if (refused !== undefined) return `audience "${refused}" is the broker's; a token for it is never sent to a backend`;
    const api = audiences.find((a) => this.#apiAudiences.has(a));
    if (api !== undefined) return `audience "${api}" is one of the API server's own audiences; a token for it would be an API credential`;
    return undefined;
  }

  async #reserved(account: { namespace: string; name: string }): Promise<boolean> {
    if (this.#options.reservedAccounts.some((r) => r.namespace === account.namespace && r.name === account.name)) return true;
    let own: string;
    try {
      this.#own ??= this.#options.ports.ownUsername();
      own = await this.#own;
    } catch (error) {
      this.#own = undefined;
      // Without knowing who we are we cannot rule out minting our own token: fail closed, retry.
      const code: unknown = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
      throw new UnavailableError(`cannot learn the controller's own identity (SelfSubjectReview${typeof code === 'number' ? `: HTTP ${code}` : ''}); no token is minted until it can`);
    }
    return own === `system:serviceaccount:${account.namespace}:${account.name}`;
  }
}

/** How a backend is named in the annotation: `<name>` for a SecretBackend, `ClusterSecretBackend/<name>`. */
export function annotationEntry(backend: MintingBackend): string {
  return backend.kind === 'ClusterSecretBackend' ? `ClusterSecretBackend/${backend.name}` : backend.name;
}

/** Whether the annotation's comma-separated list names `entry` (`SecretBackend/<name>` also names a SecretBackend). */
export function optedIn(annotation: string | undefined, entry: string): boolean {
  if (annotation === undefined) return false;
  return annotation
    .split(',')
    .map((item) => item.trim())
    .map((item) => (item.startsWith('SecretBackend/') ? item.slice('SecretBackend/'.length) : item))
    .includes(entry);
}

/** Undefined when `url` may receive a token; otherwise why not. */
export function judgeRecipient(url: string, allowLoopbackHttp: boolean, flag: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `the address that would receive the token (${url}) is not a URL`;
  }
  if (parsed.protocol === 'https:') return undefined;
  if (parsed.protocol !== 'http:') return `the address that would receive the token (${parsed.origin}) must be https`;
  if (!isLoopbackHost(parsed.hostname)) return `the address that would receive the token (${parsed.origin}) must be https; plain http is allowed only to a loopback address, for development`;
  if (!allowLoopbackHttp) return `the address that would receive the token (${parsed.origin}) is plain http; the controller allows that to a loopback address only with ${flag} (development)`;
  return undefined;
}

/** localhost, 127.0.0.0/8 and ::1 (URL hostnames keep IPv6 in brackets). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}
