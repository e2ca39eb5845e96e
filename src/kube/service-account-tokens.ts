import type { CoreV1Api } from '@kubernetes/client-node';
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
  core: CoreV1Api,
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
