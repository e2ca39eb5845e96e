import { z } from 'zod';
import { InvalidConfigError } from '../backend.port.ts';
import { formatIssues } from '../provider.support.ts';

/**
 * The `awsSecretsManager` block of a backend spec (crds/secretbinder.dev_*backends.yaml),
 * validated, with the CRD's defaults applied.
 */

const httpUrl = z.url({ protocol: /^https?$/, hostname: /.+/ }).max(2048);
const serviceAccountRef = z.object({ name: z.string().min(1).max(253) }).strict();

const authSchema = z
  .object({
    webIdentity: z
      .object({
        roleArn: z
          .string()
          .max(2048)
          .regex(/^arn:[a-z0-9-]+:iam::[0-9]{12}:role\/.+$/, 'must be an IAM role ARN, e.g. arn:aws:iam::123456789012:role/app'),
        serviceAccountRef,
        audience: z.string().min(1).max(256).default('sts.amazonaws.com'),
      })
      .strict()
      .optional(),
    staticKeys: z
      .object({
        secretRef: z
          .object({
            name: z.string().min(1).max(253),
            accessKeyIdKey: z.string().min(1).max(253).default('accessKeyId'),
            secretAccessKeyKey: z.string().min(1).max(253).default('secretAccessKey'),
            sessionTokenKey: z.string().max(253).optional(),
          })
          .strict(),
      })
      .strict()
      .optional(),
    defaultChain: z.object({}).strict().optional(),
  })
  .strict()
  .refine((a) => [a.webIdentity, a.staticKeys, a.defaultChain].filter((x) => x !== undefined).length === 1, {
    message: 'exactly one of webIdentity, staticKeys, defaultChain must be set',
  });

const awsSchema = z
  .object({
    region: z.string().min(1).max(64).regex(/^[a-z0-9]+(-[a-z0-9]+)+$/, 'must be an AWS region, e.g. eu-west-1'),
    endpoint: z.union([httpUrl, z.literal('')]).optional(),
    stsEndpoint: z.union([httpUrl, z.literal('')]).optional(),
    auth: authSchema,
  })
  .strict();

export type AwsAuthConfig =
  | { readonly method: 'webIdentity'; readonly roleArn: string; readonly serviceAccountName: string; readonly audience: string }
  | {
      readonly method: 'staticKeys';
      readonly secretName: string;
      readonly accessKeyIdKey: string;
      readonly secretAccessKeyKey: string;
      readonly sessionTokenKey: string | undefined;
    }
  | { readonly method: 'defaultChain' };

export interface AwsConfig {
  readonly region: string;
  /** Secrets Manager endpoint override; undefined: the regional AWS endpoint. */
  readonly endpoint: string | undefined;
  /** STS endpoint override for webIdentity; undefined: the regional AWS endpoint. */
  readonly stsEndpoint: string | undefined;
  readonly auth: AwsAuthConfig;
}

/** Validates the `awsSecretsManager` block; throws {@link InvalidConfigError} with a one-line message. */
export function parseAwsConfig(spec: unknown): AwsConfig {
  const parsed = awsSchema.safeParse(spec);
  if (!parsed.success) throw new InvalidConfigError(`awsSecretsManager: ${formatIssues(parsed.error)}`);
  const v = parsed.data;
  return {
    region: v.region,
    endpoint: emptyToUndefined(v.endpoint),
    stsEndpoint: emptyToUndefined(v.stsEndpoint),
    auth: toAuth(v.auth),
  };
}

function toAuth(a: z.infer<typeof authSchema>): AwsAuthConfig {
  if (a.webIdentity !== undefined) {
    const w = a.webIdentity;
    return { method: 'webIdentity', roleArn: w.roleArn, serviceAccountName: w.serviceAccountRef.name, audience: w.audience };
  }
  if (a.staticKeys !== undefined) {
    const r = a.staticKeys.secretRef;
    return {
      method: 'staticKeys',
      secretName: r.name,
      accessKeyIdKey: r.accessKeyIdKey,
      secretAccessKeyKey: r.secretAccessKeyKey,
      sessionTokenKey: emptyToUndefined(r.sessionTokenKey),
    };
  }
  return { method: 'defaultChain' };
}

function emptyToUndefined(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
