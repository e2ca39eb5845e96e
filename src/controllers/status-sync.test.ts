import { describe, expect, it } from '@jest/globals';
import { mergePatch } from './status-sync.ts';

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
