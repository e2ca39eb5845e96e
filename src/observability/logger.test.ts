import { describe, expect, it } from '@jest/globals';
import { createLogger, type LogLevel } from './logger.ts';
import { CapturedOutput } from './captured-output.ts';
import { UnavailableError } from '../backends/backend.port.ts';

const jwt =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmRlZmF1bHQifQ.c2lnbmF0dXJlLWJ5dGVz';

function setup(level: LogLevel = 'debug') {
  const out = new CapturedOutput();
  const log = createLogger({ level, component: 'unit', stream: out, now: () => new Date('2025-01-02T03:04:05Z') });
  return { out, log };
}

describe('createLogger', () => {
  it('writes one JSON line per call with component, level, time and fields', async () => {
    const { out, log } = setup();
    log.info('reconciled', { binding: 'app/db', durationSeconds: 0.12 });
    expect(await out.lines()).toEqual([
      {
        level: 'info',
        message: 'reconciled',
        component: 'unit',
        time: '2025-01-02T03:04:05.000Z',
        binding: 'app/db',
        durationSeconds: 0.12,
      },
    ]);
  });

  it('filters by level', async () => {
    const { out, log } = setup('warn');
    log.debug('noise');
    log.info('noise');
    log.warn('kept');
    log.error('kept too');
    expect((await out.lines()).map((l) => l['message'])).toEqual(['kept', 'kept too']);
    expect(log.isLevelEnabled('debug')).toBe(false);
    expect(log.isLevelEnabled('error')).toBe(true);
  });

  it('keeps fields when the message contains printf tokens', async () => {
    const { out, log } = setup();
    log.info('100% done %s', { key: 'app/db' });
    expect(await out.lines()).toMatchObject([{ message: '100% done %s', key: 'app/db' }]);
  });

  it('child loggers add their fields to every line', async () => {
    const { out, log } = setup();
    const child = log.child({ binding: 'ns/b' }).child({ pod: 'ns/p' });
    child.info('delivered');
    expect(await out.lines()).toMatchObject([{ binding: 'ns/b', pod: 'ns/p', component: 'unit' }]);
  });

  it('redacts fields whose names look like credentials, case-insensitively', async () => {
    const { out, log } = setup();
    const fields = {
      token: 't0ken-value-1',
      Password: 'pw-value-2',
      SECRET: 'secret-value-3',
      authorization: 'auth-value-4',
      secretAccessKey: 'sak-value-5',
      clientSecret: 'cs-value-6',
      jwtAssertion: 'jwt-value-7',
      'X-Vault-Token': 'vt-value-8',
      api_key: 'api-value-9',
      sessionToken: 'st-value-10',
      credentials: { user: 'u', pass: 'cred-value-11' },
      headers: { Authorization: 'auth-value-12', accept: 'application/json' },
    };
    log.info('login', fields);
    const text = await out.text();
    for (const v of ['t0ken-value-1', 'pw-value-2', 'secret-value-3', 'auth-value-4', 'sak-value-5', 'cs-value-6', 'jwt-value-7', 'vt-value-8', 'api-value-9', 'st-value-10', 'cred-value-11', 'auth-value-12']) {
      expect(text).not.toContain(v);
    }
    const [line] = await out.lines();
    expect(line).toMatchObject({ token: '[REDACTED]', credentials: '[REDACTED]', headers: { Authorization: '[REDACTED]', accept: 'application/json' } });
  });

  it('keeps ordinary fields that merely mention secrets', async () => {
    const { out, log } = setup();
    log.info('bound', { secretName: 'db', key: 'app/db', tokenExpirySeconds: 600, hasToken: true });
    expect(await out.lines()).toMatchObject([{ secretName: 'db', key: 'app/db', tokenExpirySeconds: 600, hasToken: true }]);
  });

  it('redacts bearer tokens and JWTs inside strings, in the message and in fields', async () => {
    const { out, log } = setup();
    log.warn(`request failed with Authorization: Bearer abc.def-ghi and ${jwt}`, { detail: `got ${jwt}`, raw: 'Bearer sk_live_123456' });
    const text = await out.text();
    expect(text).not.toContain(jwt);
    expect(text).not.toContain('abc.def-ghi');
    expect(text).not.toContain('sk_live_123456');
    const [line] = await out.lines();
    expect(line?.['detail']).toBe('got [REDACTED]');
    expect(line?.['raw']).toBe('Bearer [REDACTED]');
  });

  it('serializes errors through the sanitizer: no config, headers or bodies', async () => {
    const { out, log } = setup();
    const sdkError = Object.assign(new Error('Request failed with status code 403'), {
      name: 'AxiosError',
      code: 'ERR_BAD_REQUEST',
      config: { headers: { 'X-Vault-Token': 'hvs.CAESIsecretsecretsecretsecret' }, data: '{"jwt":"x"}' },
      request: { path: '/v1/auth/kubernetes/login', body: 'role=app&jwt=abc' },
      response: { status: 403, data: { errors: ['permission denied'], password: 'leaked-body-pw' } },
    });
    log.error('vault login failed', { error: sdkError, cause: new UnavailableError('vault down') });
    const text = await out.text();
    expect(text).not.toContain('hvs.CAESI');
    expect(text).not.toContain('leaked-body-pw');
    expect(text).not.toContain('role=app');
    const [line] = await out.lines();
    expect(line?.['error']).toMatchObject({ name: 'AxiosError', message: 'Request failed with status code 403', code: 'ERR_BAD_REQUEST' });
    expect(Object.keys(line?.['error'] as object).sort()).toEqual(['code', 'message', 'name', 'stack']);
    expect(line?.['cause']).toMatchObject({ name: 'UnavailableError', message: 'vault down', kind: 'Unavailable' });
  });

  it('describes raw bytes by size only', async () => {
    const { out, log } = setup();
    log.debug('bytes', { payload: new TextEncoder().encode('raw-secret-bytes') });
    expect(await out.lines()).toMatchObject([{ payload: '[16 bytes]' }]);
  });

  it('survives cycles', async () => {
    const { out, log } = setup();
    const a: Record<string, unknown> = { name: 'a' };
    a['self'] = a;
    log.info('cycle', { a });
    expect(await out.lines()).toMatchObject([{ a: { name: 'a', self: '[Circular]' } }]);
  });
});
