import { z } from 'zod';

/**
 * One line of an OpenBao / Vault audit device in JSON format, as far as change notices need it
 * (ADR 0221). Audit entries carry request paths in clear text and HMAC every value of request and
 * response bodies, so nothing read here is a secret; nothing read here is logged either.
 */

/** What a line says about KV documents. */
export type AuditEntryMeaning =
  /** A successful write, patch, delete, undelete, destroy or metadata change of one document. */
  | { readonly kind: 'change'; readonly mount: string; readonly key: string }
  /** A valid entry that changes no document (a read, a request entry, a failed request, a login). */
  | { readonly kind: 'ignored' }
  | { readonly kind: 'malformed' };

const entrySchema = z.object({
  type: z.string(),
  error: z.string().optional(),
  request: z
    .object({
      operation: z.string(),
      path: z.string(),
      mount_point: z.string().optional(),
      mount_type: z.string().optional(),
    })
    .optional(),
});

/** Operations that change a document (`read`, `list`, `help` do not). */
const changing: ReadonlySet<string> = new Set(['create', 'update', 'patch', 'delete']);

/** KV v2 endpoints under a mount whose next segments are a document's key. */
const kvV2Endpoints: ReadonlySet<string> = new Set(['data', 'metadata', 'delete', 'undelete', 'destroy']);

/**
 * The meaning of one audit line (the device's `prefix`, if any, already removed). Only response
 * entries count: OpenBao writes them after the request completed, so a check they cause sees the
 * change. KV v1 mounts have no endpoint segment; a path under a mount that is no KV v2 endpoint
 * (`config` excepted) is taken as a v1 key — a wrong guess costs one version check of a key no
 * binding may even use, never a wrong delivery.
 */
export function parseAuditLine(line: string): AuditEntryMeaning {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { kind: 'malformed' };
  }
  const parsed = entrySchema.safeParse(json);
  if (!parsed.success) return { kind: 'malformed' };
  const entry = parsed.data;
  const request = entry.request;
  if (entry.type !== 'response' || request === undefined) return { kind: 'ignored' };
  if (entry.error !== undefined && entry.error !== '') return { kind: 'ignored' };
  if (!changing.has(request.operation) || request.mount_type !== 'kv' || request.mount_point === undefined) return { kind: 'ignored' };
  return kvDocument(request.mount_point, request.path);
}

/**
 * The KV document a request path under a mount names (the mount point as Vault writes it, e.g.
 * `secret/`): KV v2 endpoints (`data/`, `metadata/`, `delete/`, `undelete/`, `destroy/`) are
 * followed by the key; any other path is taken as a KV v1 key (`config` excepted). Shared by the
 * audit device and the events API (ADR 0226).
 */
export function kvDocument(mountPoint: string, path: string): AuditEntryMeaning {
  if (!path.startsWith(mountPoint)) return { kind: 'malformed' };
  const rest = path.slice(mountPoint.length).replace(/^\/+/, '');
  const mount = mountPoint.replace(/^\/+|\/+$/g, '');
  const slash = rest.indexOf('/');
  const head = slash < 0 ? rest : rest.slice(0, slash);
  if (kvV2Endpoints.has(head)) {
    const key = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    return key === '' ? { kind: 'ignored' } : { kind: 'change', mount, key };
  }
  if (rest === '' || rest === 'config') return { kind: 'ignored' };
  return { kind: 'change', mount, key: rest.replace(/\/+$/, '') };
}
