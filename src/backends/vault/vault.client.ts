import nodeVault from 'node-vault';
import { VaultTransport } from './vault.transport.ts';

/**
 * node-vault, configured so that nothing comes from the process environment (it would otherwise
 * pick up VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_PREFIX and VAULT_SKIP_VERIFY), its debug
 * output (which prints request bodies: logins carry JWTs and secret ids) is off, and every request
 * runs on {@link VaultTransport} so an AbortSignal really stops it. Tokens are passed per request,
 * never stored on the shared client.
 */

export interface VaultRequestOptions {
  /** The Vault token for this request; omitted for logins. */
  readonly token?: string;
  readonly signal: AbortSignal;
}

/** The answers we read; Vault wraps payloads in `data` (secrets) or `auth` (logins). */
export interface VaultResponse {
  readonly data?: unknown;
  readonly auth?: unknown;
}

export class VaultClient {
  readonly #client: nodeVault.client;
  readonly #transport: VaultTransport;

  constructor(options: { readonly address: string; readonly namespace: string | undefined; readonly caPem: string | undefined }) {
    this.#transport = new VaultTransport(options.address, options.caPem);
    this.#client = nodeVault({
      apiVersion: 'v1',
      endpoint: options.address,
      // node-vault falls back to the environment for falsy values; the fields are reset below.
      token: 'unset',
      'request-promise': this.#transport.asRequestPromise(),
      debug: () => undefined,
    });
    const settable = this.#client as unknown as { token: string; namespace: string | undefined; pathPrefix: string };
    settable.token = '';
    settable.namespace = options.namespace;
    settable.pathPrefix = '';
  }

  /** GET `/v1/<path>`; `path` is already URL-encoded segment by segment (and may carry a query). */
  read(path: string, options: VaultRequestOptions): Promise<VaultResponse> {
    return this.#client.read(path, requestOptions(options)) as Promise<VaultResponse>;
  }

  /** POST `/v1/<path>` with a JSON body. */
  write(path: string, body: Readonly<Record<string, unknown>>, options: VaultRequestOptions): Promise<VaultResponse> {
    return this.#client.write(path, body, requestOptions(options)) as Promise<VaultResponse>;
  }

  /** LIST `/v1/<path>` (a folder). */
  list(path: string, options: VaultRequestOptions): Promise<VaultResponse> {
    return this.#client.list(path, requestOptions(options)) as Promise<VaultResponse>;
  }

  /** DELETE `/v1/<path>`. */
  delete(path: string, options: VaultRequestOptions): Promise<VaultResponse> {
    return this.#client.delete(path, requestOptions(options)) as Promise<VaultResponse>;
  }

  close(): void {
    this.#transport.close();
  }
}

function requestOptions(options: VaultRequestOptions): { headers: Record<string, string>; signal: AbortSignal } {
  return {
    headers: options.token === undefined ? {} : { 'X-Vault-Token': options.token },
    signal: options.signal,
  };
}

/** Encodes a secret path under a mount: each segment URL-encoded, unsafe segments refused. */
export function encodeSecretPath(key: string): string | undefined {
  if (key === '' || key.length > 1024 || key.startsWith('/') || key.endsWith('/')) return undefined;
  const segments = key.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.map(encodeURIComponent).join('/');
}
