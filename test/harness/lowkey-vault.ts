import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, isLoopback, listenersOfProcessGroup, lowkeyVaultFiles } from './backend-tools.ts';
import { startProcess, stopProcess, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import type { LowkeyVaultEndpoint } from './world-state.ts';

/**
 * Lowkey Vault (an Azure Key Vault test double) for the test world: the Spring Boot jar on Java
 * 17, HTTPS with the certificate bundled in the jar (its PEM, extracted by install/lowkey-vault.sh,
 * is what clients verify against — TLS verification stays on), bound to 127.0.0.1.
 *
 * Lowkey Vault routes requests to a vault by the request's host:port; it registers a vault for
 * `127.0.0.1:<port>` and `localhost:<port>` by itself. The vault URL uses whichever of those the
 * bundled certificate's SANs cover (ADR 0022).
 */

export async function startLowkeyVault(opts: {
  readonly dir: string;
  readonly logDir: string;
}): Promise<{ record: ProcessRecord; endpoint: LowkeyVaultEndpoint }> {
  const files = lowkeyVaultFiles();
  const dir = join(opts.dir, 'lowkey-vault');
  mkdirSync(dir, { recursive: true });
  const caPath = join(dir, 'ca.pem');
  copyFileSync(files.certPem, caPath);
  const caPem = readFileSync(caPath, 'utf8');
  const host = vaultHostFor(caPem);
  // The vault's HTTPS port and, next to it, its managed-identity token endpoint (plain HTTP).
  const port = await freePorts(2);
  const tokenPort = port + 1;
  const record = startProcess({
    name: 'lowkey-vault',
    command: 'java',
    args: [
      // Bounded memory; C1 only and serial GC start faster and are plenty for a test double.
      '-Xmx256m',
      '-Xss512k',
      '-XX:TieredStopAtLevel=1',
      '-XX:+UseSerialGC',
      '-Xshare:auto',
      '-jar',
      files.jar,
      '--server.address=127.0.0.1',
      `--server.port=${port}`,
      `--app.token.port=${tokenPort}`,
      '--spring.jmx.enabled=false',
      // Only the built-in vaults (127.0.0.1, localhost, default.lowkey-vault[.local]).
      '--LOWKEY_VAULT_NAMES=',
    ],
    env: { HOME: dir },
    cwd: dir,
    logDir: opts.logDir,
    readiness: { kind: 'http', url: `https://${host}:${port}/ping`, okStatuses: [200], tls: { caPath } },
  });
  await waitReady(record, 90_000);
  // Every server of the world listens on loopback only. Lowkey Vault adds its token connector in
  // code, without an address; if that listens on all interfaces, refuse to keep it running.
  const exposed = listenersOfProcessGroup(record.pid).filter((listener) => !isLoopback(listener.address));
  if (exposed.length > 0) {
    await stopProcess(record);
    throw new Error(
      `lowkey-vault listens beyond loopback (${exposed.map((l) => `${l.address}:${l.port}`).join(', ')}); stopped it`,
    );
  }
  return {
    record,
    endpoint: {
      vaultUrl: `https://${host}:${port}`,
      caPem,
      tokenEndpoint: `http://127.0.0.1:${tokenPort}/metadata/identity/oauth2/token`,
    },
  };
}

/** `127.0.0.1` if the certificate covers that IP, else `localhost` if it covers that name. */
export function vaultHostFor(certPem: string): string {
  const certificate = new X509Certificate(certPem);
  if (certificate.checkIP('127.0.0.1') !== undefined) return '127.0.0.1';
  if (certificate.checkHost('localhost') !== undefined) return 'localhost';
  throw new Error(`lowkey-vault: its certificate covers neither 127.0.0.1 nor localhost (${certificate.subjectAltName ?? 'no SAN'})`);
}
