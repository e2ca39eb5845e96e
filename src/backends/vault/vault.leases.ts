import { InvalidConfigError, NotFoundError, type CallOptions } from '../backend.port.ts';
import type { IssuedLease, LeasingBackend, SignedCertificate, SignRequest } from '../leasing.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { throwIfAborted } from '../provider.support.ts';
import type { VaultSession } from './vault.auth.ts';
import { encodeSecretPath, type VaultClient, type VaultResponse } from './vault.client.ts';
import { mapVaultError, type VaultOperation } from './vault.errors.ts';

/** Where lease records live in the backend's KV mount (ADR 0260). */
export const leaseRecordPrefix = 'secret-binder/leases';

/**
 * Dynamic secrets on Vault / OpenBao: any endpoint that answers with a lease (database, AWS,
 * RabbitMQ engines…), renewed and revoked through `sys/leases/*`, and the controller's lease
 * records in the backend's KV mount under {@link leaseRecordPrefix}. Lease ids are passed to the
 * error mapping as credentials, so no message ever carries one.
 */
export class VaultLeases implements LeasingBackend {
  readonly #client: VaultClient;
  readonly #session: VaultSession;
  readonly #mount: string;
  readonly #kvVersion: 1 | 2;

  constructor(client: VaultClient, session: VaultSession, mount: string, kvVersion: 1 | 2) {
    this.#client = client;
    this.#session = session;
    this.#mount = mount;
    this.#kvVersion = kvVersion;
  }

  async issue(path: string, parameters: Readonly<Record<string, string>> | undefined, options: CallOptions): Promise<IssuedLease> {
    const encoded = encodeSecretPath(path);
    if (encoded === undefined) throw new InvalidConfigError(`"${path.slice(0, 200)}" is not a valid OpenBao path`);
    const answer = (await this.#call('lease issue', path, options, (token) =>
      parameters === undefined ? this.#client.read(encoded, { token, signal: options.signal }) : this.#client.write(encoded, { ...parameters }, { token, signal: options.signal }),
    )) as VaultResponse & { lease_id?: unknown; lease_duration?: unknown; renewable?: unknown };
    const leaseId = typeof answer.lease_id === 'string' ? answer.lease_id : '';
    if (leaseId === '' || typeof answer.data !== 'object' || answer.data === null) {
      throw new InvalidConfigError(`OpenBao answered ${path} without a lease; dynamic needs an endpoint that issues leased credentials`);
    }
    return {
      leaseId: SecretValue.fromString(leaseId),
      data: SecretValue.fromString(JSON.stringify(answer.data)),
      leaseDurationSeconds: typeof answer.lease_duration === 'number' ? answer.lease_duration : 0,
      renewable: answer.renewable === true,
    };
  }

  async renew(leaseId: SecretValue, incrementSeconds: number, options: CallOptions): Promise<{ readonly leaseDurationSeconds: number }> {
    const id = leaseId.revealText();
    const answer = (await this.#call('lease renewal', undefined, options, (token) =>
      this.#client.write('sys/leases/renew', { lease_id: id, increment: incrementSeconds }, { token, signal: options.signal }), [id],
    )) as { lease_duration?: unknown };
    return { leaseDurationSeconds: typeof answer.lease_duration === 'number' ? answer.lease_duration : 0 };
  }

  async revoke(leaseId: SecretValue, options: CallOptions): Promise<void> {
    const id = leaseId.revealText();
    await this.#call('lease revocation', undefined, options, (token) => this.#client.write('sys/leases/revoke', { lease_id: id }, { token, signal: options.signal }), [id]);
  }

  async sign(request: SignRequest, options: CallOptions): Promise<SignedCertificate> {
    const mount = encodeSecretPath(request.mount);
    const role = encodeSecretPath(request.role);
    if (mount === undefined || role === undefined || role.includes('/')) throw new InvalidConfigError(`invalid PKI mount or role "${request.mount}/${request.role}"`);
    const answer = await this.#call('certificate signing', `${request.mount}/sign/${request.role}`, options, (token) =>
      this.#client.write(
        `${mount}/sign/${role}`,
        {
          csr: request.csrPem,
          common_name: request.commonName,
          ...(request.dnsNames.length === 0 ? {} : { alt_names: request.dnsNames.join(',') }),
          ...(request.uriSans.length === 0 ? {} : { uri_sans: request.uriSans.join(',') }),
          ...(request.ttl === undefined ? {} : { ttl: request.ttl }),
          format: 'pem',
        },
        { token, signal: options.signal },
      ),
    );
    const data = (answer.data ?? {}) as { certificate?: unknown; issuing_ca?: unknown; ca_chain?: unknown; serial_number?: unknown; expiration?: unknown };
    if (typeof data.certificate !== 'string' || typeof data.serial_number !== 'string' || typeof data.expiration !== 'number') {
      throw new InvalidConfigError(`OpenBao answered ${request.mount}/sign/${request.role} without a certificate`);
    }
    const chain = Array.isArray(data.ca_chain) ? data.ca_chain.filter((c): c is string => typeof c === 'string') : [];
    return {
      certificatePem: data.certificate,
      caChainPem: chain.length > 0 ? chain : typeof data.issuing_ca === 'string' ? [data.issuing_ca] : [],
      serialNumber: data.serial_number,
      expiresAt: data.expiration * 1000,
    };
  }

  async revokeCertificate(mount: string, serialNumber: string, options: CallOptions): Promise<void> {
    const encoded = encodeSecretPath(mount);
    if (encoded === undefined) throw new InvalidConfigError(`invalid PKI mount "${mount}"`);
    await this.#call('certificate revocation', mount, options, (token) => this.#client.write(`${encoded}/revoke`, { serial_number: serialNumber }, { token, signal: options.signal }));
  }

  async readRecord(key: string, options: CallOptions): Promise<SecretValue | undefined> {
    try {
      const answer = await this.#call('lease record', key, options, (token) => this.#client.read(this.#recordPath(key, 'data'), { token, signal: options.signal }));
      const data = (this.#kvVersion === 2 ? (answer.data as { data?: unknown } | undefined)?.data : answer.data) as { record?: unknown } | null | undefined;
      return typeof data?.record === 'string' ? SecretValue.fromString(data.record) : undefined;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  async writeRecord(key: string, value: SecretValue, options: CallOptions): Promise<void> {
    const body = { record: value.revealText() };
    await this.#call('lease record', key, options, (token) =>
      this.#client.write(this.#recordPath(key, 'data'), this.#kvVersion === 2 ? { data: body } : body, { token, signal: options.signal }),
    );
  }

  async deleteRecord(key: string, options: CallOptions): Promise<void> {
    try {
      await this.#call('lease record', key, options, (token) => this.#client.delete(this.#recordPath(key, 'metadata'), { token, signal: options.signal }));
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }

  async listRecords(prefix: string, options: CallOptions): Promise<string[]> {
    try {
      const answer = await this.#call('lease record', prefix, options, (token) => this.#client.list(this.#recordPath(prefix, 'metadata'), { token, signal: options.signal }));
      const keys = (answer.data as { keys?: unknown } | undefined)?.keys;
      return Array.isArray(keys) ? keys.filter((k): k is string => typeof k === 'string') : [];
    } catch (error) {
      if (error instanceof NotFoundError) return [];
      throw error;
    }
  }

  #recordPath(key: string, kind: 'data' | 'metadata'): string {
    const trimmed = key.replace(/\/+$/, '');
    const encoded = trimmed === '' ? leaseRecordPrefix : encodeSecretPath(`${leaseRecordPrefix}/${trimmed}`);
    if (encoded === undefined) throw new InvalidConfigError(`invalid lease record key "${key.slice(0, 200)}"`);
    return this.#kvVersion === 2 ? `${this.#mount}/${kind}/${encoded}` : `${this.#mount}/${encoded}`;
  }

  /** One call with the session's token; a refused token is dropped so the next call logs in again. */
  async #call(operation: VaultOperation, path: string | undefined, options: CallOptions, call: (token: string) => Promise<VaultResponse | undefined>, credentials: readonly string[] = []): Promise<VaultResponse> {
    throwIfAborted(options.signal, `Vault ${operation}`);
    const token = await this.#session.token(options.signal);
    try {
      // A 204 (revoke, delete) answers with no body.
      return (await call(token.revealText())) ?? {};
    } catch (error) {
      const mapped = mapVaultError(error, { operation, ...(path === undefined ? {} : { path }), signal: options.signal, credentials: [token.revealText(), ...credentials] });
      if (mapped.kind === 'AuthFailed') this.#session.invalidate(token);
      throw mapped;
    }
  }
}
