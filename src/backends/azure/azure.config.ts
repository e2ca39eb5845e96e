import { z } from 'zod';
import { InvalidConfigError } from '../backend.port.ts';
import { decodeCaBundle, formatIssues } from '../provider.support.ts';

/**
 * The `azureKeyVault` block of a backend spec (crds/secretbinder.dev_*backends.yaml), validated,
 * with the CRD's defaults applied.
 */

const httpsUrl = z.url({ protocol: /^https$/, hostname: /.+/ }).max(2048);
const id = z.string().min(1).max(256);
// @azure/identity throws from its constructors on any other tenant id; refused here it becomes an
// InvalidSpec status instead of a reconcile that fails and retries forever (found by fuzzing).
const tenantId = id.regex(/^[0-9A-Za-z.-]+$/, 'must be a tenant id (letters, digits, "-" and ".")');

const authSchema = z
  .object({
    workloadIdentity: z
      .object({
        tenantId,
        clientId: id,
        serviceAccountRef: z.object({ name: z.string().min(1).max(253) }).strict(),
        audience: z.string().min(1).max(256).default('api://AzureADTokenExchange'),
        authorityHost: z.union([httpsUrl, z.literal('')]).optional(),
      })
      .strict()
      .optional(),
    clientSecret: z
      .object({
        tenantId,
        clientId: id,
        secretRef: z.object({ name: z.string().min(1).max(253), key: z.string().min(1).max(253) }).strict(),
        authorityHost: z.union([httpsUrl, z.literal('')]).optional(),
      })
      .strict()
      .optional(),
    managedIdentity: z.object({ clientId: z.string().max(256).optional() }).strict().optional(),
  })
  .strict()
  .refine((a) => [a.workloadIdentity, a.clientSecret, a.managedIdentity].filter((x) => x !== undefined).length === 1, {
    message: 'exactly one of workloadIdentity, clientSecret, managedIdentity must be set',
  });

const azureSchema = z
  .object({
    vaultUrl: httpsUrl,
    serviceVersion: z
      .string()
      .max(32)
      .regex(/^([0-9]+\.[0-9]+(-preview(\.[0-9]+)?)?|[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?)?$/, 'must be a Key Vault API version, e.g. 7.5')
      .optional(),
    caBundle: z.string().max(65536).optional(),
    auth: authSchema,
  })
  .strict();

export type AzureAuthConfig =
  | {
      readonly method: 'workloadIdentity';
      readonly tenantId: string;
      readonly clientId: string;
      readonly serviceAccountName: string;
      readonly audience: string;
      readonly authorityHost: string | undefined;
    }
  | {
      readonly method: 'clientSecret';
      readonly tenantId: string;
      readonly clientId: string;
      readonly secretRef: { readonly name: string; readonly key: string };
      readonly authorityHost: string | undefined;
    }
  | { readonly method: 'managedIdentity'; readonly clientId: string | undefined };

export interface AzureConfig {
  /** https://<vault>.vault.azure.net, without a trailing slash. */
  readonly vaultUrl: string;
  /** Key Vault REST API version; undefined: the SDK's default. */
  readonly serviceVersion: string | undefined;
  /** PEM certificates trusted in addition to the system roots. */
  readonly caPem: string | undefined;
  readonly auth: AzureAuthConfig;
}

/** Validates the `azureKeyVault` block; throws {@link InvalidConfigError} with a one-line message. */
export function parseAzureConfig(spec: unknown): AzureConfig {
  const parsed = azureSchema.safeParse(spec);
  if (!parsed.success) throw new InvalidConfigError(`azureKeyVault: ${formatIssues(parsed.error)}`);
  const v = parsed.data;
  return {
    vaultUrl: v.vaultUrl.replace(/\/+$/, ''),
    serviceVersion: emptyToUndefined(v.serviceVersion),
    caPem: v.caBundle === undefined || v.caBundle === '' ? undefined : decodeCaBundle(v.caBundle, 'azureKeyVault.caBundle'),
    auth: toAuth(v.auth),
  };
}

function toAuth(a: z.infer<typeof authSchema>): AzureAuthConfig {
  if (a.workloadIdentity !== undefined) {
    const w = a.workloadIdentity;
    return {
      method: 'workloadIdentity',
      tenantId: w.tenantId,
      clientId: w.clientId,
      serviceAccountName: w.serviceAccountRef.name,
      audience: w.audience,
      authorityHost: emptyToUndefined(w.authorityHost),
    };
  }
  if (a.clientSecret !== undefined) {
    const c = a.clientSecret;
    return {
      method: 'clientSecret',
      tenantId: c.tenantId,
      clientId: c.clientId,
      secretRef: c.secretRef,
      authorityHost: emptyToUndefined(c.authorityHost),
    };
  }
  return { method: 'managedIdentity', clientId: emptyToUndefined(a.managedIdentity?.clientId) };
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
