import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';
import type { KeyVaultDoubleConfig, SecretPermission } from './config.ts';
import { keyVaultResource, supportedApiVersions } from './config.ts';
import { DoubleControl } from './double-control.ts';
import type { Operation, VaultOperation } from './double-control.ts';
import { deletedBundle, KeyVaultError, SecretStore, secretBundle, secretItem, versionItem } from './secret-store.ts';
import type { SecretEntry, SecretProperties } from './secret-store.ts';
import { EntraError, TokenAuthority } from './token-authority.ts';
import type { IssuedToken } from './token-authority.ts';

/**
 * A small Azure Key Vault (secrets) protocol double for the test world — not Lowkey Vault, whose
 * server jar is not on Maven Central (ADR 0070). One HTTPS listener on 127.0.0.1 serves:
 *
 * - the Key Vault data plane for secrets (`/secrets…`, `/deletedsecrets…`, api-version 7.0–7.6 and
 *   the date-named versions), with challenge-based bearer authentication as the Azure SDK expects;
 * - a Microsoft Entra–like token endpoint (`/{tenant}/oauth2/v2.0/token`: client secret or
 *   federated client assertion) and its OpenID configuration, for @azure/identity;
 * - an IMDS-like managed-identity endpoint (`/metadata/identity/oauth2/token`);
 * - `/_double/…`: health, request counts, fault injection, token revocation (for tests).
 *
 * Run: `node test/harness/keyvault-double/server.ts --config <file.json>`. Secret values never
 * reach its log; they are kept in the state file (0600) so a restart keeps them.
 */

const { values: flags } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
if (flags.config === undefined) throw new Error('usage: server.ts --config <file.json>');
const config = JSON.parse(readFileSync(flags.config, 'utf8')) as KeyVaultDoubleConfig;

interface PersistedState {
  readonly secrets: SecretEntry[];
  readonly tokens: IssuedToken[];
}

function loadState(): PersistedState {
  if (!existsSync(config.statePath)) return { secrets: [], tokens: [] };
  return JSON.parse(readFileSync(config.statePath, 'utf8')) as PersistedState;
}

const initial = loadState();
const store = new SecretStore(initial.secrets);
const authority = new TokenAuthority(config, initial.tokens);
const control = new DoubleControl();

// --- Persistence: coalesced writes after changes, and a final one on SIGTERM -----------------

let saveTimer: NodeJS.Timeout | undefined;

function saveNow(): void {
  if (saveTimer !== undefined) clearTimeout(saveTimer);
  saveTimer = undefined;
  const temporary = `${config.statePath}.tmp`;
  const state: PersistedState = { secrets: store.snapshot(), tokens: authority.snapshot() };
  writeFileSync(temporary, JSON.stringify(state), { mode: 0o600 });
  renameSync(temporary, config.statePath);
}

function scheduleSave(): void {
  saveTimer ??= setTimeout(saveNow, 25);
}

// --- HTTP helpers --------------------------------------------------------------------------------

const maxBodyBytes = 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new KeyVaultError(413, 'BadParameter', 'The request body is too large.');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...(body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
    'content-length': String(Buffer.byteLength(text)),
    'x-ms-request-id': crypto.randomUUID(),
    'x-ms-keyvault-service-version': 'secret-binder-keyvault-double',
    ...headers,
  });
  res.end(text);
}

/** The origin clients used (if it is one of this server's names), so ids and nextLinks match it. */
function originOf(req: IncomingMessage): string {
  const host = req.headers.host ?? '';
  const aliases = [`127.0.0.1:${config.port}`, `localhost:${config.port}`, `[::1]:${config.port}`];
  return `https://${aliases.includes(host.toLowerCase()) ? host.toLowerCase() : aliases[0] ?? ''}`;
}

function challengeHeader(origin: string): string {
  return `Bearer authorization="${origin}/${config.tenantId}", resource="${keyVaultResource}"`;
}

// --- The vault ------------------------------------------------------------------------------------

interface VaultRoute {
  readonly operation: VaultOperation | 'unsupported';
  readonly name: string;
  readonly version: string;
}

/** Percent-decoding that leaves a malformed escape as it is (it then fails the name check). */
function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Method + path → Key Vault operation. Names arrive percent-encoded. */
function vaultRoute(method: string, segments: readonly string[]): VaultRoute | undefined {
  const [collection, rawName, third, fourth] = segments;
  const name = rawName === undefined ? '' : decode(rawName);
  const extra = fourth === undefined || fourth === '' ? [] : [fourth];
  if (collection === 'secrets') {
    if (rawName === undefined || rawName === '') return { operation: method === 'GET' ? 'listSecrets' : 'unsupported', name: '', version: '' };
    if (third === undefined || third === '') {
      if (method === 'PUT') return { operation: 'setSecret', name, version: '' };
      if (method === 'GET') return { operation: 'getSecret', name, version: '' };
      if (method === 'DELETE') return { operation: 'deleteSecret', name, version: '' };
      if (method === 'PATCH') return { operation: 'updateSecret', name, version: '' };
      return { operation: 'unsupported', name, version: '' };
    }
    if (extra.length > 0) return { operation: 'unsupported', name, version: '' };
    if (third === 'versions' && method === 'GET') return { operation: 'listSecretVersions', name, version: '' };
    const version = decode(third);
    if (method === 'GET') return { operation: 'getSecret', name, version };
    if (method === 'PATCH') return { operation: 'updateSecret', name, version };
    return { operation: 'unsupported', name, version };
  }
  if (collection === 'deletedsecrets') {
    if (rawName === undefined || rawName === '') return { operation: method === 'GET' ? 'listDeletedSecrets' : 'unsupported', name: '', version: '' };
    if (third === 'recover' && method === 'POST' && extra.length === 0) return { operation: 'recoverDeletedSecret', name, version: '' };
    if (third !== undefined && third !== '') return { operation: 'unsupported', name, version: '' };
    if (method === 'GET') return { operation: 'getDeletedSecret', name, version: '' };
    if (method === 'DELETE') return { operation: 'purgeDeletedSecret', name, version: '' };
    return { operation: 'unsupported', name, version: '' };
  }
  return undefined;
}

const permissionOf: Record<VaultOperation, SecretPermission> = {
  setSecret: 'set',
  getSecret: 'get',
  updateSecret: 'set',
  listSecretVersions: 'list',
  listSecrets: 'list',
  deleteSecret: 'delete',
  getDeletedSecret: 'get',
  listDeletedSecrets: 'list',
  purgeDeletedSecret: 'purge',
  recoverDeletedSecret: 'recover',
};

/** Bearer token check: the token must be one this double issued, for the Key Vault resource. */
function authenticate(req: IncomingMessage, origin: string): IssuedToken {
  const header = req.headers.authorization;
  const unauthorized = (message: string, challenge = challengeHeader(origin)): KeyVaultError =>
    new KeyVaultError(401, 'Unauthorized', message, undefined, { 'www-authenticate': challenge });
  if (header === undefined || header === '') {
    control.recordChallenge();
    throw unauthorized('AKV10000: Request is missing a Bearer or PoP token.');
  }
  const presented = /^Bearer (\S+)$/i.exec(header)?.[1] ?? '';
  if (authority.isRevoked(presented)) {
    // Continuous access evaluation: "this token no longer satisfies the claims; get a new one".
    const claims = Buffer.from(JSON.stringify({ access_token: { nbf: { essential: true, value: String(Math.floor(Date.now() / 1000)) } } })).toString('base64');
    throw unauthorized(
      'The bearer token was revoked; get a new one with the claims of this challenge (continuous access evaluation).',
      `Bearer realm="", authorization_uri="${origin}/${config.tenantId}/oauth2/authorize", error="insufficient_claims", claims="${claims}"`,
    );
  }
  const token = presented === '' ? undefined : authority.lookup(presented);
  if (token === undefined) throw unauthorized('The bearer token was not issued by this tenant, has expired or was revoked.');
  if (token.resource !== keyVaultResource) throw unauthorized(`AKV10022: Invalid audience. Expected ${keyVaultResource}, found: ${token.resource}.`);
  return token;
}

function checkApiVersion(query: URLSearchParams): void {
  const version = query.get('api-version');
  if (version === null || version === '') {
    throw new KeyVaultError(400, 'BadParameter', "The request URI must contain the 'api-version' query parameter.");
  }
  if (!(supportedApiVersions as readonly string[]).includes(version)) {
    throw new KeyVaultError(
      400,
      'BadParameter',
      `The specified version (${version}) is not recognized. Consider using the latest supported version (${supportedApiVersions.at(-1) ?? ''}).`,
    );
  }
}

function authorize(token: IssuedToken, operation: VaultOperation, origin: string): void {
  const client = authority.client(token.clientId);
  if (client?.permissions.includes(permissionOf[operation]) !== true) {
    throw new KeyVaultError(
      403,
      'Forbidden',
      `The user, group or application 'appid=${token.clientId};iss=${origin}/${token.tenantId}/v2.0' does not have secrets ${permissionOf[operation]} permission on key vault '${origin}'.`,
      'AccessDenied',
    );
  }
}

function parseJsonBody(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyVaultError(400, 'BadParameter', 'The request body is not valid JSON.');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new KeyVaultError(400, 'BadParameter', 'The request body must be a JSON object.');
  return parsed as Record<string, unknown>;
}

function propertiesOf(body: Record<string, unknown>): SecretProperties {
  const bad = (field: string): never => {
    throw new KeyVaultError(400, 'BadParameter', `Property ${field} has an invalid value.`);
  };
  const contentType = body.contentType;
  if (contentType !== undefined && contentType !== null && typeof contentType !== 'string') bad('contentType');
  const tags = body.tags;
  if (tags !== undefined && tags !== null && (typeof tags !== 'object' || Object.values(tags).some((t) => typeof t !== 'string'))) bad('tags');
  const attributes = (body.attributes ?? {}) as Record<string, unknown>;
  if (typeof attributes !== 'object') bad('attributes');
  const { enabled, nbf, exp } = attributes;
  if (enabled !== undefined && enabled !== null && typeof enabled !== 'boolean') bad('attributes.enabled');
  if (nbf !== undefined && nbf !== null && typeof nbf !== 'number') bad('attributes.nbf');
  if (exp !== undefined && exp !== null && typeof exp !== 'number') bad('attributes.exp');
  return {
    contentType: typeof contentType === 'string' ? contentType : undefined,
    tags: tags === undefined || tags === null ? undefined : (tags as Record<string, string>),
    enabled: typeof enabled === 'boolean' ? enabled : undefined,
    nbf: typeof nbf === 'number' ? nbf : undefined,
    exp: typeof exp === 'number' ? exp : undefined,
  };
}

/** One page of a listing: `maxresults` (1–25, default 25) and an opaque `$skiptoken`. */
function page<T>(items: readonly T[], query: URLSearchParams, nextBase: string): { value: T[]; nextLink: string | null } {
  const maxText = query.get('maxresults');
  const max = maxText === null ? 25 : Number(maxText);
  if (!Number.isInteger(max) || max < 1 || max > 25) throw new KeyVaultError(400, 'BadParameter', 'maxresults must be an integer between 1 and 25.');
  const skip = query.get('$skiptoken');
  let offset = 0;
  if (skip !== null) {
    offset = Number(Buffer.from(skip, 'base64url').toString('utf8'));
    if (!Number.isInteger(offset) || offset < 0) throw new KeyVaultError(400, 'BadParameter', 'The $skiptoken is invalid.');
  }
  const value = items.slice(offset, offset + max);
  const next = offset + max;
  if (next >= items.length) return { value, nextLink: null };
  const link = new URL(nextBase);
  link.searchParams.set('api-version', query.get('api-version') ?? '');
  link.searchParams.set('$skiptoken', Buffer.from(String(next)).toString('base64url'));
  if (maxText !== null) link.searchParams.set('maxresults', String(max));
  return { value, nextLink: link.toString() };
}

async function serveVault(req: IncomingMessage, res: ServerResponse, url: URL, route: VaultRoute, origin: string): Promise<number> {
  const operation: Operation = route.operation;
  const token = authenticate(req, origin);
  checkApiVersion(url.searchParams);
  const fault = control.takeFault('vault', operation, route.name);
  if (fault !== undefined) return sendFault(res, fault.status, fault.retryAfterSeconds, 'vault');
  if (route.operation === 'unsupported') {
    throw new KeyVaultError(501, 'NotImplemented', `The Key Vault double does not implement ${req.method ?? ''} ${url.pathname}.`);
  }
  authorize(token, route.operation, origin);
  const { name, version } = route;
  switch (route.operation) {
    case 'setSecret': {
      const body = parseJsonBody(await readBody(req));
      if (typeof body.value !== 'string') throw new KeyVaultError(400, 'BadParameter', 'Property value is required and must be a string.');
      const set = store.set(name, body.value, propertiesOf(body));
      scheduleSave();
      send(res, 200, secretBundle(origin, set.entry, set.version, true));
      return 200;
    }
    case 'getSecret': {
      SecretStore.checkName(name);
      const got = store.get(name, version);
      control.recordSecretRead(got.entry.name);
      send(res, 200, secretBundle(origin, got.entry, got.version, true));
      return 200;
    }
    case 'updateSecret': {
      const body = parseJsonBody(await readBody(req));
      const updated = store.update(name, version, propertiesOf(body));
      scheduleSave();
      send(res, 200, secretBundle(origin, updated.entry, updated.version, false));
      return 200;
    }
    case 'listSecretVersions': {
      const { entry, versions } = store.versions(name);
      const listed = page(
        versions.map((v) => versionItem(origin, entry, v)),
        url.searchParams,
        `${origin}/secrets/${encodeURIComponent(entry.name)}/versions`,
      );
      send(res, 200, listed);
      return 200;
    }
    case 'listSecrets': {
      send(res, 200, page(store.list().map((e) => secretItem(origin, e)), url.searchParams, `${origin}/secrets`));
      return 200;
    }
    case 'deleteSecret': {
      const entry = store.delete(name);
      scheduleSave();
      send(res, 200, deletedBundle(origin, entry, false));
      return 200;
    }
    case 'getDeletedSecret': {
      send(res, 200, deletedBundle(origin, store.getDeleted(name), false));
      return 200;
    }
    case 'listDeletedSecrets': {
      send(res, 200, page(store.listDeleted().map((e) => deletedBundle(origin, e, true)), url.searchParams, `${origin}/deletedsecrets`));
      return 200;
    }
    case 'purgeDeletedSecret': {
      store.purge(name);
      scheduleSave();
      send(res, 204, undefined);
      return 204;
    }
    case 'recoverDeletedSecret': {
      const entry = store.recover(name);
      scheduleSave();
      const current = entry.versions.at(-1);
      send(res, 200, current === undefined ? { id: `${origin}/secrets/${entry.name}` } : secretBundle(origin, entry, current, false));
      return 200;
    }
  }
}

function sendFault(res: ServerResponse, status: 429 | 500 | 503, retryAfterSeconds: number | undefined, target: 'vault' | 'token'): number {
  const retryAfter = retryAfterSeconds ?? (status === 500 ? undefined : 1);
  const headers: Record<string, string> = retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) };
  if (target === 'token') {
    const error = status === 429 ? 'temporarily_unavailable' : 'server_error';
    const entra = new EntraError(status, error, status === 429 ? 50196 : 90033, 'Injected fault (test double): the service is temporarily unavailable.');
    send(res, status, entra.body(), headers);
    return status;
  }
  const code = status === 429 ? 'Throttled' : status === 503 ? 'ServiceUnavailable' : 'InternalServerError';
  const message =
    status === 429
      ? 'Request was not processed because too many requests were received. Reason: injected fault (test double).'
      : 'Injected fault (test double): the service is unavailable.';
  send(res, status, new KeyVaultError(status, code, message).body(), headers);
  return status;
}

// --- Entra-like endpoints ---------------------------------------------------------------------------

async function serveToken(req: IncomingMessage, res: ServerResponse, tenant: string): Promise<number> {
  const fault = control.takeFault('token', 'token');
  if (fault !== undefined) return sendFault(res, fault.status, fault.retryAfterSeconds, 'token');
  const form = new URLSearchParams(await readBody(req));
  const issued = authority.tokenFromClientCredentials(tenant, form);
  control.recordToken(issued.clientId);
  scheduleSave();
  const seconds = Math.round((issued.expiresAt - Date.now()) / 1000);
  send(res, 200, { token_type: 'Bearer', expires_in: seconds, ext_expires_in: seconds, access_token: issued.token });
  return 200;
}

function serveManagedIdentity(req: IncomingMessage, res: ServerResponse, url: URL): number {
  const fault = control.takeFault('token', 'managedIdentityToken');
  if (fault !== undefined) return sendFault(res, fault.status, fault.retryAfterSeconds, 'token');
  if (req.headers.metadata !== 'true') {
    send(res, 400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
    return 400;
  }
  const issued = authority.tokenFromManagedIdentity(url.searchParams);
  control.recordToken(issued.clientId);
  scheduleSave();
  const seconds = Math.round((issued.expiresAt - Date.now()) / 1000);
  send(res, 200, {
    access_token: issued.token,
    client_id: issued.clientId,
    expires_in: String(seconds),
    expires_on: String(Math.floor(issued.expiresAt / 1000)),
    ext_expires_in: String(seconds),
    not_before: String(Math.floor(Date.now() / 1000)),
    resource: issued.resource,
    token_type: 'Bearer',
  });
  return 200;
}

// --- Control API ----------------------------------------------------------------------------------------

async function serveControl(req: IncomingMessage, res: ServerResponse, path: string): Promise<number> {
  const method = req.method ?? 'GET';
  if (path === '/_double/health' && method === 'GET') {
    send(res, 200, { status: 'ok' });
  } else if (path === '/_double/stats' && method === 'GET') {
    send(res, 200, control.stats());
  } else if (path === '/_double/stats/reset' && method === 'POST') {
    control.resetStats();
    send(res, 204, undefined);
    return 204;
  } else if (path === '/_double/faults' && method === 'GET') {
    send(res, 200, { faults: control.activeFaults() });
  } else if (path === '/_double/faults' && method === 'POST') {
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      body = undefined;
    }
    const error = control.addFault(body);
    if (error !== undefined) {
      send(res, 400, { error });
      return 400;
    }
    send(res, 201, { faults: control.activeFaults() });
    return 201;
  } else if (path === '/_double/faults' && method === 'DELETE') {
    control.clearFaults();
    send(res, 204, undefined);
    return 204;
  } else if (path === '/_double/tokens/revoke' && method === 'POST') {
    const revoked = authority.revokeAll();
    scheduleSave();
    send(res, 200, { revoked });
  } else {
    send(res, 404, { error: `no control endpoint ${method} ${path}` });
    return 404;
  }
  return 200;
}

// --- Dispatch --------------------------------------------------------------------------------------------

async function handle(req: IncomingMessage, res: ServerResponse): Promise<{ status: number; operation: Operation | undefined }> {
  const url = new URL(req.url ?? '/', 'https://double.invalid');
  const segments = url.pathname.split('/').slice(1);
  const method = req.method ?? 'GET';
  const origin = originOf(req);

  if (url.pathname.startsWith('/_double/')) return { status: await serveControl(req, res, url.pathname), operation: undefined };

  const route = vaultRoute(method, segments);
  if (route !== undefined) {
    control.recordRequest(route.operation);
    try {
      return { status: await serveVault(req, res, url, route, origin), operation: route.operation };
    } catch (error) {
      if (!(error instanceof KeyVaultError)) throw error;
      send(res, error.status, error.body(), { ...error.headers });
      return { status: error.status, operation: route.operation };
    }
  }

  // Entra: /{tenant}/oauth2/v2.0/token, /{tenant}/v2.0/.well-known/openid-configuration, keys.
  const [tenant = '', ...rest] = segments.map(decode);
  const tail = rest.join('/');
  let operation: Operation | undefined;
  try {
    if (method === 'POST' && tail === 'oauth2/v2.0/token') {
      operation = 'token';
      control.recordRequest(operation);
      return { status: await serveToken(req, res, tenant), operation };
    }
    if (method === 'GET' && (tail === 'v2.0/.well-known/openid-configuration' || tail === '.well-known/openid-configuration')) {
      operation = 'openidConfiguration';
      control.recordRequest(operation);
      send(res, 200, authority.openIdConfiguration(origin, tenant));
      return { status: 200, operation };
    }
    if (method === 'GET' && tail === 'discovery/v2.0/keys') {
      // Tokens are opaque: there is nothing to verify them with.
      send(res, 200, { keys: [] });
      return { status: 200, operation };
    }
    if (method === 'GET' && (url.pathname === '/metadata/identity/oauth2/token' || url.pathname === '/metadata/identity/oauth2/token/')) {
      operation = 'managedIdentityToken';
      control.recordRequest(operation);
      return { status: serveManagedIdentity(req, res, url), operation };
    }
  } catch (error) {
    if (!(error instanceof EntraError)) throw error;
    send(res, error.status, error.body());
    return { status: error.status, operation };
  }
  control.recordRequest('unsupported');
  send(res, 404, new KeyVaultError(404, 'NotFound', `The Key Vault double has no route ${method} ${url.pathname}.`).body());
  return { status: 404, operation: 'unsupported' };
}

const server = createServer({ cert: readFileSync(config.certPath), key: readFileSync(config.keyPath) }, (req, res) => {
  const started = Date.now();
  handle(req, res).then(
    ({ status, operation }) => {
      if (operation !== undefined) control.recordAnswer(operation, status);
      // Method, path and status only: never headers (tokens) or bodies (values, secrets).
      console.log(`${new Date().toISOString()} ${req.method ?? ''} ${new URL(req.url ?? '/', 'https://x').pathname} ${status} ${Date.now() - started}ms`);
    },
    (error: unknown) => {
      console.error(`${new Date().toISOString()} ${req.method ?? ''} ${req.url ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`);
      if (!res.headersSent) send(res, 500, new KeyVaultError(500, 'InternalServerError', 'The Key Vault double failed.').body());
      else res.destroy();
    },
  );
});

server.listen(config.port, '127.0.0.1', () => {
  console.log(
    `keyvault-double listening on https://127.0.0.1:${config.port} (tenant ${config.tenantId}, ${store.snapshot().length} secrets, ` +
      `${authority.snapshot().length} tokens restored)`,
  );
});

function shutdown(signal: string): void {
  console.log(`keyvault-double: ${signal}, saving state and exiting`);
  saveNow();
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => {
  shutdown('SIGTERM');
});
process.on('SIGINT', () => {
  shutdown('SIGINT');
});
