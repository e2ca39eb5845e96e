import { SecretClient, type KeyVaultSecret, type SecretClientOptions } from '@azure/keyvault-secrets';
import {
  AuthFailedError,
  InvalidConfigError,
  NotFoundError,
  type BackendContext,
  type BackendError,
  type CallOptions,
  type FetchOutcome,
  type FetchedSecret,
  type SecretBackend,
  type SecretRef,
  type VersionOutcome,
} from '../backend.port.ts';
import { SecretValue } from '../../observability/secret-value.ts';
import { mapWithConcurrency, throwIfAborted } from '../provider.support.ts';
import { azureCredential, tlsOptions, type AzureCredential } from './azure.auth.ts';
import type { AzureConfig } from './azure.config.ts';
import { mapAzureError } from './azure.errors.ts';

/**
 * Azure Key Vault secrets. One GET per document (Key Vault has no batch read), a few in flight.
 *
 * Key Vault stores text. A secret whose content type says it holds bytes —
 * `application/octet-stream` or `application/x-pkcs12` (how Key Vault exposes certificates) — and
 * whose value is base64 is returned decoded with `encoding: 'binary'`; a JSON object is `json`;
 * anything else `text`. The provider never guesses binary from the value alone (ADR 0065).
 *
 * The version check reads the secret and keeps only `properties.version`: Key Vault has no way
 * to get the current version id without the value short of listing every version ever created
 * (25 per page, unordered). The value is dropped unwrapped and unhashed (ADR 0064).
 *
 * The SDK's retries are off: throttling must reach the registry as ThrottledError.
 */

const concurrency = 8;
/** Content types under which Key Vault holds base64 of bytes. */
const binaryContentTypes = new Set(['application/octet-stream', 'application/x-pkcs12']);

export class AzureKeyVaultBackend implements SecretBackend {
  readonly provider = 'azureKeyVault' as const;
  readonly #client: SecretClient;
  readonly #credential: AzureCredential;

  constructor(config: AzureConfig, context: BackendContext, now?: () => number) {
    this.#credential = azureCredential(config, context, now);
    const options: SecretClientOptions = {
      retryOptions: { maxRetries: 0 },
      // The challenge names the resource to get a token for; Key Vault's own domains are checked
      // against it. Only a vault on loopback (an emulator next to the controller) is exempt.
      disableChallengeResourceVerification: isLoopback(config.vaultUrl),
      ...(config.serviceVersion === undefined ? {} : { serviceVersion: config.serviceVersion as SecretClientOptions['serviceVersion'] }),
      ...tlsOptions(config.caPem),
    };
    this.#client = new SecretClient(config.vaultUrl, this.#credential.credential, options);
  }

  async fetch(refs: readonly SecretRef[], options: CallOptions): Promise<FetchOutcome[]> {
    const signal = options.signal;
    throwIfAborted(signal, 'Azure Key Vault fetch');
    return mapWithConcurrency(refs, concurrency, async (ref): Promise<FetchOutcome> => {
      const invalid = invalidRef(ref);
      if (invalid !== undefined) return { ok: false, ref, error: invalid };
      const got = await this.#get(ref, signal);
      if (!got.ok) return got;
      return toOutcome(ref, got.secret);
    });
  }

  async versions(refs: readonly SecretRef[], options: CallOptions): Promise<VersionOutcome[]> {
    const signal = options.signal;
    throwIfAborted(signal, 'Azure Key Vault version check');
    return mapWithConcurrency(refs, concurrency, async (ref): Promise<VersionOutcome> => {
      const invalid = invalidRef(ref);
      if (invalid !== undefined) return { ok: false, ref, error: invalid };
      // A version id is immutable: the pin is the version.
      if (ref.version.kind === 'id') return { ok: true, ref, version: ref.version.id };
      const got = await this.#get(ref, signal);
      if (!got.ok) return got;
      const version = got.secret.properties.version;
      if (version === undefined || version === '') return { ok: false, ref, error: new NotFoundError(`Azure secret "${ref.key}": answer without a version`) };
      return { ok: true, ref, version };
    });
  }

  async checkConnectivity(options: CallOptions): Promise<void> {
    throwIfAborted(options.signal, 'Azure Key Vault connectivity check');
    // A token and an authorized call: a secret that cannot exist must answer NotFound.
    try {
      await this.#client.getSecret('secret-binder-connectivity-check', { abortSignal: options.signal });
    } catch (error) {
      const mapped = mapAzureError(error, { operation: 'connectivity check', signal: options.signal, credentials: this.#credential.known() });
      if (mapped instanceof NotFoundError) return;
      throw mapped;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** One GET; errors about this secret are returned, errors about the backend throw. */
  async #get(ref: SecretRef, signal: AbortSignal): Promise<{ ok: true; secret: KeyVaultSecret } | { ok: false; ref: SecretRef; error: BackendError }> {
    try {
      const secret = await this.#client.getSecret(ref.key, {
        abortSignal: signal,
        ...(ref.version.kind === 'id' ? { version: ref.version.id } : {}),
      });
      return { ok: true, secret };
    } catch (error) {
      const mapped = mapAzureError(error, { operation: 'get', key: ref.key, signal, credentials: this.#credential.known() });
      const status = (error as { statusCode?: unknown } | null)?.statusCode;
      // 401 means our token; 403 and the rest of 4xx mean this secret (per-secret RBAC, disabled).
      const perRef = (mapped instanceof NotFoundError || mapped instanceof InvalidConfigError || mapped instanceof AuthFailedError) && status !== 401 && typeof status === 'number';
      if (!perRef) throw mapped;
      return { ok: false, ref, error: mapped };
    }
  }
}

function toOutcome(ref: SecretRef, secret: KeyVaultSecret): FetchOutcome {
  const version = secret.properties.version;
  if (version === undefined || version === '') return { ok: false, ref, error: new NotFoundError(`Azure secret "${ref.key}": answer without a version`) };
  const text = secret.value ?? '';
  const contentType = (secret.properties.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  let fetched: FetchedSecret;
  if (binaryContentTypes.has(contentType) && isBase64(text)) {
    fetched = { ref, value: SecretValue.fromBytes(Buffer.from(text.replace(/\s+/g, ''), 'base64')), version, encoding: 'binary' };
  } else {
    fetched = { ref, value: SecretValue.fromString(text), version, encoding: isJsonObject(text) ? 'json' : 'text' };
  }
  return { ok: true, secret: fetched };
}

function isBase64(text: string): boolean {
  const compact = text.replace(/\s+/g, '');
  return compact.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(compact);
}

function isJsonObject(text: string): boolean {
  if (!text.trimStart().startsWith('{')) return false;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  } catch {
    return false;
  }
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function invalidRef(ref: SecretRef): InvalidConfigError | undefined {
  if (!/^[0-9A-Za-z-]{1,127}$/.test(ref.key)) {
    return new InvalidConfigError(`Azure Key Vault secret name "${ref.key.slice(0, 130)}" is invalid (1-127 letters, digits, dashes)`);
  }
  if (ref.version.kind === 'stage') return new InvalidConfigError('Azure Key Vault has no version stages; pin a version id instead');
  if (ref.version.kind === 'id' && !/^[0-9A-Za-z]{32}$/.test(ref.version.id)) {
    return new InvalidConfigError(`Azure Key Vault version "${ref.version.id.slice(0, 40)}" is not a version id (32 letters/digits)`);
  }
  return undefined;
}
