import { z } from 'zod';

/**
 * Key Vault events as Event Grid delivers them to a webhook (ADR 0223), in either schema:
 * Event Grid's own (a JSON array of `{ id, topic, subject, eventType, data, ... }`) or CloudEvents
 * 1.0 (`{ specversion, type, source, subject, id, data }`, one or a batch). Key Vault event data
 * names the secret and its new version's id, never its value.
 */

export type GridEventMeaning =
  | { readonly kind: 'change'; readonly vaultHost: string; readonly secretName: string }
  /** Subscription validation (Event Grid schema): answer with the code. */
  | { readonly kind: 'validation'; readonly validationCode: string }
  /** A valid event that changes no secret value (near expiry, expired, a key or certificate event). */
  | { readonly kind: 'ignored' }
  | { readonly kind: 'malformed' };

export const secretNewVersionCreated = 'Microsoft.KeyVault.SecretNewVersionCreated';
export const subscriptionValidation = 'Microsoft.EventGrid.SubscriptionValidationEvent';

const name = z.string().min(1).max(256);

const keyVaultData = z.object({
  Id: z.string().min(1).max(2048).optional(),
  VaultName: name.optional(),
  ObjectType: z.string().optional(),
  ObjectName: name,
});

const gridEvent = z.object({ id: z.string(), eventType: z.string(), subject: z.string().optional(), topic: z.string().optional(), data: z.unknown() });
const cloudEvent = z.object({ specversion: z.literal('1.0'), id: z.string(), type: z.string(), source: z.string(), subject: z.string().optional(), data: z.unknown() });

/** Every event of a parsed request body: one meaning per event; a body of the wrong shape gives one. */
export function parseGridBody(json: unknown, schema: 'eventGrid' | 'cloudEvents'): GridEventMeaning[] {
  const events = Array.isArray(json) ? (json as unknown[]) : schema === 'cloudEvents' ? [json] : undefined;
  if (events === undefined || events.length === 0) return [{ kind: 'malformed' }];
  return events.map((event) => (schema === 'eventGrid' ? fromGrid(event) : fromCloud(event)));
}

function fromGrid(event: unknown): GridEventMeaning {
  const parsed = gridEvent.safeParse(event);
  if (!parsed.success) return { kind: 'malformed' };
  const { eventType, data } = parsed.data;
  if (eventType === subscriptionValidation) {
    const code = z.object({ validationCode: z.string().min(1).max(512) }).safeParse(data);
    return code.success ? { kind: 'validation', validationCode: code.data.validationCode } : { kind: 'malformed' };
  }
  return eventType === secretNewVersionCreated ? change(data) : { kind: 'ignored' };
}

function fromCloud(event: unknown): GridEventMeaning {
  const parsed = cloudEvent.safeParse(event);
  if (!parsed.success) return { kind: 'malformed' };
  return parsed.data.type === secretNewVersionCreated ? change(parsed.data.data) : { kind: 'ignored' };
}

/** The vault's host from the secret id (`https://<vault>.vault.azure.net/secrets/<name>/<version>`), else its name. */
function change(data: unknown): GridEventMeaning {
  const parsed = keyVaultData.safeParse(data);
  if (!parsed.success) return { kind: 'malformed' };
  const { Id, VaultName, ObjectName } = parsed.data;
  let vaultHost: string | undefined;
  if (Id !== undefined) {
    try {
      vaultHost = new URL(Id).host.toLowerCase();
    } catch {
      return { kind: 'malformed' };
    }
  } else if (VaultName !== undefined) vaultHost = `${VaultName.toLowerCase()}.vault.azure.net`;
  return vaultHost === undefined ? { kind: 'malformed' } : { kind: 'change', vaultHost, secretName: ObjectName };
}
