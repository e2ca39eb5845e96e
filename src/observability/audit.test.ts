import { describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditLog, type DeliveredEvent } from './audit.ts';
import { CapturedOutput } from './captured-output.ts';
import { SecretValue } from './secret-value.ts';

const fixedNow = () => new Date('2025-06-01T12:00:00Z');

const delivered: DeliveredEvent = {
  binding: { namespace: 'app', name: 'db' },
  pod: { namespace: 'app', name: 'web-1', uid: '0b5c6a1e-1111-2222-3333-444455556666' },
  node: 'node-a',
  containers: ['web'],
  paths: ['db/password', 'db/username'],
  contentHmac: 'hmac-sha256:' + 'ab'.repeat(32),
  backendVersions: { 'app/db': '7' },
  via: 'csi',
};

describe('audit log', () => {
  it('writes typed events as marked JSON lines', async () => {
    const out = new CapturedOutput();
    const audit = createAuditLog({ destination: { kind: 'stream', stream: out }, now: fixedNow });
    audit.delivered(delivered);
    audit.denied({ reason: 'PodNotOnNode', detail: 'pod is scheduled on another node', pod: { namespace: 'app', name: 'web-2' }, node: 'node-b', via: 'csi' });
    audit.revoked({ reason: 'BindingDeleted', binding: delivered.binding, pod: delivered.pod, paths: delivered.paths });
    const lines = await out.lines();
    expect(lines).toEqual([
      { audit: true, schema: 'secretbinder.dev/audit/v1', event: 'delivered', time: '2025-06-01T12:00:00.000Z', ...delivered },
      {
        audit: true,
        schema: 'secretbinder.dev/audit/v1',
        event: 'denied',
        time: '2025-06-01T12:00:00.000Z',
        reason: 'PodNotOnNode',
        detail: 'pod is scheduled on another node',
        pod: { namespace: 'app', name: 'web-2' },
        node: 'node-b',
        via: 'csi',
      },
      expect.objectContaining({ event: 'revoked', reason: 'BindingDeleted', paths: ['db/password', 'db/username'] }),
    ]);
  });

  it('refuses a value smuggled past the types, and writes nothing for it', async () => {
    const out = new CapturedOutput();
    const audit = createAuditLog({ destination: { kind: 'stream', stream: out }, now: fixedNow });
    const secret = SecretValue.fromString('p4ssw0rd-do-not-log');
    const bad = { ...delivered, contentHmac: secret } as unknown as DeliveredEvent;
    expect(() => {
      audit.delivered(bad);
    }).toThrow(/audit delivered.contentHmac/);
    const nestedBad = { ...delivered, backendVersions: { 'app/db': secret } } as unknown as DeliveredEvent;
    expect(() => {
      audit.delivered(nestedBad);
    }).toThrow(/backendVersions/);
    const bytes = { ...delivered, paths: [new Uint8Array([1, 2])] } as unknown as DeliveredEvent;
    expect(() => {
      audit.delivered(bytes);
    }).toThrow(/paths\[0\]/);
    expect(() => {
      audit.denied({ reason: 'X', event: 'delivered' } as unknown as { reason: string });
    }).toThrow(/reserved/);
    expect(await out.text()).toBe('');
  });

  it('appends to a file and closes it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-'));
    try {
      const path = join(dir, 'audit.jsonl');
      const audit = createAuditLog({ destination: { kind: 'file', path }, now: fixedNow });
      audit.delivered(delivered);
      audit.revoked({ reason: 'PodDeleted', binding: delivered.binding, pod: delivered.pod });
      await audit.close();
      const lines = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l['event'])).toEqual(['delivered', 'revoked']);
      expect(lines.every((l) => l['audit'] === true)).toBe(true);
      expect(() => {
        audit.delivered(delivered);
      }).toThrow(/closed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
