import { readFile, rename, writeFile } from 'node:fs/promises';
import { generateSelfManagedTls } from '../tls/self-managed-tls.ts';

/** Where the broker's serving certificate comes from (ADR 0081). */
export type BrokerTlsSource =
  /** PEM files mounted from a Secret (cert-manager or the chart); the node plugin trusts their CA. */
  | { readonly kind: 'files'; readonly certFile: string; readonly keyFile: string }
  /**
   * A CA and a serving certificate in a Secret of the operator namespace, created and renewed by
   * the controller (ADR 0155); every replica serves the same pair. The trust bundle (`ca.crt`) is
   * also written to `caOut` when given.
   */
  | {
      readonly kind: 'secret';
      readonly secretName: string;
      readonly dnsNames: readonly string[];
      readonly ipAddresses: readonly string[];
      readonly caOut: string | undefined;
      readonly validitySeconds: number;
    }
  /**
   * A CA and a serving certificate made in memory at start; the CA certificate (never its key)
   * is written to `caOut` for the node plugin to trust.
   */
  | { readonly kind: 'self-managed'; readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[]; readonly caOut: string | undefined };

export interface BrokerTlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** The CA that signed `cert` (self-managed only). */
  readonly caPem?: string;
}

/** Files and self-managed material; a `secret` source is loaded through the API (`ManagedTlsSecret`). */
export async function loadBrokerTls(source: Exclude<BrokerTlsSource, { kind: 'secret' }>): Promise<BrokerTlsMaterial> {
  if (source.kind === 'files') {
    const [cert, key] = await Promise.all([readFile(source.certFile, 'utf8'), readFile(source.keyFile, 'utf8')]);
    return { cert, key };
  }
  const material = await selfManagedTls(source.dnsNames, source.ipAddresses);
  if (source.caOut !== undefined && material.caPem !== undefined) await writeCaOut(source.caOut, material.caPem);
  return material;
}

/** Writes the CA (bundle) for a node plugin on the same host, atomically: a reader never sees half a certificate. */
export async function writeCaOut(path: string, pem: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, pem, { mode: 0o644 });
  await rename(tmp, path);
}

/** A one-year CA and a 90-day ECDSA P-256 serving certificate for the given names. The CA key is dropped. */
export async function selfManagedTls(dnsNames: readonly string[], ipAddresses: readonly string[]): Promise<BrokerTlsMaterial> {
  const tls = await generateSelfManagedTls({ caName: 'secret-binder-broker-ca', dnsNames: dnsNames.length > 0 ? dnsNames : ['secret-binder-broker'], ipAddresses, servingValidityDays: 90 });
  return { cert: tls.certPem, key: tls.keyPem, caPem: tls.caPem };
}
