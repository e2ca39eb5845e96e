import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CertificateRequest, PublishAnswer, PublishRequest } from '../../broker/broker.protocol.ts';

/**
 * The node's half of a `pki` volume (ADR 0263): a fresh ECDSA P-256 key pair made here, where the
 * files are written, and a PKCS#10 request for the names the broker asked for. Only the request
 * goes to the broker; the key goes into the volume's file set as tls.key and nowhere else.
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

/**
 * A publish through `publish`, completing a pki volume's exchange: when the broker asks for a CSR
 * and the volume does not hold the current certificate (`heldHash`), a key pair is made, the CSR
 * sent, and tls.key added to the answer's files. Any other answer is returned as is.
 */
export async function publishWithNodeKey(
  publish: (request: PublishRequest) => Promise<PublishAnswer>,
  request: PublishRequest,
  heldHash: string | null,
): Promise<PublishAnswer> {
  const first = await publish(request);
  const asked = first.certificateRequest;
  if (asked === undefined) return first;
  // The volume holds the certificate that is still current: the answer keeps it (same hash, no write).
  if (first.contentHash !== '' && first.contentHash === heldHash) return first;
  const { keyPem, csrPem } = await makeKeyAndCsr(asked);
  const signed = await publish({ ...request, csr: csrPem });
  return { ...signed, files: [...signed.files, { path: 'tls.key', mode: 0o400, contentBase64: Buffer.from(keyPem).toString('base64') }] };
}
