import { readFile } from 'node:fs/promises';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateSelfManagedTls } from '../tls/self-managed-tls.ts';

/**
 * The webhook's serving certificate: read from files (cert-manager, Helm) or self-managed — a CA
 * and a serving certificate made in memory at start (ECDSA P-256, WebCrypto), whose CA the caBundle
 * reconciler publishes in the webhook configurations (ADR 0093).
 */

export interface ServingTls {
  readonly certPem: string;
  readonly keyPem: string;
  /** The CA that verifies `certPem` (what belongs in `caBundle`); undefined if unknown. */
  readonly caPem: string | undefined;
}


export interface SelfManagedOptions {
  /** DNS names of the serving certificate, e.g. `secret-binder-webhook.<ns>.svc`. */
  readonly dnsNames: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly validityDays?: number;
  readonly now?: Date;
}

/** A fresh CA and a serving certificate it signed, in memory. */
export async function generateServingTls(options: SelfManagedOptions): Promise<ServingTls> {
  return generateSelfManagedTls({
    caName: 'secret-binder-webhook-ca',
    dnsNames: options.dnsNames.length > 0 ? options.dnsNames : ['secret-binder-webhook'],
    ...(options.ipAddresses === undefined ? {} : { ipAddresses: options.ipAddresses }),
    ...(options.validityDays === undefined ? {} : { caValidityDays: options.validityDays }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Optional CA file; when set, the caBundle reconciler publishes it. */
  readonly caFile?: string;
}

/** Reads a serving certificate from files (re-read by the server to follow rotation). */
export async function readServingTls(files: TlsFiles): Promise<ServingTls> {
  const [certPem, keyPem, caPem] = await Promise.all([
    readFile(files.certFile, 'utf8'),
    readFile(files.keyFile, 'utf8'),
    files.caFile === undefined ? Promise.resolve(undefined) : readFile(files.caFile, 'utf8'),
  ]);
  return { certPem, keyPem, caPem };
}

/** The certificates of a PEM bundle, each as its own PEM block. */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)?.map((b) => `${b}\n`) ?? [];
}

/**
 * The caBundle that should be published: our CA first, then the other CAs already there that are
 * still valid (other replicas' self-managed CAs), at most `max` in all. Pure; `undefined` means the
 * current bundle is already right.
 */
export function desiredCaBundle(currentPem: string, ourCaPem: string, now: Date, max = 8): string | undefined {
  const ours = normalize(ourCaPem);
  const others = splitPemBundle(currentPem)
    .map(normalize)
    .filter((pem) => pem !== ours && stillValid(pem, now));
  const next = [ours, ...others.slice(0, max - 1)].join('');
  return next === splitPemBundle(currentPem).map(normalize).join('') ? undefined : next;
}

/**
 * The caBundle when every replica serves the controller-managed certificate (ADR 0155): the
 * Secret's trust bundle first (the current CA, plus the next or previous one during a renewal),
 * then the other CAs already there that are still valid — a replica of an older release still
 * serving its own self-managed certificate during a rolling upgrade stays trusted — at most `max`
 * in all. On a fresh install this is exactly the Secret's bundle. Pure; `undefined` means the
 * current bundle is already right.
 */
export function sharedCaBundle(currentPem: string, bundlePem: string, now: Date, max = 8): string | undefined {
  const ours = splitPemBundle(bundlePem).map(normalize);
  const others = splitPemBundle(currentPem)
    .map(normalize)
    .filter((pem) => !ours.includes(pem) && stillValid(pem, now));
  const next = [...ours, ...others].slice(0, Math.max(max, ours.length)).join('');
  return next === splitPemBundle(currentPem).map(normalize).join('') ? undefined : next;
}

function normalize(pem: string): string {
  const b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`;
}

function stillValid(pem: string, now: Date): boolean {
  try {
    return new x509.X509Certificate(pem).notAfter.getTime() > now.getTime();
  } catch {
    // Unparsable entries are dropped: the API server could not use them either.
    return false;
  }
}
