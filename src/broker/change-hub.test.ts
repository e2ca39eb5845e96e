import { describe, expect, it } from '@jest/globals';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { ChangeHub } from './change-hub.ts';

const binding = { metadata: { namespace: 'apps', name: 'web' } } as SecretBinding;

describe('ChangeHub', () => {
  it('wakes the waiters of a binding when its hash changes, not when it is set again', () => {
    const hub = new ChangeHub();
    let wakes = 0;
    const unsubscribe = hub.subscribe([ChangeHub.bindingKey('apps', 'web')], () => { wakes += 1; });
    hub.record(binding, { kind: 'resolved', files: [], hmac: 'h1', versions: [], stale: undefined });
    hub.record(binding, { kind: 'resolved', files: [], hmac: 'h1', versions: [], stale: undefined });
    expect(wakes).toBe(1);
    expect(hub.current('apps', 'web')).toEqual({ kind: 'hash', hash: 'h1' });
    hub.record(binding, { kind: 'resolved', files: [], hmac: 'h2', versions: [], stale: undefined });
    expect(wakes).toBe(2);
    unsubscribe();
    expect(hub.subscribedKeys).toBe(0);
    hub.forget('apps', 'web');
    expect(wakes).toBe(2);
    expect(hub.current('apps', 'web')).toBeUndefined();
  });

  it('keeps the last hash through a backend outage and revokes on an access denial', () => {
    const hub = new ChangeHub();
    hub.record(binding, { kind: 'resolved', files: [], hmac: 'h1', versions: [], stale: undefined });
    hub.record(binding, { kind: 'failed', reason: 'BackendUnavailable', message: 'down', retry: true });
    expect(hub.current('apps', 'web')).toEqual({ kind: 'hash', hash: 'h1' });
    hub.record(binding, { kind: 'failed', reason: 'AccessDenied', message: 'no', retry: false });
    expect(hub.current('apps', 'web')).toEqual({ kind: 'revoked', reason: 'AccessDenied' });
  });

  it('wakes pod waiters on a touch of their pod key only', () => {
    const hub = new ChangeHub();
    const woken: string[] = [];
    hub.subscribe([ChangeHub.podKey('apps', 'a')], () => woken.push('a'));
    hub.subscribe([ChangeHub.podKey('apps', 'b')], () => woken.push('b'));
    hub.touch(ChangeHub.podKey('apps', 'b'));
    expect(woken).toEqual(['b']);
  });

  it('counts consuming pods known to hold another hash, and forgets pods that stopped consuming', () => {
    const hub = new ChangeHub();
    hub.held('apps', 'web', 'uid-1', 'h1');
    hub.held('apps', 'web', 'uid-2', 'h1');
    hub.held('apps', 'web', 'uid-3', 'h2');
    expect(hub.staleConsumers('apps', 'web', ['uid-1', 'uid-2', 'uid-3', 'uid-never-served'], 'h2')).toBe(2);
    hub.held('apps', 'web', 'uid-1', 'h2');
    // uid-2 no longer consumes: not counted, and dropped.
    expect(hub.staleConsumers('apps', 'web', ['uid-1', 'uid-3'], 'h2')).toBe(0);
    expect(hub.staleConsumers('apps', 'web', ['uid-1', 'uid-2', 'uid-3'], 'h2')).toBe(0);
    hub.forget('apps', 'web');
    expect(hub.staleConsumers('apps', 'other', ['uid-1'], 'h2')).toBe(0);
  });
});
