import { describe, expect, it } from '@jest/globals';
import { createAuditLog } from '../observability/audit.ts';
import { CapturedOutput } from '../observability/captured-output.ts';
import { SecretValue } from '../observability/secret-value.ts';
import { TokenRefusedError, UnavailableError, type ServiceAccountTokenRequest } from './backend.port.ts';
import { annotationEntry, backendsAnnotation, isLoopbackHost, judgeRecipient, optedIn, TokenMinter, type TokenMinterPorts } from './token-minter.ts';

/**
 * The minter's judgement with in-memory fakes of its own port (the API server's answers are the
 * integration suite's, test/integration/controller/token-minting.test.ts).
 */

const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2ln';
const backend = { kind: 'SecretBackend', namespace: 'team-a', name: 'vault' } as const;
const request: ServiceAccountTokenRequest = {
  namespace: 'team-a',
  serviceAccountName: 'reader',
  audiences: ['vault'],
  expirationSeconds: 3600,
  recipient: 'https://vault.example.com:8200',
};

function world(options: { annotations?: Record<string, string>; apiAudiences?: string[]; own?: string | Error } = {}) {
  const minted: Omit<ServiceAccountTokenRequest, 'recipient'>[] = [];
  const out = new CapturedOutput();
  const ports: TokenMinterPorts = {
    readServiceAccountAnnotations: () => Promise.resolve(options.annotations ?? { [backendsAnnotation]: 'vault' }),
    mint: (r) => {
      minted.push(r);
      return Promise.resolve({ token: SecretValue.fromString(token), expiresAt: new Date('2030-01-01T00:00:00Z') });
    },
    reviewAsApiCredential: () => {
      const audience = minted.at(-1)?.audiences[0] ?? '';
      const api = options.apiAudiences ?? ['https://127.0.0.1:6443'];
      return Promise.resolve({ authenticated: api.includes(audience), audiences: api.includes(audience) ? [audience] : [] });
    },
    ownUsername: () => (options.own instanceof Error ? Promise.reject(options.own) : Promise.resolve(options.own ?? 'system:serviceaccount:sb-system:sb-controller')),
  };
  const minter = new TokenMinter({
    ports,
    audit: createAuditLog({ destination: { kind: 'stream', stream: out } }),
    refusedAudiences: ['secretbinder.dev'],
    reservedAccounts: [{ namespace: 'sb-system', name: 'sb-node' }],
    allowLoopbackHttp: false,
    loopbackHttpFlag: '--allow-http-loopback-token-endpoints=true',
  });
  return { minter, minted, audit: () => out.lines(), text: () => out.text() };
}

async function refusal(promise: Promise<unknown>): Promise<TokenRefusedError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof TokenRefusedError)) throw new Error(`expected a TokenRefusedError, got ${String(error)}`);
  return error;
}

describe('TokenMinter', () => {
  it('mints for an opted-in account, at most 600 s, and audits it without the token', async () => {
    const w = world();
    const answer = await w.minter.mint(backend, request);
    expect(answer.token.revealText()).toBe(token);
    expect(w.minted).toEqual([{ namespace: 'team-a', serviceAccountName: 'reader', audiences: ['vault'], expirationSeconds: 600 }]);
    expect(await w.audit()).toEqual([
      expect.objectContaining({
        event: 'minted',
        backend,
        serviceAccount: { namespace: 'team-a', name: 'reader' },
        audiences: ['vault'],
        recipient: 'https://vault.example.com:8200',
        expirationSeconds: 600,
        expiresAt: '2030-01-01T00:00:00.000Z',
      }),
    ]);
    expect(await w.text()).not.toContain('eyJ');
  });

  it('refuses an empty audience and the broker audience before minting', async () => {
    for (const audiences of [[], [''], ['secretbinder.dev']]) {
      const w = world();
      expect((await refusal(w.minter.mint(backend, { ...request, audiences }))).refusal).toBe('AudienceNotAllowed');
      expect(w.minted).toEqual([]);
      expect(await w.audit()).toEqual([expect.objectContaining({ event: 'mintRefused', reason: 'AudienceNotAllowed' })]);
    }
  });

  it("drops a token the API server accepts as its own, and refuses that audience from then on without minting", async () => {
    const w = world();
    const api = { ...request, audiences: ['https://127.0.0.1:6443'] };
    expect((await refusal(w.minter.mint(backend, api))).refusal).toBe('AudienceNotAllowed');
    expect(w.minted).toHaveLength(1);
    expect((await refusal(w.minter.mint(backend, api))).message).toContain("one of the API server's own audiences");
    expect(w.minted).toHaveLength(1);
    expect((await w.audit()).map((l) => l['event'])).toEqual(['mintRefused', 'mintRefused']);
    expect(await w.text()).not.toContain('eyJ');
  });

  it("refuses the controller's own account and the node plugin's", async () => {
    for (const [namespace, serviceAccountName] of [['sb-system', 'sb-controller'], ['sb-system', 'sb-node']] as const) {
      const w = world({ annotations: { [backendsAnnotation]: 'ClusterSecretBackend/vault' } });
      const cluster = { kind: 'ClusterSecretBackend', name: 'vault' } as const;
      expect((await refusal(w.minter.mint(cluster, { ...request, namespace, serviceAccountName }))).refusal).toBe('ServiceAccountReserved');
      expect(w.minted).toEqual([]);
    }
  });

  it('fails closed, retryably, when it cannot learn its own identity', async () => {
    const w = world({ own: new Error('connection refused') });
    const error = await w.minter.mint(backend, request).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect(w.minted).toEqual([]);
  });

  it('refuses an account without the annotation, or naming only other backends', async () => {
    for (const annotations of [{}, { [backendsAnnotation]: 'other, ClusterSecretBackend/vault' }] as Record<string, string>[]) {
      const w = world({ annotations });
      const error = await refusal(w.minter.mint(backend, request));
      expect(error.refusal).toBe('ServiceAccountNotOptedIn');
      expect(error.message).toContain(`add "vault" to its annotation ${backendsAnnotation}`);
      expect(w.minted).toEqual([]);
    }
  });

  it('refuses a recipient that is not https', async () => {
    for (const recipient of ['http://vault.example.com:8200', 'http://127.0.0.1:8200', 'ftp://vault.example.com']) {
      const w = world();
      expect((await refusal(w.minter.mint(backend, { ...request, recipient }))).refusal).toBe('InsecureTokenEndpoint');
      expect(w.minted).toEqual([]);
    }
  });
});

describe('opt-in annotation', () => {
  it('names a SecretBackend by name and a ClusterSecretBackend by kind/name', () => {
    expect(annotationEntry({ kind: 'SecretBackend', namespace: 'a', name: 'vault' })).toBe('vault');
    expect(annotationEntry({ kind: 'ClusterSecretBackend', name: 'vault' })).toBe('ClusterSecretBackend/vault');
    expect(optedIn(' vault , ClusterSecretBackend/aws', 'vault')).toBe(true);
    expect(optedIn('SecretBackend/vault', 'vault')).toBe(true);
    expect(optedIn('ClusterSecretBackend/aws', 'ClusterSecretBackend/aws')).toBe(true);
    expect(optedIn('ClusterSecretBackend/vault', 'vault')).toBe(false);
    expect(optedIn('vault', 'ClusterSecretBackend/vault')).toBe(false);
    expect(optedIn('vaults', 'vault')).toBe(false);
    expect(optedIn(undefined, 'vault')).toBe(false);
  });
});

describe('recipients', () => {
  const flag = '--allow-http-loopback-token-endpoints=true';
  it('allow https always, plain http only to loopback and only with the flag', () => {
    expect(judgeRecipient('https://vault.example.com', false, flag)).toBeUndefined();
    expect(judgeRecipient('http://127.0.0.1:8200', true, flag)).toBeUndefined();
    expect(judgeRecipient('http://localhost:8200', true, flag)).toBeUndefined();
    expect(judgeRecipient('http://[::1]:8200', true, flag)).toBeUndefined();
    expect(judgeRecipient('http://127.0.0.1:8200', false, flag)).toContain(flag);
    expect(judgeRecipient('http://vault.example.com', true, flag)).toContain('must be https');
    expect(judgeRecipient('http://127.0.0.1.example.com', true, flag)).toContain('must be https');
    expect(judgeRecipient('not a url', true, flag)).toContain('not a URL');
  });

  it('know loopback addresses', () => {
    for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '[::1]', '::1']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['10.0.0.1', 'localhost.example.com', '[::2]', '128.0.0.1']) expect(isLoopbackHost(host)).toBe(false);
  });
});
