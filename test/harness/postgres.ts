import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, freePorts, pinnedSetting } from './backend-tools.ts';
import { openBaoRequest } from './openbao.ts';
import { startProcess, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import type { OpenBaoEndpoint, PostgresEndpoint } from './world-state.ts';

/**
 * PostgreSQL for the test world (issue 21, ADR 0261): Debian's server unpacked into the cache by
 * install/postgres.sh, started as the unprivileged user `nobody` on 127.0.0.1 from a copy of the
 * cached initdb data directory (no initdb per world), with trust authentication for the superuser
 * on loopback only and password authentication for every other role (OpenBao's database engine
 * creates those). Unix sockets are off: TCP on 127.0.0.1 only.
 */

/** The unprivileged account the server runs as (PostgreSQL refuses to run as root). */
const serverUser = { uid: 'nobody', gid: 'nogroup' } as const;

/** The superuser initdb created; it logs in from loopback without a password. */
const superuser = 'postgres';

export function postgresInstall(): { readonly root: string; readonly bin: string; readonly libDir: string; readonly template: string } {
  const version = pinnedSetting('POSTGRES_VERSION');
  const major = pinnedSetting('POSTGRES_MAJOR');
  const dir = join(cacheDir(), 'postgresql', version);
  const bin = join(dir, 'root', 'usr', 'lib', 'postgresql', major, 'bin');
  if (!existsSync(join(bin, 'postgres')) || !existsSync(join(dir, 'initdb', 'PG_VERSION'))) {
    throw new Error(`PostgreSQL ${version} is not in ${dir}: run \`bash test/harness/install/postgres.sh\``);
  }
  return { root: join(dir, 'root'), bin, libDir: join(dir, 'root', 'usr', 'lib', 'x86_64-linux-gnu'), template: join(dir, 'initdb') };
}

export async function startPostgres(opts: { readonly dir: string; readonly logDir: string }): Promise<{ record: ProcessRecord; endpoint: PostgresEndpoint }> {
  const install = postgresInstall();
  // The server (as nobody) must traverse the world directory to its own: traverse only, no listing.
  const worldMode = statSync(opts.dir).mode & 0o777;
  if ((worldMode & 0o001) === 0) chmodSync(opts.dir, worldMode | 0o001);
  const home = join(opts.dir, 'postgres');
  mkdirSync(home, { recursive: true });
  chmodSync(home, 0o755);
  // The cache lives under root's home, which nobody cannot traverse: hard links to the same files
  // cost nothing (one file system); a copy where they cannot be linked.
  const binaries = join(home, 'root');
  if (!existsSync(binaries) && run('cp', ['-al', install.root, binaries]) !== 0) {
    rmSync(binaries, { recursive: true, force: true });
    if (run('cp', ['-a', install.root, binaries]) !== 0) throw new Error(`could not copy PostgreSQL into ${binaries}`);
  }
  const data = join(home, 'data');
  if (!existsSync(data)) {
    if (run('cp', ['-a', install.template, data]) !== 0) throw new Error(`could not copy the initdb template into ${data}`);
  }
  // Loopback only. The superuser (the harness, OpenBao's database engine) without a password; every
  // other role — the ones OpenBao creates — by password, so a test login proves the credential.
  const hba = join(home, 'pg_hba.conf');
  writeFileSync(hba, `host all ${superuser} 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n`, { mode: 0o644 });
  if (run('chown', ['-R', `${serverUser.uid}:${serverUser.gid}`, data]) !== 0) throw new Error(`chown ${data} failed`);
  chmodSync(data, 0o700);
  const port = await freePorts(1);
  const relative = (path: string): string => join(binaries, path.slice(install.root.length));
  const record = startProcess({
    name: 'postgres',
    command: 'setpriv',
    args: [
      `--reuid=${serverUser.uid}`,
      `--regid=${serverUser.gid}`,
      '--clear-groups',
      join(relative(install.bin), 'postgres'),
      '-D', data,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `port=${String(port)}`,
      '-c', 'unix_socket_directories=',
      '-c', `hba_file=${hba}`,
      // A test database: durability buys nothing here and costs CPU.
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=200',
      '-c', 'shared_buffers=16MB',
    ],
    env: { LD_LIBRARY_PATH: relative(install.libDir), HOME: home },
    cwd: home,
    logDir: opts.logDir,
    readiness: { kind: 'tcp', host: '127.0.0.1', port },
  });
  await waitReady(record, 30_000);
  return { record, endpoint: { host: '127.0.0.1', port, superuser, database: 'postgres' } };
}

function run(command: string, args: readonly string[]): number {
  return spawnSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'] }).status ?? 1;
}

/**
 * OpenBao's database secrets engine at `database/`, connected to the world's PostgreSQL as the
 * superuser. Roles are created by the suites (their TTLs differ); the connection allows every role
 * name (`allowed_roles=*`).
 */
export async function configureOpenBaoEngines(bao: OpenBaoEndpoint, pg: PostgresEndpoint): Promise<void> {
  const mounts = (await openBaoRequest(bao, 'GET', 'sys/mounts')) as { data?: Record<string, unknown> };
  if (mounts.data?.['database/'] === undefined) await openBaoRequest(bao, 'POST', 'sys/mounts/database', { type: 'database' });
  await openBaoRequest(bao, 'POST', 'database/config/world', {
    plugin_name: 'postgresql-database-plugin',
    connection_url: `postgresql://{{username}}:{{password}}@${pg.host}:${String(pg.port)}/${pg.database}?sslmode=disable`,
    username: pg.superuser,
    password: 'unused-trust-on-loopback',
    allowed_roles: '*',
    verify_connection: true,
  });
}

/** OpenBao's PKI engine at `pki/` with a root CA (EC P-256, ten years); roles come from the suites. */
export async function configureOpenBaoPki(bao: OpenBaoEndpoint): Promise<void> {
  const mounts = (await openBaoRequest(bao, 'GET', 'sys/mounts')) as { data?: Record<string, unknown> };
  if (mounts.data?.['pki/'] === undefined) {
    await openBaoRequest(bao, 'POST', 'sys/mounts/pki', { type: 'pki', config: { max_lease_ttl: '87600h' } });
    await openBaoRequest(bao, 'POST', 'pki/root/generate/internal', { common_name: 'secret-binder test world root', ttl: '87600h', key_type: 'ec', key_bits: 256 });
  }
}
