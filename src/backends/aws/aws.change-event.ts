import { z } from 'zod';

/**
 * An EventBridge event of AWS Secrets Manager as an SQS message body (ADR 0222): "AWS API Call via
 * CloudTrail" for API calls, "AWS Service Event via CloudTrail" for rotation results. CloudTrail
 * never records secret values (SecretString / SecretBinary are omitted from requestParameters), so
 * nothing here is a secret; nothing here is logged either.
 */

export type ChangeEventMeaning =
  /** A successful call that changed the secret's value, versions or existence. */
  | { readonly kind: 'change'; readonly region: string; readonly keys: readonly string[] }
  /** A valid Secrets Manager event that changes no value (a read, a failed call, a tag). */
  | { readonly kind: 'ignored' }
  | { readonly kind: 'malformed' };

/** Calls (and rotation results) after which the current value or its versions may differ. */
export const changingEvents: ReadonlySet<string> = new Set([
  'PutSecretValue',
  'UpdateSecret',
  'RotateSecret',
  'RotationSucceeded',
  'DeleteSecret',
  'RestoreSecret',
  'UpdateSecretVersionStage',
  'CancelRotateSecret',
]);

const idField = z.string().min(1).max(2048);

const eventSchema = z.object({
  'detail-type': z.string(),
  source: z.string(),
  region: z.string().min(1).max(64),
  detail: z.object({
    eventSource: z.string().optional(),
    eventName: z.string(),
    awsRegion: z.string().optional(),
    errorCode: z.string().optional(),
    requestParameters: z.object({ secretId: idField.optional() }).nullish(),
    responseElements: z.object({ arn: idField.optional(), name: idField.optional() }).nullish(),
    additionalEventData: z.object({ SecretId: idField.optional() }).nullish(),
  }),
});

/** `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random>` → `<name>`. */
const secretArn = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(.+)-[A-Za-z0-9]{6}$/;

/**
 * The meaning of one message body. A secret is named in the event as the caller named it (a name
 * or an ARN) and, in responses and service events, by ARN; bindings may use either, so the name
 * inside an ARN is announced too — an extra notice costs nothing when no binding uses it.
 */
export function parseChangeEvent(body: string): ChangeEventMeaning {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { kind: 'malformed' };
  }
  const parsed = eventSchema.safeParse(json);
  if (!parsed.success || parsed.data.source !== 'aws.secretsmanager') return { kind: 'malformed' };
  const { detail, region } = parsed.data;
  if (!changingEvents.has(detail.eventName) || (detail.errorCode !== undefined && detail.errorCode !== '')) return { kind: 'ignored' };
  const ids = [detail.requestParameters?.secretId, detail.responseElements?.arn, detail.responseElements?.name, detail.additionalEventData?.SecretId].filter(
    (id): id is string => id !== undefined,
  );
  const keys = new Set<string>();
  for (const id of ids) {
    keys.add(id);
    const name = secretArn.exec(id)?.[1];
    if (name !== undefined) keys.add(name);
  }
  return keys.size === 0 ? { kind: 'malformed' } : { kind: 'change', region: detail.awsRegion ?? region, keys: [...keys] };
}
