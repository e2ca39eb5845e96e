import { webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

/**
 * The test world's PKI, made in-process with WebCrypto (ECDSA P-256: milliseconds, no `openssl`
 * on PATH needed). Everything is written as PEM files into one directory; see ADR 0010.
 */

const crypto: Crypto = webcrypto;
x509.cryptoProvider.set(crypto);

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A certificate and its private key, as PEM files on disk. */
export interface KeyPairFiles {
  readonly certPath: string;
  readonly keyPath: string;
}

/** Paths of every PEM file of a world's PKI. */
export interface WorldPki {
  readonly dir: string;
  /** The cluster CA: signs every certificate below and is the apiserver's client CA. */
  readonly ca: KeyPairFiles;
  readonly caPem: string;
  /** kube-apiserver serving certificate (127.0.0.1, localhost, kubernetes.default.svc, ...). */
  readonly apiserver: KeyPairFiles;
  /** etcd serving + peer certificate (127.0.0.1, localhost). */
  readonly etcd: KeyPairFiles;
  /** kube-apiserver's client certificate towards etcd. */
  readonly apiserverEtcdClient: KeyPairFiles;
  /** kube-apiserver's client certificate towards kubelets (used once a node joins). */
  readonly apiserverKubeletClient: KeyPairFiles;
  /** Cluster admin: CN=secret-binder-admin, O=system:masters. */
  readonly admin: KeyPairFiles;
  /** CN=system:kube-controller-manager; client and serving (127.0.0.1, localhost) certificate. */
  readonly controllerManager: KeyPairFiles;
  /** CN=system:kube-scheduler (for when a scheduler joins the world). */
  readonly scheduler: KeyPairFiles;
  /** Service-account token signing key (private, PKCS#8) and its public key (SPKI). */
  readonly serviceAccount: { readonly privateKeyPath: string; readonly publicKeyPath: string };
}

type Name = { CN: string; O?: string };

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

function jsonName(name: Name): x509.JsonName {
  const parts: x509.JsonName = [{ CN: [name.CN] }];
  if (name.O !== undefined) parts.push({ O: [name.O] });
  return parts;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ecdsa, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', await crypto.subtle.exportKey('pkcs8', key));
}

interface Issued {
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
}

const validity = (): { notBefore: Date; notAfter: Date } => {
  const now = Date.now();
  // Back-dated a little so small clock differences between processes never matter.
  return { notBefore: new Date(now - 3_600_000), notAfter: new Date(now + 30 * 24 * 3_600_000) };
};

async function createCa(): Promise<Issued> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    ...validity(),
    name: jsonName({ CN: 'secret-binder-test-ca' }),
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

export interface LeafOptions {
  readonly name: Name;
  readonly server?: { readonly dns: readonly string[]; readonly ips: readonly string[] };
  readonly client?: boolean;
}

async function issue(ca: Issued, options: LeafOptions): Promise<Issued> {
  const keys = await generateKeys();
  const usages: string[] = [];
  if (options.server !== undefined) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (options.client === true) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(usages),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (options.server !== undefined) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...options.server.dns.map((value) => ({ type: 'dns' as const, value })),
        ...options.server.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    ...validity(),
    subject: jsonName(options.name),
    issuer: ca.cert.subjectName,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm,
    extensions,
  });
  return { cert, keys };
}

async function writePair(dir: string, file: string, issued: Issued): Promise<KeyPairFiles> {
  const certPath = join(dir, `${file}.crt`);
  const keyPath = join(dir, `${file}.key`);
  writeFileSync(certPath, issued.cert.toString('pem') + '\n');
  writeFileSync(keyPath, await privateKeyPem(issued.keys.privateKey), { mode: 0o600 });
  return { certPath, keyPath };
}

const apiserverDnsNames = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

/**
 * Creates the whole PKI of a world in `dir` (created if missing). `kubernetesServiceIp`, the
 * `kubernetes` Service's ClusterIP in the world's Service range, is a name in the API server's
 * certificate; nothing listens on it.
 */
export async function createWorldPki(dir: string, options: { readonly kubernetesServiceIp: string }): Promise<WorldPki> {
  const apiserverNames = { dns: apiserverDnsNames, ips: ['127.0.0.1', options.kubernetesServiceIp] };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa();
  const leaves = {
    apiserver: { name: { CN: 'kube-apiserver' }, server: apiserverNames },
    etcd: { name: { CN: 'etcd' }, server: { dns: ['localhost'], ips: ['127.0.0.1'] }, client: true },
    'apiserver-etcd-client': { name: { CN: 'kube-apiserver-etcd-client' }, client: true },
    'apiserver-kubelet-client': { name: { CN: 'kube-apiserver-kubelet-client', O: 'system:masters' }, client: true },
    admin: { name: { CN: 'secret-binder-admin', O: 'system:masters' }, client: true },
    // Also kube-controller-manager's serving certificate, so its /healthz is checked with TLS verified.
    'kube-controller-manager': {
      name: { CN: 'system:kube-controller-manager' },
      server: { dns: ['localhost'], ips: ['127.0.0.1'] },
      client: true,
    },
    'kube-scheduler': { name: { CN: 'system:kube-scheduler' }, client: true },
  } satisfies Record<string, LeafOptions>;
  const files: Record<string, KeyPairFiles> = {};
  await Promise.all(
    Object.entries(leaves).map(async ([file, options]) => {
      files[file] = await writePair(dir, file, await issue(ca, options));
    }),
  );
  const caFiles = await writePair(dir, 'ca', ca);

  const sa = await generateKeys();
  const serviceAccount = { privateKeyPath: join(dir, 'sa.key'), publicKeyPath: join(dir, 'sa.pub') };
  writeFileSync(serviceAccount.privateKeyPath, await privateKeyPem(sa.privateKey), { mode: 0o600 });
  writeFileSync(serviceAccount.publicKeyPath, toPem('PUBLIC KEY', await crypto.subtle.exportKey('spki', sa.publicKey)));

  const get = (file: string): KeyPairFiles => {
    const found = files[file];
    if (found === undefined) throw new Error(`pki: ${file} was not issued`);
    return found;
  };
  return {
    dir,
    ca: caFiles,
    caPem: ca.cert.toString('pem') + '\n',
    apiserver: get('apiserver'),
    etcd: get('etcd'),
    apiserverEtcdClient: get('apiserver-etcd-client'),
    apiserverKubeletClient: get('apiserver-kubelet-client'),
    admin: get('admin'),
    controllerManager: get('kube-controller-manager'),
    scheduler: get('kube-scheduler'),
    serviceAccount,
  };
}

/**
 * Issues one more leaf certificate from a world's CA on disk (for parts that join a running world,
 * e.g. the real node's kubelet): `<dir>/<file>.crt` and `.key`.
 */
export async function issueFromWorldCa(pki: { readonly dir: string; readonly ca: KeyPairFiles }, file: string, options: LeafOptions): Promise<KeyPairFiles> {
  const cert = new x509.X509Certificate(readFileSync(pki.ca.certPath, 'utf8'));
  const der = Buffer.from(readFileSync(pki.ca.keyPath, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const privateKey = await crypto.subtle.importKey('pkcs8', der, ecdsa, true, ['sign']);
  const publicKey = await cert.publicKey.export(ecdsa, ['verify'], crypto);
  return writePair(pki.dir, file, await issue({ cert, keys: { privateKey, publicKey } }, options));
}
