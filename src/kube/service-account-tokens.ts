import type { AuthApi, CoreApi } from './kube-clients.ts';
import { SecretValue } from '../observability/secret-value.ts';

export interface ServiceAccountTokenRequest {
  readonly namespace: string;
  readonly serviceAccountName: string;
  readonly audiences: readonly string[];
  readonly expirationSeconds: number;
}

export interface ServiceAccountToken {
  readonly token: SecretValue;
  readonly expiresAt: Date;
}

/** Mints a bound service-account token through the TokenRequest API. */
export async function requestServiceAccountToken(
  core: CoreApi,
  request: ServiceAccountTokenRequest,
): Promise<ServiceAccountToken> {
  const answer = await core.createNamespacedServiceAccountToken({
    name: request.serviceAccountName,
    namespace: request.namespace,
    body: { spec: { audiences: [...request.audiences], expirationSeconds: request.expirationSeconds } },
  });
  const token = answer.status?.token;
  const expiresAt = answer.status?.expirationTimestamp;
  if (token === undefined || token === '') throw new Error('TokenRequest answered without a token');
  return {
    token: SecretValue.fromString(token),
    expiresAt: expiresAt === undefined ? new Date(Date.now() + request.expirationSeconds * 1000) : new Date(expiresAt),
  };
}

/** The annotations of a service account (one get by name). */
export async function readServiceAccountAnnotations(core: CoreApi, namespace: string, name: string): Promise<Readonly<Record<string, string>>> {
  const account = await core.readNamespacedServiceAccount({ name, namespace });
  return account.metadata?.annotations ?? {};
}

/**
 * TokenReview of `token` without `spec.audiences`: the API server then checks it against its own
 * audiences (`--api-audiences`), so `authenticated` says whether the token is an API credential.
 */
export async function reviewAsApiCredential(auth: AuthApi, token: SecretValue): Promise<{ authenticated: boolean; audiences: string[] }> {
  const review = await auth.createTokenReview({ body: { spec: { token: token.revealText() } } });
  return { authenticated: review.status?.authenticated === true, audiences: review.status?.audiences ?? [] };
}

/** Who the client is, as the API server sees it (SelfSubjectReview, allowed to every authenticated user). */
export async function ownUsername(auth: AuthApi): Promise<string> {
  const review = await auth.createSelfSubjectReview({ body: {} });
  const username = review.status?.userInfo?.username;
  if (username === undefined || username === '') throw new Error('SelfSubjectReview answered without a username');
  return username;
}
