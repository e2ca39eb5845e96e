import { describe, expect, it } from '@jest/globals';
import { parseAuditLine } from './vault.audit-entry.ts';

/** A response entry as OpenBao 2.x writes it (fields HMAC'd, paths clear). */
function response(operation: string, path: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    time: '2026-12-06T06:09:40.765075203Z',
    type: 'response',
    auth: { client_token: 'hmac-sha256:99', policies: ['root'] },
    request: { id: 'x', operation, mount_point: 'secret/', mount_type: 'kv', path, data: { data: 'hmac-sha256:aa' } },
    response: {},
    ...extra,
  });
}

describe('parseAuditLine', () => {
  it.each([
    ['create', 'secret/data/app/db'],
    ['update', 'secret/data/app/db'],
    ['patch', 'secret/data/app/db'],
    ['delete', 'secret/data/app/db'],
    ['update', 'secret/metadata/app/db'],
    ['delete', 'secret/metadata/app/db'],
    ['update', 'secret/delete/app/db'],
    ['update', 'secret/undelete/app/db'],
    ['update', 'secret/destroy/app/db'],
  ])('%s %s is a change of app/db', (operation, path) => {
    expect(parseAuditLine(response(operation, path))).toEqual({ kind: 'change', mount: 'secret', key: 'app/db' });
  });

  it('takes a path under a KV v1 mount as the key', () => {
    expect(parseAuditLine(response('update', 'secret/app/db'))).toEqual({ kind: 'change', mount: 'secret', key: 'app/db' });
  });

  it.each([
    ['a read', response('read', 'secret/data/app/db')],
    ['a list', response('list', 'secret/metadata/app')],
    ['a request entry', response('update', 'secret/data/app/db', { type: 'request' })],
    ['a failed request', response('update', 'secret/data/app/db', { error: 'permission denied' })],
    ['the mount config', response('update', 'secret/config')],
    ['a mount of another engine', JSON.stringify({ type: 'response', request: { operation: 'update', path: 'sys/audit/x', mount_point: 'sys/', mount_type: 'system' } })],
    ['an entry without a request', JSON.stringify({ type: 'response' })],
  ])('ignores %s', (_what, line) => {
    expect(parseAuditLine(line)).toEqual({ kind: 'ignored' });
  });

  it.each([
    ['not JSON', '{"type":"response",'],
    ['a JSON scalar', '42'],
    ['a wrong type of field', JSON.stringify({ type: 'response', request: { operation: 1, path: 'secret/data/x' } })],
    ['a path outside its mount', JSON.stringify({ type: 'response', request: { operation: 'update', path: 'other/data/x', mount_point: 'secret/', mount_type: 'kv' } })],
  ])('calls %s malformed', (_what, line) => {
    expect(parseAuditLine(line)).toEqual({ kind: 'malformed' });
  });
});
