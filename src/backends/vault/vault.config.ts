import { z } from 'zod';
import { InvalidConfigError } from '../backend.port.ts';
import { decodeCaBundle, formatIssues } from '../provider.support.ts';

/**
 * The `vault` block of a backend spec (crds/secretbinder.dev_*backends.yaml), validated. The CRD's
 * CEL rules refuse most bad input at apply time; this parser is the second line (objects written
 * before a CRD upgrade, the fake API in unit tests) and the only place defaults are applied in code.
 */

const secretKeyRef = z.object({ name: z.string().min(1).max(253), key: z.string().min(1).max(253) }).strict();
const serviceAccountRef = z.object({ name: z.string().min(1).max(253) }).strict();
const mountPath = z
  .string()
  .min(1)
  .max(256)
  .refine((p) => !p.startsWith('/') && !p.endsWith('/') && !p.split('/').some(isUnsafeSegment), {
    message: 'must be a path without leading/trailing slashes, empty, "." or ".." segments',
  });

const authSchema = z
  .object({
    kubernetes: z
      .object({
        role: z.string().min(1).max(256),
        mountPath: mountPath.default('kubernetes'),
        serviceAccountRef,
        audience: z.string().min(1, 'an explicit audience is required (the Vault role\'s audience)').max(256),
      })
      .strict()
      .optional(),
    appRole: z
      .object({ roleId: z.string().min(1).max(256), secretRef: secretKeyRef, mountPath: mountPath.default('approle') })
      .strict()
      .optional(),
    token: z.object({ secretRef: secretKeyRef }).strict().optional(),
  })
  .strict()
  .refine((a) => [a.kubernetes, a.appRole, a.token].filter((x) => x !== undefined).length === 1, {
    message: 'exactly one of kubernetes, appRole, token must be set',
  });

const vaultSchema = z
  .object({
    address: z.url({ protocol: /^https?$/, hostname: /.+/ }).max(2048),
    mount: mountPath.default('secret'),
    kvVersion: z.union([z.literal(1), z.literal(2)]).default(2),
    namespace: z.string().max(256).optional(),
    caBundle: z.string().max(65536).optional(),
    auth: authSchema,
  })
  .strict();

export type VaultAuthConfig =
  | {
      readonly method: 'kubernetes';
      readonly role: string;
      readonly mountPath: string;
      readonly serviceAccountName: string;
      /** The one audience of the service-account token; never empty (ADR 0150). */
      readonly audiences: readonly [string];
      /** The Vault address the token is sent to (the backend's `address`). */
      readonly loginAddress: string;
    }
  | { readonly method: 'appRole'; readonly roleId: string; readonly mountPath: string; readonly secretRef: SecretKeyRef }
  | { readonly method: 'token'; readonly secretRef: SecretKeyRef };

export interface SecretKeyRef {
  readonly name: string;
  readonly key: string;
}

export interface VaultConfig {
  /** Base URL without a trailing slash. */
  readonly address: string;
  readonly mount: string;
  readonly kvVersion: 1 | 2;
  readonly namespace: string | undefined;
  /** PEM certificates trusted in addition to the system roots. */
  readonly caPem: string | undefined;
  readonly auth: VaultAuthConfig;
}

/** Validates the `vault` block; throws {@link InvalidConfigError} with a one-line message. */
export function parseVaultConfig(spec: unknown): VaultConfig {
  const parsed = vaultSchema.safeParse(spec);
  if (!parsed.success) throw new InvalidConfigError(`vault: ${formatIssues(parsed.error)}`);
  const v = parsed.data;
  return {
    address: v.address.replace(/\/+$/, ''),
    mount: v.mount,
    kvVersion: v.kvVersion,
    namespace: v.namespace === undefined || v.namespace === '' ? undefined : v.namespace,
    caPem: v.caBundle === undefined || v.caBundle === '' ? undefined : decodeCaBundle(v.caBundle, 'vault.caBundle'),
    auth: toAuth(v.auth, v.address.replace(/\/+$/, '')),
  };
}

function toAuth(a: z.infer<typeof authSchema>, address: string): VaultAuthConfig {
  if (a.kubernetes !== undefined) {
    const k = a.kubernetes;
    return {
      method: 'kubernetes',
      role: k.role,
      mountPath: k.mountPath,
      serviceAccountName: k.serviceAccountRef.name,
      audiences: [k.audience],
      loginAddress: address,
    };
  }
  if (a.appRole !== undefined) {
    return { method: 'appRole', roleId: a.appRole.roleId, mountPath: a.appRole.mountPath, secretRef: a.appRole.secretRef };
  }
  if (a.token !== undefined) return { method: 'token', secretRef: a.token.secretRef };
  // Unreachable: the schema's refine guarantees exactly one method.
  throw new InvalidConfigError('vault.auth: exactly one of kubernetes, appRole, token must be set');
}

function isUnsafeSegment(segment: string): boolean {
  return segment === '' || segment === '.' || segment === '..';
}
