import { describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { applyTlsStep, planTls, splitCertificates, type StoredTls, type WantedTls } from './managed-tls.ts';

const wanted: WantedTls & { caName: string } = { caName: 'test-ca', dnsNames: ['broker.sb.svc'], ipAddresses: ['127.0.0.1'], validityMs: 60_000 };
const empty: StoredTls = { certPem: undefined, keyPem: undefined, caBundlePem: undefined, nextCertPem: undefined, nextKeyPem: undefined };
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);

/** The serving certificate verifies against one CA of the bundle (what a TLS client checks). */
function verifiedByBundle(certPem: string | undefined, bundle: string | undefined): boolean {
  const cert = new X509Certificate(certPem ?? '');
  return splitCertificates(bundle ?? '').some((ca) => cert.verify(new X509Certificate(ca).publicKey));
}

describe('managed certificates: plan and steps', () => {
  it('makes a pair when nothing is stored, then keeps it until 2/3 of its validity', async () => {
    expect(await planTls(empty, wanted, t0)).toEqual({ kind: 'replace', why: 'missing' });
    const first = await applyTlsStep(empty, { kind: 'replace', why: 'missing' }, wanted, t0);
    expect(verifiedByBundle(first.certPem, first.caBundlePem)).toBe(true);
    expect(splitCertificates(first.caBundlePem ?? '')).toHaveLength(1);
    expect(new X509Certificate(first.certPem ?? '').subjectAltName).toBe('DNS:broker.sb.svc, IP Address:127.0.0.1');
    expect(await planTls(first, wanted, at(39_000))).toEqual({ kind: 'keep' });
  });

  it('renews in two steps: publishes the new CA first, serves its certificate later, keeps the old CA trusted', async () => {
    const first = await applyTlsStep(empty, { kind: 'replace', why: 'missing' }, wanted, t0);
    expect(await planTls(first, wanted, at(41_000))).toEqual({ kind: 'stage' });
    const staged = await applyTlsStep(first, { kind: 'stage' }, wanted, at(41_000));
    // Still serving the old pair; the bundle now trusts both, the new pair waits.
    expect(staged.certPem).toBe(first.certPem);
    expect(splitCertificates(staged.caBundlePem ?? '')).toHaveLength(2);
    expect(verifiedByBundle(staged.nextCertPem, first.caBundlePem)).toBe(false);
    expect(verifiedByBundle(staged.nextCertPem, staged.caBundlePem)).toBe(true);
    expect(await planTls(staged, wanted, at(45_000))).toEqual({ kind: 'keep' });

    expect(await planTls(staged, wanted, at(51_000))).toEqual({ kind: 'promote' });
    const promoted = await applyTlsStep(staged, { kind: 'promote' }, wanted, at(51_000));
    expect(promoted.certPem).toBe(staged.nextCertPem);
    expect(promoted.nextCertPem).toBeUndefined();
    // The old CA stays while it is valid: a replica still serving the old pair is trusted.
    expect(verifiedByBundle(first.certPem, promoted.caBundlePem)).toBe(true);
    expect(verifiedByBundle(promoted.certPem, promoted.caBundlePem)).toBe(true);
    expect(await planTls(promoted, wanted, at(52_000))).toEqual({ kind: 'keep' });

    // Once the old CA expired, the next renewal drops it from the bundle.
    const restaged = await applyTlsStep(promoted, { kind: 'stage' }, wanted, at(95_000));
    expect(splitCertificates(restaged.caBundlePem ?? '')).toHaveLength(2);
    expect(verifiedByBundle(first.certPem, restaged.caBundlePem)).toBe(false);
  });

  it('replaces at once what cannot be served: expired, other names, or not signed by the bundle', async () => {
    const first = await applyTlsStep(empty, { kind: 'replace', why: 'missing' }, wanted, t0);
    expect(await planTls(first, wanted, at(61_000))).toEqual({ kind: 'replace', why: 'expired' });
    expect(await planTls(first, { ...wanted, dnsNames: ['other.sb.svc'] }, t0)).toEqual({ kind: 'replace', why: 'names changed' });
    const stranger = await applyTlsStep(empty, { kind: 'replace', why: 'missing' }, wanted, t0);
    expect(await planTls({ ...first, caBundlePem: stranger.caBundlePem }, wanted, t0)).toEqual({ kind: 'replace', why: 'not signed by a CA of ca.crt' });
    expect(await planTls({ ...first, certPem: 'garbage' }, wanted, t0)).toEqual({ kind: 'replace', why: 'unparsable certificate' });
  });

  it('measures the renewal point against the configured validity: a longer one renews a short pair early', async () => {
    const first = await applyTlsStep(empty, { kind: 'replace', why: 'missing' }, wanted, t0);
    expect(await planTls(first, { ...wanted, validityMs: 30_000 }, at(5_000))).toEqual({ kind: 'keep' });
    expect(await planTls(first, { ...wanted, validityMs: 300_000 }, at(5_000))).toEqual({ kind: 'stage' });
  });
});
