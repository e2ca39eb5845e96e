import { webcrypto } from 'node:crypto';
// @peculiar/x509's dependency injection needs the Reflect metadata polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { CertificateRequest } from '../../broker/broker.protocol.ts';

/**
 * A fresh ECDSA P-256 key pair and a PKCS#10 request for the names the broker asked for (ADR 0263).
 * Loaded only when a pki volume is published: x509 costs memory every other node plugin is spared.
 */

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface NodeKeyAndCsr {
  /** PKCS#8 PEM of the private key: for the volume only. */
  readonly keyPem: string;
  readonly csrPem: string;
}

export async function makeKeyAndCsr(request: CertificateRequest): Promise<NodeKeyAndCsr> {
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']));
  const names = [
    ...request.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...request.uris.map((value) => ({ type: 'url' as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: [{ CN: [request.commonName] }],
      keys,
      signingAlgorithm: algorithm,
      extensions: names.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(names)],
    },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, csrPem: csr.toString('pem') };
}

