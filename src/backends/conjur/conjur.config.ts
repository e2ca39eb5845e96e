import { z } from 'zod';
import { InvalidConfigError } from '../backend.port.ts';
import { decodeCaBundle, formatIssues } from '../provider.support.ts';

/**
 * The `conjur` block of a backend spec (crds/secretbinder.dev_*backends.yaml), validated, with the
 * CRD's defaults applied (ADR 0243).
 */

const httpsUrl = z.url({ protocol: /^https$/, hostname: /.+/ }).max(2048);
const name = z.string().min(1).max(253);

const authSchema = z
  .object({
    jwt: z
      .object({
        serviceId: name,
        hostId: z.string().max(1024).optional(),
        serviceAccountRef: z.object({ name }).strict(),
        audience: z.string().min(1).max(256).default('conjur'),
      })
      .strict()
      .optional(),
    apiKey: z
      .object({
        login: z.string().min(1).max(1024),
        secretRef: z.object({ name, key: name }).strict(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((a) => a.jwt !== undefined || a.apiKey !== undefined, { message: 'at least one of jwt, apiKey must be set' });

const conjurSchema = z
  .object({
    applianceUrl: httpsUrl,
    account: z.string().min(1).max(128),
    caBundle: z.string().max(65536).optional(),
    auth: authSchema,
  })
  .strict();

/** authn-jwt: a service-account token exchanged for a Conjur access token. */
export interface ConjurJwtAuth {
  readonly serviceId: string;
  /** `host/...` when the authenticator has no token-app-property; else the token names the host. */
  readonly hostId: string | undefined;
  readonly serviceAccountName: string;
  readonly audience: string;
}

/** authn: a host's login and API key (from an operator Secret). */
export interface ConjurApiKeyAuth {
  readonly login: string;
  readonly secretRef: { readonly name: string; readonly key: string };
}

export interface ConjurConfig {
  /** https://conjur.example.com, without a trailing slash. */
  readonly applianceUrl: string;
  readonly account: string;
  /** PEM certificates trusted in addition to the system roots. */
  readonly caPem: string | undefined;
  /** Tried first when set. */
  readonly jwt: ConjurJwtAuth | undefined;
  /** The only method, or the fallback when the JWT authenticator refuses the token. */
  readonly apiKey: ConjurApiKeyAuth | undefined;
}

/** Validates the `conjur` block; throws {@link InvalidConfigError} with a one-line message. */
export function parseConjurConfig(spec: unknown): ConjurConfig {
  const parsed = conjurSchema.safeParse(spec);
  if (!parsed.success) throw new InvalidConfigError(`conjur: ${formatIssues(parsed.error)}`);
  const v = parsed.data;
  const jwt = v.auth.jwt;
  return {
    applianceUrl: v.applianceUrl.replace(/\/+$/, ''),
    account: v.account,
    caPem: v.caBundle === undefined || v.caBundle === '' ? undefined : decodeCaBundle(v.caBundle, 'conjur.caBundle'),
    jwt:
      jwt === undefined
        ? undefined
        : {
            serviceId: jwt.serviceId,
            hostId: jwt.hostId === undefined || jwt.hostId === '' ? undefined : jwt.hostId,
            serviceAccountName: jwt.serviceAccountRef.name,
            audience: jwt.audience,
          },
    apiKey: v.auth.apiKey,
  };
}
