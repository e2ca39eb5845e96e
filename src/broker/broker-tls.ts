import { webcrypto } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

/** Where the broker's serving certificate comes from (ADR 0081). */
export type BrokerTlsSource =
  /** PEM files mounted from a Secret (cert-manager or the chart); the node plugin trusts their CA. */
  | { readonly kind: 'files'; readonly certFile: string; readonly keyFile: string }
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

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const crypto = webcrypto;

export async function loadBrokerTls(source: BrokerTlsSource): Promise<BrokerTlsMaterial> {
  if (source.kind === 'files') {
    const [cert, key] = await Promise.all([readFile(source.certFile, 'utf8'), readFile(source.keyFile, 'utf8')]);
    return { cert, key };
  }
  const material = await selfManagedTls(source.dnsNames, source.ipAddresses);
  if (source.caOut !== undefined && material.caPem !== undefined) {
    // Written atomically: a reader never sees half a certificate.
    const tmp = `${source.caOut}.${process.pid}.tmp`;
    await writeFile(tmp, material.caPem, { mode: 0o644 });
    await rename(tmp, source.caOut);
  }
  return material;
}

/** A one-year CA and a 90-day ECDSA P-256 serving certificate for the given names. The CA key is dropped. */
export async function selfManagedTls(dnsNames: readonly string[], ipAddresses: readonly string[]): Promise<BrokerTlsMaterial> {
  x509.cryptoProvider.set(crypto);
  const now = Date.now();
  const caKeys = await crypto.subtle.generateKey(ecdsa, false, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    notBefore: new Date(now - 300_000),
    notAfter: new Date(now + 365 * 86_400_000),
    name: [{ CN: ['secret-binder-broker-ca'] }],
    keys: caKeys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = await crypto.subtle.generateKey(ecdsa, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    notBefore: new Date(now - 300_000),
    notAfter: new Date(now + 90 * 86_400_000),
    subject: [{ CN: [dnsNames[0] ?? 'secret-binder-broker'] }],
    issuer: ca.subjectName,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  const der = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { cert: cert.toString('pem'), key: pem('PRIVATE KEY', der), caPem: `${ca.toString('pem')}\n` };
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
