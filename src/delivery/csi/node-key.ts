import type { PublishAnswer, PublishRequest } from '../../broker/broker.protocol.ts';

/**
 * The node's half of a `pki` volume (ADR 0263): the key pair is made here, where the files are
 * written (node-csr.ts), and only a PKCS#10 request goes to the broker; the key goes into the
 * volume's file set as tls.key and nowhere else.
 */

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
  const { keyPem, csrPem } = await (await import('./node-csr.ts')).makeKeyAndCsr(asked);
  const signed = await publish({ ...request, csr: csrPem });
  return { ...signed, files: [...signed.files, { path: 'tls.key', mode: 0o400, contentBase64: Buffer.from(keyPem).toString('base64') }] };
}
