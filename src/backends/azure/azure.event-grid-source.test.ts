import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapturedOutput } from '../../observability/captured-output.ts';
import { createLogger } from '../../observability/logger.ts';
import { realClock } from '../../runtime/clock.ts';
import { AzureEventGridSource } from './azure.event-grid-source.ts';
import { cloudSecretEvent, gridSecretEvent, gridValidationEvent } from './azure.event-grid.test-fixtures.ts';
import { RecordingSink } from '../notices/recording-sink.test-fixtures.ts';


const secret = 'event-grid-shared-secret-0123456789';
const vaultUrl = 'https://myvault.vault.azure.net';
const stops: AbortController[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await new Promise((resolve) => setTimeout(resolve, 20));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function started(maxEventsPerSecond = 1000) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-grid-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'secret'), `${secret}\n`, { mode: 0o600 });
  const log = new CapturedOutput();
  const source = new AzureEventGridSource({
    host: '127.0.0.1',
    port: 0,
    secretFile: join(dir, 'secret'),
    maxEventsPerSecond,
    clock: realClock,
    logger: createLogger({ level: 'debug', component: 'test', stream: log }),
  });
  const sink = new RecordingSink();
  const stop = new AbortController();
  stops.push(stop);
  void source.start(sink, stop.signal);
  while (source.address === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
  const post = (body: unknown, options: { code?: string; contentType?: string; headers?: Record<string, string> } = {}) =>
    fetch(`http://${source.address ?? ''}/eventgrid?code=${encodeURIComponent(options.code ?? secret)}`, {
      method: 'POST',
      headers: { 'content-type': options.contentType ?? 'application/json', ...options.headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  return { source, sink, log, post, url: `http://${source.address}/eventgrid` };
}

describe('AzureEventGridSource', () => {
  it('answers the Event Grid schema validation handshake with the code', async () => {
    const s = await started();
    const answer = await s.post(gridValidationEvent('512d38b6-c7b8-40c8-89fe-f46f9e9622b6'), { headers: { 'aeg-event-type': 'SubscriptionValidation' } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ validationResponse: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6' });
  });

  it('answers the CloudEvents abuse-protection handshake (OPTIONS)', async () => {
    const s = await started();
    const answer = await fetch(`${s.url}?code=${secret}`, { method: 'OPTIONS', headers: { 'WebHook-Request-Origin': 'eventgrid.azure.net' } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('webhook-allowed-origin')).toBe('eventgrid.azure.net');
  });

  it('turns SecretNewVersionCreated into a notice, in both schemas', async () => {
    const s = await started();
    expect((await s.post(gridSecretEvent(vaultUrl, 'db-password'), { headers: { 'aeg-event-type': 'Notification' } })).status).toBe(200);
    expect((await s.post(cloudSecretEvent(vaultUrl, 'api-key'), { contentType: 'application/cloudevents+json; charset=utf-8' })).status).toBe(200);
    expect((await s.post([cloudSecretEvent(vaultUrl, 'batch-key')], { contentType: 'application/cloudevents-batch+json' })).status).toBe(200);
    expect(s.sink.notices).toEqual([
      { provider: 'azureKeyVault', scope: 'myvault.vault.azure.net', key: 'db-password' },
      { provider: 'azureKeyVault', scope: 'myvault.vault.azure.net', key: 'api-key' },
      { provider: 'azureKeyVault', scope: 'myvault.vault.azure.net', key: 'batch-key' },
    ]);
  });

  it('ignores other Key Vault events (near expiry, expired)', async () => {
    const s = await started();
    expect((await s.post(gridSecretEvent(vaultUrl, 'db', 'Microsoft.KeyVault.SecretNearExpiry'))).status).toBe(200);
    expect(s.sink.ignoredCount).toBe(1);
    expect(s.sink.notices).toEqual([]);
  });

  it.each([
    ['no secret', ''],
    ['a wrong secret', 'event-grid-shared-secret-0123456788'],
  ])('refuses a request with %s, handshakes included, as unauthenticated (401)', async (_what, code) => {
    const s = await started();
    expect((await s.post(gridSecretEvent(vaultUrl, 'db'), { code })).status).toBe(401);
    expect((await s.post(gridValidationEvent('x'), { code, headers: { 'aeg-event-type': 'SubscriptionValidation' } })).status).toBe(401);
    expect((await fetch(`${s.url}?code=${code}`, { method: 'OPTIONS', headers: { 'WebHook-Request-Origin': 'eventgrid.azure.net' } })).status).toBe(401);
    expect(s.sink.rejections).toEqual(['unauthenticated', 'unauthenticated', 'unauthenticated']);
    expect(s.sink.notices).toEqual([]);
  });

  it('refuses malformed and oversized bodies, never logging them', async () => {
    const s = await started();
    const marker = 'leaked-value-91ab';
    expect((await s.post(`{"not json ${marker}`)).status).toBe(400);
    expect((await s.post([{ id: '1', eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', data: { ObjectName: marker, Id: 'not a url' } }])).status).toBe(400);
    expect((await s.post(`"${'x'.repeat(2 * 1024 * 1024)}"`)).status).toBe(413);
    expect(s.sink.rejections).toEqual(['malformed', 'malformed', 'oversized']);
    expect(await s.log.text()).not.toContain(marker);
  });

  it('answers 429 once its event budget is spent', async () => {
    const s = await started(5);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await s.post(gridSecretEvent(vaultUrl, `k${String(i)}`))).status);
    expect(statuses.filter((c) => c === 429).length).toBeGreaterThan(0);
    expect(s.sink.rejections.every((r) => r === 'rateLimited')).toBe(true);
    expect(s.sink.notices.length).toBeLessThan(10);
  });
});
