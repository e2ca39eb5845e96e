import { join } from 'node:path';
import pg from 'pg';
import { registerNeedle } from '../../harness/leak-capture.ts';
import { openBaoRequest } from '../../harness/openbao.ts';
import { configureOpenBaoEngines, configureOpenBaoPki } from '../../harness/postgres.ts';
import { currentWorld, type OpenBaoEndpoint, type PostgresEndpoint } from '../../harness/world-state.ts';
import { readText } from '../rotation/delivery-world.ts';

/** The dynamic-secrets suites' helpers: database roles in OpenBao, PostgreSQL logins and role lists. */

/**
 * The world's OpenBao and PostgreSQL, with OpenBao's database and PKI engines in place. They are
 * mounted again when missing: the world's OpenBao is a dev server whose mounts live in memory, and a
 * suite that restarts it (the chaos drills) leaves only the KV mounts the harness restores.
 */
export async function worldPostgres(): Promise<{ bao: OpenBaoEndpoint; pg: PostgresEndpoint }> {
  const world = currentWorld();
  if (world.openbao === undefined || world.postgres === undefined) throw new Error('the world has no OpenBao or no PostgreSQL (SECRET_BINDER_WORLD_BACKENDS must include openbao and postgres)');
  await configureOpenBaoEngines(world.openbao, world.postgres);
  await configureOpenBaoPki(world.openbao);
  return { bao: world.openbao, pg: world.postgres };
}

/** A role of OpenBao's database engine (connection `world`): each credential is a new PostgreSQL login role. */
export async function createDatabaseRole(bao: OpenBaoEndpoint, role: string, ttl: { defaultSeconds: number; maxSeconds: number }): Promise<void> {
  await openBaoRequest(bao, 'POST', `database/roles/${role}`, {
    db_name: 'world',
    creation_statements: [`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`],
    default_ttl: ttl.defaultSeconds,
    max_ttl: ttl.maxSeconds,
  });
}

/** The lease ids OpenBao holds for a database role (root token: sys/leases/lookup needs sudo). */
export async function leasesOf(bao: OpenBaoEndpoint, role: string): Promise<string[]> {
  try {
    const answer = (await openBaoRequest(bao, 'LIST', `sys/leases/lookup/database/creds/${role}/`)) as { data?: { keys?: string[] } };
    return (answer.data?.keys ?? []).map((k) => `database/creds/${role}/${k}`).sort();
  } catch (error) {
    if ((error as { status?: number }).status === 404) return [];
    throw error;
  }
}

/** One lease as OpenBao reports it. */
export async function lookupLease(bao: OpenBaoEndpoint, leaseId: string): Promise<{ ttl: number; last_renewal: string | null; issue_time: string }> {
  const answer = (await openBaoRequest(bao, 'PUT', 'sys/leases/lookup', { lease_id: leaseId })) as { data: { ttl: number; last_renewal: string | null; issue_time: string } };
  return answer.data;
}

/** The login roles OpenBao created in PostgreSQL (their names start with `v-`). */
export async function openBaoRoles(endpoint: PostgresEndpoint): Promise<string[]> {
  const client = new pg.Client({ host: endpoint.host, port: endpoint.port, user: endpoint.superuser, database: endpoint.database });
  await client.connect();
  try {
    const result = await client.query<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%' ORDER BY rolname`);
    return result.rows.map((r) => r.rolname);
  } finally {
    await client.end();
  }
}

/** Logs in with a credential and asks who we are: the role name, or the server's refusal. */
export async function loginAs(endpoint: PostgresEndpoint, user: string, password: string): Promise<string> {
  const client = new pg.Client({ host: endpoint.host, port: endpoint.port, user, password, database: endpoint.database, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const result = await client.query<{ current_user: string }>('SELECT current_user');
    return result.rows[0]?.current_user ?? '';
  } catch (error) {
    return `refused: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The credential files of a volume (read once each; the DSN file holds both in one read). */
export async function credentialIn(targetPath: string): Promise<{ username?: string; password?: string; dsn?: string }> {
  const [username, password, dsn] = await Promise.all(['username', 'password', 'db.dsn'].map((f) => readText(join(targetPath, f))));
  if (password !== undefined) registerNeedle(password, 'dynamic database password');
  return { ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }), ...(dsn === undefined ? {} : { dsn }) };
}

/** user and password of a DSN file `postgresql://user:password@host:port/db`. */
export function parseDsn(dsn: string): { user: string; password: string } {
  const url = new URL(dsn);
  return { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
}

/** The spec of a database binding over `role`. */
export function databaseBindingSpec(name: string, role: string, scope: 'perPod' | 'perWorkload', pg: PostgresEndpoint): Record<string, unknown> {
  return {
    podSelector: { matchLabels: { binding: name } },
    refreshInterval: '10s',
    dynamic: {
      path: `database/creds/${role}`,
      scope,
      files: [
        { path: 'username', field: 'username' },
        { path: 'password', field: 'password' },
        { path: 'db.dsn', template: `postgresql://{{ username }}:{{ password }}@${pg.host}:${String(pg.port)}/${pg.database}` },
      ],
    },
  };
}

/**
 * A PKI role that signs what the binding asks for: any name, SPIFFE URIs, the CSR's own names
 * ignored (the broker passes the binding's), certificates of at most `maxTtl`.
 */
export async function createPkiRole(bao: OpenBaoEndpoint, role: string, maxTtl: string): Promise<void> {
  await openBaoRequest(bao, 'POST', `pki/roles/${role}`, {
    allow_any_name: true,
    enforce_hostnames: false,
    allowed_uri_sans: 'spiffe://*',
    use_csr_common_name: false,
    use_csr_sans: false,
    key_type: 'any',
    max_ttl: maxTtl,
    no_store: false,
  });
}

/** Serial numbers OpenBao lists as revoked. */
export async function revokedSerials(bao: OpenBaoEndpoint): Promise<string[]> {
  try {
    const answer = (await openBaoRequest(bao, 'LIST', 'pki/certs/revoked')) as { data?: { keys?: string[] } };
    return answer.data?.keys ?? [];
  } catch (error) {
    if ((error as { status?: number }).status === 404) return [];
    throw error;
  }
}
