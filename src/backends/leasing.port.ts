import type { SecretValue } from '../observability/secret-value.ts';
import type { CallOptions } from './backend.port.ts';

/**
 * Dynamic secrets (issue 21): what the domain needs of a store that issues leased credentials —
 * issue, renew, revoke — and of a small record store in the same backend, where the controller keeps
 * what it issued (ADR 0260). Only `vault` implements it. Lease ids and records are {@link SecretValue}s:
 * a lease id lets whoever holds it (with a suitable token) renew or revoke the credential, and a
 * record holds the credential itself.
 */
export interface LeasingBackend {
  /** Requests a credential at `path` (GET, or POST with `parameters`). */
  issue(path: string, parameters: Readonly<Record<string, string>> | undefined, options: CallOptions): Promise<IssuedLease>;
  /** Extends the lease by up to `incrementSeconds`; the store caps the answer at the lease's max TTL. */
  renew(leaseId: SecretValue, incrementSeconds: number, options: CallOptions): Promise<{ readonly leaseDurationSeconds: number }>;
  /** Revokes the lease (the store deletes the credential, e.g. drops the database role). Revoking an unknown or expired lease succeeds. */
  revoke(leaseId: SecretValue, options: CallOptions): Promise<void>;
  /**
   * Signs a certificate signing request through `<mount>/sign/<role>` with the names given (the CSR
   * carries only the public key that matters; the names of the request are the binding's).
   */
  sign(request: SignRequest, options: CallOptions): Promise<SignedCertificate>;
  /** Revokes a certificate by serial number (`<mount>/revoke`); an unknown or expired one succeeds. */
  revokeCertificate(mount: string, serialNumber: string, options: CallOptions): Promise<void>;
  /** A record under the controller's prefix (`secret-binder/leases/` in the KV mount); undefined when absent. */
  readRecord(key: string, options: CallOptions): Promise<SecretValue | undefined>;
  writeRecord(key: string, value: SecretValue, options: CallOptions): Promise<void>;
  /** Deletes every version of the record; deleting an absent record succeeds. */
  deleteRecord(key: string, options: CallOptions): Promise<void>;
  /** The names directly under `prefix` (folders end with `/`); empty when there are none. */
  listRecords(prefix: string, options: CallOptions): Promise<string[]>;
}

export interface SignRequest {
  readonly mount: string;
  readonly role: string;
  readonly csrPem: string;
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly uriSans: readonly string[];
  /** Go duration, e.g. 24h; the role's default when absent. */
  readonly ttl?: string;
}

/** A signed certificate: PEMs (public material) and its serial number and end. */
export interface SignedCertificate {
  readonly certificatePem: string;
  /** The issuing CA and the chain above the certificate, leaf's issuer first. */
  readonly caChainPem: readonly string[];
  readonly serialNumber: string;
  /** Epoch ms of notAfter. */
  readonly expiresAt: number;
}

/** A credential as issued: its lease and its data (the JSON of the response's `data` map). */
export interface IssuedLease {
  readonly leaseId: SecretValue;
  readonly data: SecretValue;
  readonly leaseDurationSeconds: number;
  readonly renewable: boolean;
}
