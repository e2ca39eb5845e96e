import { z } from 'zod';
import { kvDocument, type AuditEntryMeaning } from './vault.audit-entry.ts';

/**
 * One message of Vault Enterprise's events API (`sys/events/subscribe/<type>?json=true`, Vault ≥ 1.16,
 * ADR 0226), as far as change notices need it: a CloudEvents 1.0 envelope whose `data` holds the
 * `event_type`, the plugin's `mount_path` and the event's metadata (`path`, and `data_path` for KV v2).
 * Events carry paths and versions, never values; nothing read here is logged.
 */

const eventSchema = z.object({
  data: z.object({
    event_type: z.string(),
    event: z.object({ metadata: z.record(z.string(), z.unknown()).optional() }).optional(),
    plugin_info: z.object({ mount_path: z.string() }),
  }),
});

/** The KV events Vault documents: each changes a document's data, versions or metadata. */
export const kvEventTypes: ReadonlySet<string> = new Set([
  'kv-v1/write',
  'kv-v1/delete',
  'kv-v2/data-write',
  'kv-v2/data-patch',
  'kv-v2/data-delete',
  'kv-v2/delete',
  'kv-v2/undelete',
  'kv-v2/destroy',
  'kv-v2/metadata-write',
  'kv-v2/metadata-patch',
  'kv-v2/metadata-delete',
]);

/** The meaning of one events-API message: a KV document changed, something else, or garbage. */
export function parseVaultEvent(text: string): AuditEntryMeaning {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'malformed' };
  }
  const parsed = eventSchema.safeParse(json);
  if (!parsed.success) return { kind: 'malformed' };
  const { event_type: type, event, plugin_info: plugin } = parsed.data.data;
  if (!kvEventTypes.has(type)) return { kind: 'ignored' };
  const metadata = event?.metadata ?? {};
  // A write that changed nothing (`modified: "false"`) needs no check.
  if (metadata.modified === 'false') return { kind: 'ignored' };
  const path = typeof metadata.data_path === 'string' ? metadata.data_path : metadata.path;
  if (typeof path !== 'string') return { kind: 'malformed' };
  return kvDocument(plugin.mount_path, path);
}
