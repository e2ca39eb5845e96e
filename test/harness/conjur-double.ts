import { createPublicKey, randomBytes, timingSafeEqual, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { generateSelfManagedTls } from '../../src/tls/self-managed-tls.ts';
import { registerNeedlesIn } from './leak-capture.ts';

/**
 * A CyberArk Conjur API double (ADR 0243), written from Conjur's published REST API documentation
 * (docs.conjur.org, "REST APIs"), because no Conjur server can be obtained on this machine (it
 * needs RubyGems and its container image). Like the Key Vault double (ADR 0070) it implements
 * only what a reader of secrets uses, the way the documentation describes it:
 *
 * - `POST /authn/{account}/{login}/authenticate` — body: the API key; answers an access token,
 *   base64 when asked with `Accept-Encoding: base64`, else its JSON; 401 for a wrong key;
 * - `POST /authn-jwt/{service-id}/{account}[/{host-id}]/authenticate` — form body `jwt=…`; the JWT
 *   must be signed by a key of the configured JWKS (RS256/ES256), unexpired, with the configured
 *   issuer and audience; its `sub` names the host (token-app-property `sub`), and a host-id in the
 *   URL must match it; 401 otherwise;
 * - access tokens last 8 minutes, presented as `Authorization: Token token="<base64>"`;
 * - `GET /whoami`;
 * - `GET /resources/{account}/variable/{id}` — the resource JSON, with its `secrets` list
 *   (`{version, expires_at}`, the last 20 values); needs `read`;
 * - `GET /secrets/{account}/variable/{id}[?version=N]` — the value as application/octet-stream;
 *   404 when the variable does not exist or has no (such) value; needs `execute`;
 * - `GET /secrets?variable_ids=<account>:variable:<id>,…` — a JSON object of full id → value; 404
 *   when any variable is missing or has no value; with `Accept-Encoding: base64` every value is
 *   base64 and the answer says `Content-Encoding: base64`.
 *
 * Ids in paths are URL-encoded (`/` as %2F). Roles are hosts with an API key and a privilege
 * level (`read` and `execute` on every variable, or nothing). It binds 127.0.0.1 only and serves
 * TLS with a CA of its own; it stops with the test that started it, or after `maxLifetimeMs`.
 * Values live in this process's memory; writes go through {@link ConjurDouble.write} (the tests'
 * administrator), never through the API.
 */

export interface ConjurDoubleOptions {
  readonly account: string;
  /** Hosts by login (`host/…`): their API key and whether they may read variables. */
  readonly hosts: Readonly<Record<string, { readonly apiKey: string; readonly privileged: boolean }>>;
  /** authn-jwt webservices by service id. */
  readonly jwtAuthenticators?: Readonly<
    Record<string, { readonly issuer: string; readonly audience: string; readonly jwks: { readonly keys: readonly JsonWebKey[] }; readonly hostOfSubject: Readonly<Record<string, string>> }>
  >;
  readonly maxLifetimeMs?: number;
}

/** What the double served, per request: kinds and ids, never values or credentials. */
export interface ConjurRequestRecord {
  readonly at: number;
  readonly kind: 'authn' | 'authn-jwt' | 'whoami' | 'resource' | 'secret' | 'batch' | 'other';
  readonly status: number;
  /** Variable ids the request named. */
  readonly ids: readonly string[];
}

export interface ConjurDouble {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  readonly caPem: string;
  /** Adds a value as the variable's newest version (creating the variable). */
  write(id: string, value: string | Uint8Array): void;
  /** Creates a variable without any value. */
  declare(id: string): void;
  requests(): readonly ConjurRequestRecord[];
  stop(): Promise<void>;
}

const tokenLifetimeMs = 8 * 60_000;
const keptVersions = 20;

export async function startConjurDouble(options: ConjurDoubleOptions): Promise<ConjurDouble> {
  const tls = await generateSelfManagedTls({ caName: 'secret-binder conjur-double CA', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], caValidityDays: 2 });
  const variables = new Map<string, { version: number; value: Buffer }[]>();
  const tokens = new Map<string, { role: string; until: number }>();
  const log: ConjurRequestRecord[] = [];
  const { account } = options;

  const issueToken = (role: string): Buffer => {
    const token = JSON.stringify({ protected: randomBytes(16).toString('base64url'), payload: randomBytes(24).toString('base64url'), signature: randomBytes(32).toString('base64url') });
    tokens.set(Buffer.from(token).toString('base64'), { role, until: Date.now() + tokenLifetimeMs });
    return Buffer.from(token);
  };

  const roleOf = (req: IncomingMessage): string | undefined => {
    const match = /^Token token="([^"]+)"$/.exec(req.headers.authorization ?? '');
    const entry = match?.[1] === undefined ? undefined : tokens.get(match[1]);
    return entry !== undefined && Date.now() < entry.until ? entry.role : undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<Omit<ConjurRequestRecord, 'at'>> => {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'https://conjur.invalid');
    const segments = url.pathname.split('/').slice(1).map((s) => decodeURIComponent(s));
    const send = (status: number, payload: Buffer | string | object = '', headers: Record<string, string> = {}): number => {
      const raw = Buffer.isBuffer(payload) ? payload : typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(JSON.stringify(payload));
      res.writeHead(status, { 'content-length': String(raw.byteLength), ...headers });
      res.end(raw);
      return status;
    };
    const tokenAnswer = (role: string): number => {
      const token = issueToken(role);
      return base64Wanted(req) ? send(200, token.toString('base64'), { 'content-type': 'text/plain', 'content-encoding': 'base64' }) : send(200, token, { 'content-type': 'application/json' });
    };

    // POST /authn/{account}/{login}/authenticate
    if (req.method === 'POST' && segments.length === 4 && segments[0] === 'authn' && segments[3] === 'authenticate') {
      const host = options.hosts[segments[2] ?? ''];
      const ok = segments[1] === account && host !== undefined && secretsEqual(body.toString('utf8').trim(), host.apiKey);
      return { kind: 'authn', ids: [], status: ok ? tokenAnswer(segments[2] ?? '') : send(401) };
    }
    // POST /authn-jwt/{service-id}/{account}[/{host-id}]/authenticate
    if (req.method === 'POST' && (segments.length === 4 || segments.length === 5) && segments[0] === 'authn-jwt' && segments.at(-1) === 'authenticate') {
      const service = options.jwtAuthenticators?.[segments[1] ?? ''];
      const jwt = new URLSearchParams(body.toString('utf8')).get('jwt') ?? '';
      const host = service === undefined || segments[2] !== account ? undefined : jwtHost(jwt, service);
      const urlHost = segments.length === 5 ? segments[3] : undefined;
      const ok = host !== undefined && (urlHost === undefined || urlHost === host);
      return { kind: 'authn-jwt', ids: [], status: ok ? tokenAnswer(host) : send(401) };
    }
    const role = roleOf(req);
    if (req.method === 'GET' && url.pathname === '/whoami') {
      return { kind: 'whoami', ids: [], status: role === undefined ? send(401) : send(200, { account, username: role }) };
    }
    const privileged = role !== undefined && options.hosts[role]?.privileged !== false;
    // GET /resources/{account}/variable/{id}
    if (req.method === 'GET' && segments.length === 4 && segments[0] === 'resources' && segments[2] === 'variable') {
      const id = segments[3] ?? '';
      const values = variables.get(id);
      const status =
        role === undefined ? send(401)
        : !privileged ? send(403)
        : segments[1] !== account || values === undefined ? send(404)
        : send(200, {
            id: `${account}:variable:${id}`,
            owner: `${account}:policy:root`,
            policy: `${account}:policy:root`,
            permissions: [],
            annotations: [],
            secrets: values.map((v) => ({ version: v.version, expires_at: null })),
          }, { 'content-type': 'application/json' });
      return { kind: 'resource', ids: [id], status };
    }
    // GET /secrets/{account}/variable/{id}[?version=N]
    if (req.method === 'GET' && segments.length === 4 && segments[0] === 'secrets' && segments[2] === 'variable') {
      const id = segments[3] ?? '';
      const wanted = url.searchParams.get('version');
      const values = segments[1] === account ? variables.get(id) : undefined;
      const value = wanted === null ? values?.at(-1) : values?.find((v) => String(v.version) === wanted);
      const status =
        role === undefined ? send(401)
        : !privileged ? send(403)
        : wanted !== null && !/^[1-9][0-9]*$/.test(wanted) ? send(422)
        : value === undefined ? send(404)
        : send(200, value.value, { 'content-type': 'application/octet-stream' });
      return { kind: 'secret', ids: [id], status };
    }
    // GET /secrets?variable_ids=…
    if (req.method === 'GET' && url.pathname === '/secrets') {
      // Split the raw query on commas before decoding: an id's own commas arrive as %2C.
      const raw = /(?:^|&)variable_ids=([^&]*)/.exec(url.search.slice(1))?.[1];
      const fullIds = raw === undefined || raw === '' ? [] : raw.split(',').map((s) => decodeURIComponent(s));
      const prefix = `${account}:variable:`;
      const ids = fullIds.map((f) => (f.startsWith(prefix) ? f.slice(prefix.length) : ''));
      if (role === undefined) return { kind: 'batch', ids, status: send(401) };
      if (fullIds.length === 0 || ids.includes('')) return { kind: 'batch', ids, status: send(422) };
      if (!privileged) return { kind: 'batch', ids, status: send(403) };
      const found = fullIds.map((full, i) => [full, variables.get(ids[i] ?? '')?.at(-1)?.value] as const);
      if (found.some(([, v]) => v === undefined)) return { kind: 'batch', ids, status: send(404) };
      const base64 = base64Wanted(req);
      const answer = Object.fromEntries(found.map(([full, v]) => [full, base64 ? (v as Buffer).toString('base64') : (v as Buffer).toString('utf8')]));
      return { kind: 'batch', ids, status: send(200, answer, { 'content-type': 'application/json', ...(base64 ? { 'content-encoding': 'base64' } : {}) }) };
    }
    return { kind: 'other', ids: [], status: send(404) };
  };

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const at = Date.now();
    handle(req, res).then(
      (record) => log.push({ at, ...record }),
      () => {
        if (!res.headersSent) res.writeHead(500).end();
        log.push({ at, kind: 'other', ids: [], status: 500 });
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const lifetime = setTimeout(() => server.close(), options.maxLifetimeMs ?? 15 * 60_000);
  lifetime.unref();
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${String(port)}`,
    caPem: tls.caPem,
    write(id, value) {
      // Every text value written is a needle of the leak scan (ADR 0177).
      if (typeof value === 'string') registerNeedlesIn(value, `conjur:${id}`);
      const values = variables.get(id) ?? [];
      const version = (values.at(-1)?.version ?? 0) + 1;
      values.push({ version, value: Buffer.from(value) });
      variables.set(id, values.slice(-keptVersions));
    },
    declare(id) {
      if (!variables.has(id)) variables.set(id, []);
    },
    requests: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        clearTimeout(lifetime);
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** Whether the client asked for base64 (`Accept-Encoding: base64`). */
function base64Wanted(req: IncomingMessage): boolean {
  return (req.headers['accept-encoding'] ?? '').split(',').some((e: string) => e.trim().toLowerCase() === 'base64');
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > 1024 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function secretsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.byteLength === y.byteLength && timingSafeEqual(x, y);
}

/**
 * The host a JWT authenticates as, or undefined: signature by a key of the JWKS (by `kid`, or any
 * when the token names none), `exp` in the future, `nbf`/`iat` not in the future, issuer and
 * audience as configured, `sub` mapped to a host (token-app-property `sub`).
 */
function jwtHost(
  jwt: string,
  service: { readonly issuer: string; readonly audience: string; readonly jwks: { readonly keys: readonly JsonWebKey[] }; readonly hostOfSubject: Readonly<Record<string, string>> },
): string | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return undefined;
  const [h = '', p = '', s = ''] = parts;
  let header: { alg?: unknown; kid?: unknown };
  let payload: { iss?: unknown; aud?: unknown; exp?: unknown; nbf?: unknown; sub?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as typeof header;
    payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as typeof payload;
  } catch {
    return undefined;
  }
  const keys = service.jwks.keys.filter((k) => header.kid === undefined || (k as { kid?: unknown }).kid === header.kid);
  const input = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const signed = keys.some((jwk) => {
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      return false;
    }
    if (header.alg === 'RS256') return verify('sha256', input, key, signature);
    if (header.alg === 'ES256') return verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, signature);
    return false;
  });
  const now = Date.now() / 1000;
  const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!signed || typeof payload.exp !== 'number' || payload.exp <= now) return undefined;
  if (typeof payload.nbf === 'number' && payload.nbf > now + 5) return undefined;
  if (payload.iss !== service.issuer || !audiences.includes(service.audience)) return undefined;
  return typeof payload.sub === 'string' ? service.hostOfSubject[payload.sub] : undefined;
}
