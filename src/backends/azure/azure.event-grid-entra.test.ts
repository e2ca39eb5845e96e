import { afterEach, describe, expect, it } from '@jest/globals';
import { generateKeyPair, exportJWK, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapturedOutput } from '../../observability/captured-output.ts';
import { createLogger } from '../../observability/logger.ts';
import { realClock } from '../../runtime/clock.ts';
import { eventGridAppId } from './azure.entra-token.ts';
import { AzureEventGridSource } from './azure.event-grid-source.ts';
import { gridSecretEvent, gridValidationEvent } from './azure.event-grid.test-fixtures.ts';
import { RecordingSink } from '../notices/recording-sink.test-fixtures.ts';

/**
 * The Event Grid receiver's Entra token check (Microsoft Entra protected webhook delivery). No
 * Entra tenant exists here: the tenant's part is played by a key pair generated for the test and
 * its JWKS served on 127.0.0.1; the tokens carry the claims Entra puts in an access token that
 * Event Grid's application obtained for the webhook's app registration (v1: `appid`, v2: `azp`).
 */

const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const issuer = `https://sts.windows.net/${tenant}/`;
const audience = 'api://secret-binder-event-grid';
const vaultUrl = 'https://myvault.vault.azure.net';
const kid = 'test-key-1';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
}

/** The tenant: a signing key and its JWKS on 127.0.0.1 (which can be taken down). */
async function tenantKeys() {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
  });
  const base = await listen(server);
  const close = (): Promise<void> => new Promise((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); });
  closers.push(close);
  return { privateKey, jwksUrl: `${base}/discovery/v2.0/keys`, close };
}

async function token(key: CryptoKey, claims: JWTPayload = {}, options: { kid?: string; expiresInSeconds?: number } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { iss: issuer, aud: audience, appid: eventGridAppId, iat: now, exp: now + (options.expiresInSeconds ?? 3600), ...claims };
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: options.kid ?? kid, typ: 'JWT' }).sign(key);
}

async function receiver(jwksUrl: string, sharedSecret?: string) {
  let secretFile: string | undefined;
  if (sharedSecret !== undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'sb-grid-entra-'));
    closers.push(() => { rmSync(dir, { recursive: true, force: true }); return Promise.resolve(); });
    secretFile = join(dir, 'secret');
    writeFileSync(secretFile, sharedSecret, { mode: 0o600 });
  }
  const log = new CapturedOutput();
  const source = new AzureEventGridSource({
    host: '127.0.0.1',
    port: 0,
    ...(secretFile === undefined ? {} : { secretFile }),
    entra: { audience, issuer, jwksUrl, senderAppId: eventGridAppId },
    maxEventsPerSecond: 1000,
    clock: realClock,
    logger: createLogger({ level: 'debug', component: 'test', stream: log }),
  });
  const sink = new RecordingSink();
  const stop = new AbortController();
  const running = source.start(sink, stop.signal);
  closers.push(async () => { stop.abort(); await running; });
  while (source.address === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
  const post = (body: unknown, bearer: string | undefined, query = '') =>
    fetch(`http://${source.address ?? ''}/eventgrid${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }) },
      body: JSON.stringify(body),
    });
  return { source, sink, log, post };
}

describe('AzureEventGridSource with an Entra token check', () => {
  it('accepts events and both handshakes with a valid Event Grid token (v1 appid or v2 azp), without a shared secret', async () => {
    const keys = await tenantKeys();
    const r = await receiver(keys.jwksUrl);
    const valid = await token(keys.privateKey);
    expect((await r.post(gridSecretEvent(vaultUrl, 'db-password'), valid)).status).toBe(200);
    const v2 = await token(keys.privateKey, { appid: undefined, azp: eventGridAppId, ver: '2.0' });
    expect((await r.post(gridSecretEvent(vaultUrl, 'api-key'), v2)).status).toBe(200);
    const validation = await r.post(gridValidationEvent('0d1b2c3d'), valid);
    expect(await validation.json()).toEqual({ validationResponse: '0d1b2c3d' });
    const options = await fetch(`http://${r.source.address ?? ''}/eventgrid`, { method: 'OPTIONS', headers: { 'WebHook-Request-Origin': 'eventgrid.azure.net', authorization: `Bearer ${valid}` } });
    expect(options.status).toBe(200);
    expect(r.sink.notices.map((n) => n.key)).toEqual(['db-password', 'api-key']);
    expect(r.sink.rejections).toEqual([]);
  });

  it('refuses, as unauthenticated (401) and without a notice, every token that does not prove Event Grid', async () => {
    const keys = await tenantKeys();
    const r = await receiver(keys.jwksUrl);
    const other = await generateKeyPair('RS256');
    const forged: [string, string | undefined][] = [
      ['no token', undefined],
      ['not a JWT', 'not-a-jwt'],
      ['another audience', await token(keys.privateKey, { aud: 'api://someone-else' })],
      ['another issuer', await token(keys.privateKey, { iss: 'https://sts.windows.net/00000000-0000-0000-0000-000000000000/' })],
      ['expired', await token(keys.privateKey, {}, { expiresInSeconds: -3600 })],
      ['signed by a key not in the JWKS', await token(other.privateKey)],
      ['signed by another key under the JWKS key id', await token(other.privateKey, {}, { kid })],
      ['issued to another application', await token(keys.privateKey, { appid: '11111111-1111-1111-1111-111111111111' })],
      ['unsigned (alg none)', `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: issuer, aud: audience, appid: eventGridAppId, exp: 4102444800 })).toString('base64url')}.`],
    ];
    for (const [what, bearer] of forged) {
      const answer = await r.post(gridSecretEvent(vaultUrl, 'db'), bearer);
      expect({ what, status: answer.status }).toEqual({ what, status: 401 });
    }
    expect(r.sink.rejections).toEqual(forged.map(() => 'unauthenticated'));
    expect(r.sink.notices).toEqual([]);
    expect(await r.log.text()).not.toContain('eyJ');
  });

  it('with a shared secret too, requires both', async () => {
    const keys = await tenantKeys();
    const secret = 'event-grid-shared-secret-0123456789';
    const r = await receiver(keys.jwksUrl, secret);
    const valid = await token(keys.privateKey);
    expect((await r.post(gridSecretEvent(vaultUrl, 'a'), valid, '?code=wrong-secret-wrong-secret')).status).toBe(401);
    expect((await r.post(gridSecretEvent(vaultUrl, 'b'), undefined, `?code=${secret}`)).status).toBe(401);
    expect((await r.post(gridSecretEvent(vaultUrl, 'c'), valid, `?code=${secret}`)).status).toBe(200);
    expect(r.sink.notices.map((n) => n.key)).toEqual(['c']);
  });

  it('answers 503 (Event Grid retries) while the signing keys cannot be fetched, and logs it once', async () => {
    const keys = await tenantKeys();
    await keys.close();
    const r = await receiver(keys.jwksUrl);
    const valid = await token(keys.privateKey);
    expect((await r.post(gridSecretEvent(vaultUrl, 'a'), valid)).status).toBe(503);
    expect((await r.post(gridSecretEvent(vaultUrl, 'b'), valid)).status).toBe(503);
    expect(r.sink.notices).toEqual([]);
    expect((await r.log.text()).match(/cannot fetch the Entra signing keys/g)).toHaveLength(1);
  });
});
