import { afterEach, describe, expect, it } from '@jest/globals';
import { VaultEventsSource } from '../../src/backends/vault/vault.events-source.ts';
import { RecordingSink } from '../../src/backends/notices/recording-sink.test-fixtures.ts';
import { CapturedOutput } from '../../src/observability/captured-output.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { realClock } from '../../src/runtime/clock.ts';
import { VaultEventsDouble } from '../harness/vault-events-double.ts';

/**
 * The Vault Enterprise events-API source (ADR 0226) against the project's double of that API
 * (test/harness/vault-events-double.ts): OpenBao, the world's Vault, has no events API, and Vault
 * Enterprise cannot run here. The double speaks the websocket and the JSON Vault documents.
 */

const token = 'events-test-token';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function eventually(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!check()) throw new Error(`never: ${what}`);
}

async function subscribed(options: { sourceToken?: string; maxEventsPerSecond?: number } = {}) {
  const double = await VaultEventsDouble.start({ token });
  cleanups.push(() => double.close());
  const refused: string[] = [];
  const log = new CapturedOutput();
  const source = new VaultEventsSource({
    address: double.address,
    namespace: undefined,
    caPem: undefined,
    token: () => Promise.resolve(options.sourceToken ?? token),
    tokenRefused: (t) => refused.push(t),
    eventTypes: 'kv*',
    maxEventsPerSecond: options.maxEventsPerSecond ?? 1000,
    clock: realClock,
    logger: createLogger({ level: 'debug', component: 'test', stream: log }),
    timing: { minBackoffMs: 20, maxBackoffMs: 100, pingEveryMs: 50, pongWithinMs: 50 },
  });
  const sink = new RecordingSink();
  const stop = new AbortController();
  const running = source.start(sink, stop.signal);
  cleanups.push(async () => { stop.abort(); await running; });
  return { double, source, sink, refused, log };
}

describe('VaultEventsSource (events API, against the double)', () => {
  it('turns KV v2 and v1 events into notices of mount and key, and ignores other events', async () => {
    const s = await subscribed();
    await eventually('subscribed', () => s.double.subscribers === 1 && s.sink.ups.at(-1) === true);
    s.double.emit({ eventType: 'kv-v2/data-write', mountPath: 'secret/', path: 'secret/data/app/db', metadata: { current_version: '2' } });
    s.double.emit({ eventType: 'kv-v2/metadata-delete', mountPath: 'secret/', path: 'secret/metadata/app/api' });
    s.double.emit({ eventType: 'kv-v2/destroy', mountPath: 'team/kv/', path: 'team/kv/destroy/x' });
    s.double.emit({ eventType: 'kv-v1/write', mountPath: 'legacy/', path: 'legacy/service/token' });
    s.double.emit({ eventType: 'kv-v2/data-write', mountPath: 'secret/', path: 'secret/data/same', metadata: { modified: 'false' } });
    s.double.emit({ eventType: 'kv-v2/config-write', mountPath: 'secret/', path: 'secret/config' });
    await eventually('all handled', () => s.sink.seen === 6);
    expect(s.sink.notices).toEqual([
      { provider: 'vault', scope: 'secret', key: 'app/db' },
      { provider: 'vault', scope: 'secret', key: 'app/api' },
      { provider: 'vault', scope: 'team/kv', key: 'x' },
      { provider: 'vault', scope: 'legacy', key: 'service/token' },
    ]);
    expect(s.sink.ignoredCount).toBe(2);
  });

  it('counts malformed, binary, oversized and flooding messages, logs none of them, and resubscribes', async () => {
    const s = await subscribed({ maxEventsPerSecond: 5 });
    await eventually('subscribed', () => s.double.subscribers === 1);
    const marker = 'leaked-value-5f3a';
    s.double.sendRaw(`{"not json ${marker}`);
    s.double.sendRaw(JSON.stringify({ data: { event_type: 'kv-v2/data-write', plugin_info: {} }, marker }));
    s.double.sendRaw(Buffer.from([1, 2, 3]));
    await eventually('three malformed', () => s.sink.rejections.length === 3);
    expect(s.sink.rejections).toEqual(['malformed', 'malformed', 'malformed']);
    for (let i = 0; i < 10; i++) s.double.emit({ eventType: 'kv-v2/data-write', mountPath: 'secret/', path: `secret/data/k${String(i)}` });
    await eventually('budget spent', () => s.sink.rejections.includes('rateLimited'));
    s.double.sendRaw('x'.repeat(1024 * 1024 + 1));
    await eventually('oversized ends the connection', () => s.sink.rejections.includes('oversized') && s.sink.ups.includes(false));
    await eventually('resubscribed', () => s.double.subscribers === 1 && s.sink.ups.at(-1) === true);
    expect(await s.log.text()).not.toContain(marker);
  });

  it('redials after the server drops the subscription, and reports the source down meanwhile', async () => {
    const s = await subscribed();
    await eventually('subscribed', () => s.double.subscribers === 1);
    s.double.dropSubscribers();
    await eventually('down', () => s.sink.ups.at(-1) === false);
    await eventually('up again', () => s.double.subscribers === 1 && s.sink.ups.at(-1) === true);
    s.double.emit({ eventType: 'kv-v2/data-write', mountPath: 'secret/', path: 'secret/data/after' });
    await eventually('notice after redial', () => s.sink.notices.length === 1);
  });

  it('a refused token is handed back (so the session logs in again) and never reported up', async () => {
    const s = await subscribed({ sourceToken: 'wrong-token' });
    await eventually('refused twice', () => s.double.refused >= 2);
    expect(s.refused[0]).toBe('wrong-token');
    expect(s.sink.ups).toEqual([]);
    expect(await s.log.text()).toContain('subscription refused');
    expect(await s.log.text()).not.toContain('wrong-token');
  });
});
