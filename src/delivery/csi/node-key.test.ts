import { describe, expect, it } from '@jest/globals';
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { PublishAnswer, PublishRequest } from '../../broker/broker.protocol.ts';
import { publishWithNodeKey } from './node-key.ts';

/**
 * The node's half of a pki volume: every message to the broker is recorded; none carries a private
 * key, the CSR names what the broker asked for, and the key written to the volume is the CSR's.
 */

const request: PublishRequest = { volumeId: 'v1', pod: { namespace: 'shop', name: 'web-0', uid: 'u1', serviceAccountName: 'web' }, binding: 'tls', podToken: 'token' };
const asked = { commonName: 'web-0.shop.pod', dnsNames: ['web-0.shop.pod', 'web.shop.svc'], uris: ['spiffe://cluster.local/ns/shop/sa/web'] };

function fakeBroker(currentHash: string): { sent: PublishRequest[]; publish: (r: PublishRequest) => Promise<PublishAnswer> } {
  const sent: PublishRequest[] = [];
  return {
    sent,
    publish: (r) => {
      sent.push(r);
      if (r.csr === undefined) return Promise.resolve({ volumeId: r.volumeId, contentHash: currentHash, files: [], certificateRequest: asked });
      const cert = Buffer.from('-----BEGIN CERTIFICATE-----\nsigned\n-----END CERTIFICATE-----\n').toString('base64');
      return Promise.resolve({ volumeId: r.volumeId, contentHash: 'hmac-sha256:new', files: [{ path: 'tls.crt', mode: 0o444, contentBase64: cert }] });
    },
  };
}

describe('publishWithNodeKey', () => {
  it('sends only a CSR for the asked names and keeps the key for the volume', async () => {
    const broker = fakeBroker('');
    const answer = await publishWithNodeKey(broker.publish, request, null);
    expect(broker.sent).toHaveLength(2);
    for (const message of broker.sent) expect(JSON.stringify(message)).not.toMatch(/PRIVATE KEY/);
    const csr = new x509.Pkcs10CertificateRequest(broker.sent[1]?.csr ?? '');
    expect(await csr.verify(webcrypto)).toBe(true);
    expect(csr.subject).toBe('CN=web-0.shop.pod');
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    expect(san?.names.toJSON()).toEqual([
      { type: 'dns', value: 'web-0.shop.pod' },
      { type: 'dns', value: 'web.shop.svc' },
      { type: 'url', value: 'spiffe://cluster.local/ns/shop/sa/web' },
    ]);
    const keyFile = answer.files.find((f) => f.path === 'tls.key');
    expect(keyFile?.mode).toBe(0o400);
    const keyPem = Buffer.from(keyFile?.contentBase64 ?? '', 'base64').toString('utf8');
    const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
    expect(Buffer.from(csr.publicKey.rawData).equals(fromKey)).toBe(true);
    expect(answer.contentHash).toBe('hmac-sha256:new');
  });

  it('makes a new key on every exchange', async () => {
    const keys = await Promise.all([0, 1].map(async () => {
      const answer = await publishWithNodeKey(fakeBroker('').publish, request, null);
      return answer.files.find((f) => f.path === 'tls.key')?.contentBase64;
    }));
    expect(keys[0]).not.toBe(keys[1]);
  });

  it('keeps a volume that holds the current certificate: no key, no CSR', async () => {
    const broker = fakeBroker('hmac-sha256:current');
    const answer = await publishWithNodeKey(broker.publish, request, 'hmac-sha256:current');
    expect(broker.sent).toHaveLength(1);
    expect(answer.contentHash).toBe('hmac-sha256:current');
  });
});
