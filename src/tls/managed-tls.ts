import { webcrypto } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { CoreApi } from '../kube/kube-clients.ts';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { isConflict, isNotFound } from '../kube/kube-errors.ts';
import type { Logger } from '../observability/logger.ts';
import { generateSelfManagedTls } from './self-managed-tls.ts';

/**
 * Controller-managed serving certificates (ADR 0155): a CA and a serving certificate kept in a
 * Secret of the operator's namespace, created by whichever replica gets there first and renewed
 * before expiry, so `helm template` never has to make one (GitOps renders stay byte-identical).
 *
 * The Secret holds `tls.crt`/`tls.key` (what every replica serves), `ca.crt` (the trust bundle:
 * every CA still valid, newest first — what the node plugin and the webhook caBundle trust) and,
 * during a renewal, `next.crt`/`next.key`. A renewal has two steps, so nobody is ever asked to
 * trust a certificate before its CA has been published:
 *   1. stage, at 2/3 of the validity: a fresh CA + certificate; the CA joins the bundle, the pair
 *      waits in `next.*` while the old pair is still served;
 *   2. promote, at 5/6: `next.*` becomes `tls.*`. The old CA stays in the bundle until it expires,
 *      so a replica or client that has not caught up yet keeps working.
 * A CA's private key is never stored: each renewal makes a new CA.
 */

x509.cryptoProvider.set(webcrypto);

export interface StoredTls {
  readonly certPem: string | undefined;
  readonly keyPem: string | undefined;
  readonly caBundlePem: string | undefined;
  readonly nextCertPem: string | undefined;
  readonly nextKeyPem: string | undefined;
}

export interface WantedTls {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly validityMs: number;
}

export type TlsStep =
  /** Serve what is stored. */
  | { readonly kind: 'keep' }
  /** Nothing usable is stored (missing, expired, wrong names, not signed by the bundle): a new pair now. */
  | { readonly kind: 'replace'; readonly why: string }
  /** Publish a new CA and park its certificate in `next.*`. */
  | { readonly kind: 'stage' }
  /** Serve the staged pair. */
  | { readonly kind: 'promote' };

/** The serving pair and the CAs that verify it (and the previous and next ones while they live). */
export interface ManagedTlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caBundlePem: string;
}

/** What to do with the stored material now. Pure. */
export async function planTls(stored: StoredTls, wanted: WantedTls, now: Date): Promise<TlsStep> {
  if (stored.certPem === undefined || stored.keyPem === undefined || stored.caBundlePem === undefined) return { kind: 'replace', why: 'missing' };
  const cert = parse(stored.certPem);
  if (cert === undefined) return { kind: 'replace', why: 'unparsable certificate' };
  const remainingMs = cert.notAfter.getTime() - now.getTime();
  if (remainingMs <= 0) return { kind: 'replace', why: 'expired' };
  if (!sameNames(cert, wanted)) return { kind: 'replace', why: 'names changed' };
  if (!(await signedByOneOf(cert, stored.caBundlePem))) return { kind: 'replace', why: 'not signed by a CA of ca.crt' };
  const next = stored.nextCertPem === undefined || stored.nextKeyPem === undefined ? undefined : parse(stored.nextCertPem);
  const nextUsable = next !== undefined && next.notAfter.getTime() > now.getTime() && sameNames(next, wanted) && (await signedByOneOf(next, stored.caBundlePem));
  if (nextUsable) return remainingMs <= wanted.validityMs / 6 ? { kind: 'promote' } : { kind: 'keep' };
  return remainingMs <= wanted.validityMs / 3 ? { kind: 'stage' } : { kind: 'keep' };
}

/** The stored material after `step`, making a new CA and certificate where the step needs one. */
export async function applyTlsStep(stored: StoredTls, step: TlsStep, wanted: WantedTls & { readonly caName: string }, now: Date): Promise<StoredTls> {
  const validCas = (bundle: string | undefined): string[] => splitCertificates(bundle ?? '').filter((pem) => (parse(pem)?.notAfter.getTime() ?? 0) > now.getTime());
  switch (step.kind) {
    case 'keep':
      return stored;
    case 'promote':
      return { certPem: stored.nextCertPem, keyPem: stored.nextKeyPem, caBundlePem: validCas(stored.caBundlePem).join(''), nextCertPem: undefined, nextKeyPem: undefined };
    case 'stage':
    case 'replace': {
      const fresh = await generateSelfManagedTls({ caName: wanted.caName, dnsNames: wanted.dnsNames, ipAddresses: wanted.ipAddresses, validityMs: wanted.validityMs, now });
      const bundle = [fresh.caPem, ...validCas(stored.caBundlePem).slice(0, 3)].join('');
      return step.kind === 'stage'
        ? { certPem: stored.certPem, keyPem: stored.keyPem, caBundlePem: bundle, nextCertPem: fresh.certPem, nextKeyPem: fresh.keyPem }
        : { certPem: fresh.certPem, keyPem: fresh.keyPem, caBundlePem: bundle, nextCertPem: undefined, nextKeyPem: undefined };
    }
  }
}

/** The certificates of a PEM bundle, each as its own PEM block. */
export function splitCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((b) => `${b}\n`) ?? [];
}

function parse(pem: string): x509.X509Certificate | undefined {
  try {
    return new x509.X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function sameNames(cert: x509.X509Certificate, wanted: WantedTls): boolean {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = (san?.names.items ?? []).map((n) => `${n.type}:${n.value}`).sort();
  const want = [...wanted.dnsNames.map((n) => `dns:${n}`), ...wanted.ipAddresses.map((n) => `ip:${n}`)].sort();
  return names.length === want.length && names.every((n, i) => n === want[i]);
}

async function signedByOneOf(cert: x509.X509Certificate, bundle: string): Promise<boolean> {
  for (const pem of splitCertificates(bundle)) {
    const ca = parse(pem);
    if (ca === undefined || ca.subject !== cert.issuer) continue;
    if (await cert.verify({ publicKey: ca.publicKey, signatureOnly: true })) return true;
  }
  return false;
}

const keys = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt', nextCert: 'next.crt', nextKey: 'next.key' } as const;

export interface ManagedTlsSecretOptions {
  readonly core: CoreApi;
  readonly namespace: string;
  readonly name: string;
  /** Common name of the CAs it makes, e.g. `secret-binder-broker-ca`. */
  readonly caName: string;
  readonly wanted: WantedTls;
  readonly logger: Logger;
  readonly now?: () => Date;
}

/**
 * One managed Secret. `ensure()` reads it, takes the step {@link planTls} says is due, and returns
 * the material as stored. Any replica may call it: a create that finds the Secret already there, or
 * a replace that loses the optimistic-concurrency race (409), reads back the winner's material.
 */
export class ManagedTlsSecret {
  readonly #options: ManagedTlsSecretOptions;

  constructor(options: ManagedTlsSecretOptions) {
    this.#options = options;
  }

  /** How often the Secret should be checked: often enough to stage and promote on time, at most every minute. */
  get checkIntervalMs(): number {
    return Math.max(1000, Math.min(60_000, Math.floor(this.#options.wanted.validityMs / 30)));
  }

  async ensure(): Promise<ManagedTlsMaterial> {
    const { core, namespace, name, logger } = this.#options;
    const now = this.#options.now?.() ?? new Date();
    const secret = await this.#read();
    const stored = secret === undefined ? emptyStored : storedOf(secret);
    const step = await planTls(stored, this.#options.wanted, now);
    if (step.kind === 'keep') return materialOf(stored);
    const next = await applyTlsStep(stored, step, { ...this.#options.wanted, caName: this.#options.caName }, now);
    try {
      if (secret === undefined) {
        await core.createNamespacedSecret({ namespace, body: secretOf(name, next) });
      } else {
        const body = secretOf(name, next, secret);
        await core.replaceNamespacedSecret({ namespace, name, body });
      }
    } catch (error) {
      // Another replica created or renewed it first: serve what it stored.
      if (!isConflict(error)) throw error;
      logger.debug('managed certificate written by another replica', { secret: name });
      const winner = await this.#read();
      if (winner === undefined) throw error;
      return materialOf(storedOf(winner));
    }
    logger.info('managed certificate updated', { secret: name, step: step.kind, ...(step.kind === 'replace' ? { why: step.why } : {}) });
    return materialOf(next);
  }

  async #read(): Promise<V1Secret | undefined> {
    try {
      return await this.#options.core.readNamespacedSecret({ namespace: this.#options.namespace, name: this.#options.name });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }
}

const emptyStored: StoredTls = { certPem: undefined, keyPem: undefined, caBundlePem: undefined, nextCertPem: undefined, nextKeyPem: undefined };

function storedOf(secret: V1Secret): StoredTls {
  const field = (key: string): string | undefined => {
    const value = secret.data?.[key];
    return value === undefined || value === '' ? undefined : Buffer.from(value, 'base64').toString('utf8');
  };
  return { certPem: field(keys.cert), keyPem: field(keys.key), caBundlePem: field(keys.ca), nextCertPem: field(keys.nextCert), nextKeyPem: field(keys.nextKey) };
}

function materialOf(stored: StoredTls): ManagedTlsMaterial {
  if (stored.certPem === undefined || stored.keyPem === undefined || stored.caBundlePem === undefined) throw new Error('managed certificate Secret is incomplete');
  return { certPem: stored.certPem, keyPem: stored.keyPem, caBundlePem: stored.caBundlePem };
}

function secretOf(name: string, stored: StoredTls, current?: V1Secret): V1Secret {
  const data: Record<string, string> = {};
  const put = (key: string, value: string | undefined): void => {
    if (value !== undefined) data[key] = Buffer.from(value).toString('base64');
  };
  put(keys.cert, stored.certPem);
  put(keys.key, stored.keyPem);
  put(keys.ca, stored.caBundlePem);
  put(keys.nextCert, stored.nextCertPem);
  put(keys.nextKey, stored.nextKeyPem);
  if (current !== undefined) {
    // A replace with the read metadata (its resourceVersion): a concurrent writer makes this one fail (409).
    return { apiVersion: 'v1', kind: 'Secret', metadata: current.metadata, type: current.type, data };
  }
  return {
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'secret-binder' },
      annotations: { 'secretbinder.dev/managed': 'serving certificate, created and renewed by the controller (ADR 0155)' },
    },
    type: 'kubernetes.io/tls',
    data,
  };
}
