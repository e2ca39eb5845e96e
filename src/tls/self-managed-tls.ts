import { webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

/**
 * Self-managed serving certificates for the broker and the webhook (ADRs 0081, 0093): a CA and a
 * serving certificate it signed, made in memory with WebCrypto (ECDSA P-256). The CA key never
 * leaves this function; callers publish only the CA certificate.
 */

x509.cryptoProvider.set(webcrypto);

export interface SelfManagedTlsOptions {
  /** Common name of the CA, e.g. `secret-binder-broker-ca`. */
  readonly caName: string;
  /** DNS names of the serving certificate; the first is also its common name. */
  readonly dnsNames: readonly string[];
  readonly ipAddresses?: readonly string[];
  /** Validity of the CA (default 365 days) and of the serving certificate (default: the CA's). */
  readonly caValidityDays?: number;
  readonly servingValidityDays?: number;
  /** Validity of both the CA and the serving certificate in milliseconds; wins over the days above. */
  readonly validityMs?: number;
  readonly now?: Date;
}

export interface SelfManagedTls {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const dayMs = 86_400_000;

export async function generateSelfManagedTls(options: SelfManagedTlsOptions): Promise<SelfManagedTls> {
  const now = (options.now ?? new Date()).getTime();
  // Back-dated an hour so clock skew between the API server and this process never matters.
  const notBefore = new Date(now - 3_600_000);
  const caDays = options.caValidityDays ?? 365;
  const caKeys = await webcrypto.subtle.generateKey(ecdsa, false, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    notBefore,
    notAfter: new Date(now + (options.validityMs ?? caDays * dayMs)),
    name: [{ CN: [options.caName] }],
    keys: caKeys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    notBefore,
    notAfter: new Date(now + (options.validityMs ?? (options.servingValidityDays ?? caDays) * dayMs)),
    subject: [{ CN: [options.dnsNames[0] ?? options.caName] }],
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
        ...options.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  return {
    certPem: `${cert.toString('pem')}\n`,
    keyPem: toPem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    caPem: `${ca.toString('pem')}\n`,
  };
}

function toPem(label: string, der: ArrayBuffer): string {
  return `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
