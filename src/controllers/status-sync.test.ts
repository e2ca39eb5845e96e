import { describe, expect, it } from '@jest/globals';
import { mergePatch, publishStatus, type StatusPublisher } from './status-sync.ts';
import type { Condition } from '../api/v1alpha1/index.ts';

describe('status merge patch', () => {
  it('is undefined when nothing changed, whatever the key order', () => {
    expect(mergePatch({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toBeUndefined();
  });

  it('compares arrays of objects regardless of the order of their keys', () => {
    const fromServer = { conditions: [{ message: 'm', reason: 'R', status: 'True', type: 'Ready' }] };
    const computed = { conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: 'm' }] };
    expect(mergePatch(fromServer, computed)).toBeUndefined();
  });

  it('carries only what changed, replacing arrays whole', () => {
    expect(mergePatch({ a: 1, b: { c: [1, 2], d: 'x' } }, { a: 1, b: { c: [1, 3], d: 'x' } })).toEqual({ b: { c: [1, 3] } });
  });

  it('removes fields the desired status no longer has', () => {
    expect(mergePatch({ a: 1, consumers: { pods: 2, stale: 1 } }, { a: 1, consumers: { pods: 2 } })).toEqual({ consumers: { stale: null } });
    expect(mergePatch({ a: 1, old: 'x' }, { a: 1, old: undefined })).toEqual({ old: null });
  });
});

describe('publishStatus Events', () => {
  const ready = (status: 'True' | 'False', reason: string): { conditions: Condition[] } => ({
    conditions: [{ type: 'Ready', status, reason, message: reason, lastTransitionTime: '2026-12-06T00:00:00Z' }],
  });
  const publish = async (current: object | undefined, desired: { conditions: Condition[] }): Promise<string[]> => {
    const recorded: string[] = [];
    const publisher = {
      custom: { patchNamespacedCustomObjectStatus: () => Promise.resolve({}) },
      events: { record: (_s: unknown, e: { type: string; reason: string }) => { recorded.push(`${e.type}/${e.reason}`); return Promise.resolve(); } },
    } as unknown as StatusPublisher;
    await publishStatus(publisher, { ref: { group: 'g', version: 'v', plural: 'p', namespace: 'n', name: 'x' }, subject: { apiVersion: 'g/v', kind: 'K', namespace: 'n', name: 'x', uid: 'u' }, current, desired });
    return recorded;
  };

  it('records none when Ready first appears as True, one for a first failure, a recovery and a new reason', async () => {
    expect(await publish(undefined, ready('True', 'Reconciled'))).toEqual([]);
    expect(await publish({}, ready('True', 'Reconciled'))).toEqual([]);
    expect(await publish(undefined, ready('False', 'BackendUnavailable'))).toEqual(['Warning/BackendUnavailable']);
    expect(await publish(ready('False', 'BackendUnavailable'), ready('True', 'Reconciled'))).toEqual(['Normal/Reconciled']);
    expect(await publish(ready('True', 'Reconciled'), ready('False', 'AccessDenied'))).toEqual(['Warning/AccessDenied']);
    expect(await publish(ready('True', 'Reconciled'), ready('True', 'Reconciled'))).toEqual([]);
  });
});
