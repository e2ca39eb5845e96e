import type { SecretValue } from '../observability/secret-value.ts';
import type { LeasingBackend } from './leasing.port.ts';

/**
 * The port between the domain (resolver, reconcilers, broker) and a secret store. It says what the
 * domain needs — batch fetch with versions, a cheap version check, validation, close — not what
 * any SDK offers. Providers live in `src/backends/<name>/` and are listed in `registry.ts`.
 */

/** Which version of a secret a reference means. */
export type VersionSelector =
  /** The backend's current version (Vault: latest; AWS: stage AWSCURRENT; Azure: latest). */
  | { readonly kind: 'latest' }
  /** A pinned version: Vault KV v2 version number, AWS VersionId, Azure version id. */
  | { readonly kind: 'id'; readonly id: string }
  /** AWS staging label, e.g. AWSPREVIOUS. Other providers refuse it with InvalidConfig. */
  | { readonly kind: 'stage'; readonly stage: string };

/**
 * One secret document in a backend. Property / JSON-field selection is not part of the reference:
 * a provider returns the whole document and the resolver extracts fields, so one cache entry (and
 * one read) serves every file that picks a different field of the same secret.
 */
export interface SecretRef {
  /** Vault: path under the mount (e.g. `app/db`); AWS: secret name or ARN; Azure: secret name. */
  readonly key: string;
  readonly version: VersionSelector;
}

/**
 * The version reported for documents of a store that has none (Vault KV v1), by `fetch()` and,
 * without any call, by `versions()`. It says nothing about the content, so it never changes: the
 * resolver detects a change of such a document by re-reading it every interval and comparing a
 * keyed HMAC of the content (never the content itself). Providers never derive a version from a
 * value (ADR 0060).
 */
export const unversioned = 'unversioned';

/** A fetched document. Structured stores (Vault KV) return their data map as a JSON object. */
export interface FetchedSecret {
  readonly ref: SecretRef;
  /** The document: UTF-8 text (JSON for Vault KV data), or raw bytes for binary secrets. */
  readonly value: SecretValue;
  /** The backend's version identifier of what was read (never derived from the value). */
  readonly version: string;
  /** How the document is encoded; `json` documents support property selection. */
  readonly encoding: 'json' | 'text' | 'binary';
}

export type FetchOutcome =
  | { readonly ok: true; readonly secret: FetchedSecret }
  | { readonly ok: false; readonly ref: SecretRef; readonly error: BackendError };

export type VersionOutcome =
  | { readonly ok: true; readonly ref: SecretRef; readonly version: string }
  | { readonly ok: false; readonly ref: SecretRef; readonly error: BackendError };

export interface CallOptions {
  /** Aborts the call; providers pass it to their SDK so a timeout really stops the request. */
  readonly signal: AbortSignal;
}

/** A connected client for one backend identity (one backend object + its credentials). */
export interface SecretBackend {
  readonly provider: ProviderName;
  /**
   * Reads many documents in as few calls as the store allows (AWS: BatchGetSecretValue by 20).
   * Per-reference failures come back as outcomes; a failure of the whole call (auth, outage)
   * throws a {@link BackendError}.
   */
  fetch(refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]>;
  /**
   * The current version of each reference without reading values where the store allows it
   * (Vault: KV v2 metadata; Azure: properties). Pinned references report their pin.
   */
  versions(refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]>;
  /** Proves the configuration and credentials work (a login, a cheap authenticated call). */
  checkConnectivity(options: CallOptions): Promise<void>;
  /** Releases timers, sockets and tokens. */
  close(): Promise<void>;
  /** Leased (dynamic) credentials, for the providers that issue them (Vault / OpenBao). */
  readonly leasing?: LeasingBackend;
}

export const providerNames = ['vault', 'awsSecretsManager', 'azureKeyVault', 'conjur', 'fake'] as const;
export type ProviderName = (typeof providerNames)[number];

/** What a provider may ask of the cluster, supplied by the composition root (never a kube client). */
export interface BackendContext {
  /**
   * The namespace the backend's credentials live in: its own namespace for a `SecretBackend`, the
   * operator's namespace for a `ClusterSecretBackend`. The CRDs name service accounts and Secrets
   * without a namespace; providers pass this one to {@link BackendContext.requestServiceAccountToken}.
   */
  readonly namespace: string;
  /**
   * Mints a token for a service account (TokenRequest) with the given audience, to be sent to
   * `recipient` and nowhere else. The composition root refuses (with a {@link TokenRefusedError})
   * what ADR 0150 forbids: an audience of the API server or the broker, an account that did not
   * opt in to this backend, the controller's and node plugin's own accounts, a recipient that is
   * not https. Every mint and refusal is audited.
   */
  requestServiceAccountToken(request: ServiceAccountTokenRequest): Promise<{ readonly token: SecretValue; readonly expiresAt: Date }>;
  /** Reads one key of a Secret in the operator's own namespace (AppRole secret ids, static keys). */
  readOperatorSecret(name: string, key: string): Promise<SecretValue>;
  /** Counts logins for the metrics; providers call it once per successful authentication. */
  onLogin(provider: ProviderName): void;
}

/** What a provider asks to be minted, and where the token goes. */
export interface ServiceAccountTokenRequest {
  readonly namespace: string;
  readonly serviceAccountName: string;
  readonly audiences: readonly string[];
  readonly expirationSeconds: number;
  /** The URL the token is presented to (Vault address, STS endpoint, Entra authority). */
  readonly recipient: string;
}

/**
 * A provider: validates its block of a backend spec and creates clients. `parseConfig` throws
 * {@link InvalidConfigError} with a message fit for a status condition.
 */
export interface BackendProvider<Config> {
  readonly name: ProviderName;
  parseConfig(spec: unknown): Config;
  create(config: Config, context: BackendContext): SecretBackend;
}

// ---------------------------------------------------------------------------------------------
// Errors. Every SDK error is mapped to one of these, with a message stripped of request bodies,
// headers, tokens and credentials, so it may reach a log, a status condition or an Event.

export const backendErrorKinds = ['NotFound', 'AuthFailed', 'Throttled', 'Unavailable', 'InvalidConfig'] as const;
export type BackendErrorKind = (typeof backendErrorKinds)[number];

export abstract class BackendError extends Error {
  abstract readonly kind: BackendErrorKind;
  /** Whether retrying the same call later may succeed. */
  abstract readonly retryable: boolean;
}

export class NotFoundError extends BackendError {
  readonly kind = 'NotFound';
  readonly retryable = false;
  override readonly name = 'NotFoundError';
}

export class AuthFailedError extends BackendError {
  readonly kind = 'AuthFailed';
  readonly retryable = false;
  override readonly name: string = 'AuthFailedError';
}

/**
 * The backend's own credentials are missing on our side: the Secret, its key or the service
 * account the auth block names does not exist, or the controller may not read it. An AuthFailed
 * (re-checked each refresh interval) that users fix in the cluster, not in the backend.
 */
export class CredentialsNotFoundError extends AuthFailedError {
  override readonly name = 'CredentialsNotFoundError';
}

export class ThrottledError extends BackendError {
  readonly kind = 'Throttled';
  readonly retryable = true;
  override readonly name = 'ThrottledError';
  /** The store's retry-after hint, when it gave one. */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, retryAfterMs?: number) {
    super(message);
    this.retryAfterMs = retryAfterMs;
  }
}

export class UnavailableError extends BackendError {
  readonly kind = 'Unavailable';
  readonly retryable = true;
  override readonly name = 'UnavailableError';
}

export class InvalidConfigError extends BackendError {
  readonly kind = 'InvalidConfig';
  readonly retryable = false;
  override readonly name = 'InvalidConfigError';
}

/** Why a token was not minted; each is a reason of the closed list (conditions.ts, ADR 0150). */
export const tokenRefusals = ['AudienceNotAllowed', 'ServiceAccountNotOptedIn', 'ServiceAccountReserved', 'InsecureTokenEndpoint'] as const;
export type TokenRefusal = (typeof tokenRefusals)[number];

/**
 * The controller refused to mint a service-account token for a backend. A configuration problem
 * (of the backend or the account): not retried until one of them changes, re-checked each refresh
 * interval like other credential problems.
 */
export class TokenRefusedError extends BackendError {
  readonly kind = 'InvalidConfig';
  readonly retryable = false;
  override readonly name = 'TokenRefusedError';
  readonly refusal: TokenRefusal;
  constructor(refusal: TokenRefusal, message: string) {
    super(message);
    this.refusal = refusal;
  }
}
