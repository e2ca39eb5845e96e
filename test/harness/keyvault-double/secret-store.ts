import { randomBytes } from 'node:crypto';

/**
 * The vault's secrets: versions, soft delete, and the Key Vault wire shapes built from them
 * (SecretBundle, SecretItem, DeletedSecretBundle). Plain data, so the server can persist it.
 */

/** A Key Vault error answer: `{"error":{"code","message","innererror"?}}` with an HTTP status. */
export class KeyVaultError extends Error {
  readonly status: number;
  readonly code: string;
  readonly innerCode: string | undefined;
  /** Response headers the answer needs (the authentication challenge of a 401). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, code: string, message: string, innerCode?: string, headers: Readonly<Record<string, string>> = {}) {
    super(message);
    this.name = 'KeyVaultError';
    this.status = status;
    this.code = code;
    this.innerCode = innerCode;
    this.headers = headers;
  }

  body(): { error: { code: string; message: string; innererror?: { code: string } } } {
    return {
      error: { code: this.code, message: this.message, ...(this.innerCode === undefined ? {} : { innererror: { code: this.innerCode } }) },
    };
  }
}

export interface SecretVersion {
  readonly version: string;
  readonly value: string;
  contentType: string | undefined;
  tags: Record<string, string> | undefined;
  enabled: boolean;
  nbf: number | undefined;
  exp: number | undefined;
  readonly created: number;
  updated: number;
}

export interface SecretEntry {
  readonly name: string;
  /** In creation order; the last one is the current version. */
  readonly versions: SecretVersion[];
  deleted: { readonly deletedDate: number; readonly scheduledPurgeDate: number } | undefined;
}

/** What a set or an update may carry besides the value (the request body's optional fields). */
export interface SecretProperties {
  readonly contentType?: string | undefined;
  readonly tags?: Record<string, string> | undefined;
  readonly enabled?: boolean | undefined;
  readonly nbf?: number | undefined;
  readonly exp?: number | undefined;
}

const recoveryLevel = 'Recoverable+Purgeable';
const recoverableDays = 90;
const namePattern = /^[0-9a-zA-Z-]{1,127}$/;
/** Key Vault's limit on a secret value: 25 KB. */
const maxValueLength = 25 * 1024;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A version id as Key Vault makes them: 32 lowercase hex digits. */
export function newVersionId(): string {
  return randomBytes(16).toString('hex');
}

export class SecretStore {
  readonly #secrets = new Map<string, SecretEntry>();

  constructor(initial: readonly SecretEntry[] = []) {
    for (const entry of initial) this.#secrets.set(entry.name.toLowerCase(), entry);
  }

  /** Everything, for persistence. */
  snapshot(): SecretEntry[] {
    return [...this.#secrets.values()];
  }

  static checkName(name: string): void {
    if (!namePattern.test(name)) {
      throw new KeyVaultError(400, 'BadParameter', `The secret name '${name}' is invalid: it must match ^[0-9a-zA-Z-]+$ and be 1-127 characters long.`);
    }
  }

  /** Key Vault names are case-insensitive; the first spelling is kept. */
  #entry(name: string): SecretEntry | undefined {
    return this.#secrets.get(name.toLowerCase());
  }

  #live(name: string): SecretEntry {
    const entry = this.#entry(name);
    if (entry === undefined || entry.deleted !== undefined) {
      throw new KeyVaultError(404, 'SecretNotFound', `A secret with (name/id) ${name} was not found in this key vault.`);
    }
    return entry;
  }

  #deletedEntry(name: string): SecretEntry & { deleted: NonNullable<SecretEntry['deleted']> } {
    const entry = this.#entry(name);
    if (entry?.deleted === undefined) {
      throw new KeyVaultError(404, 'SecretNotFound', `Deleted Secret not found: ${name}`);
    }
    return entry as SecretEntry & { deleted: NonNullable<SecretEntry['deleted']> };
  }

  set(name: string, value: string, properties: SecretProperties): { entry: SecretEntry; version: SecretVersion } {
    SecretStore.checkName(name);
    if (value.length > maxValueLength) {
      throw new KeyVaultError(400, 'BadParameter', `The secret value is too long: at most ${maxValueLength} characters.`);
    }
    let entry = this.#entry(name);
    if (entry?.deleted !== undefined) {
      throw new KeyVaultError(
        409,
        'Conflict',
        `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
        'ObjectIsDeletedButRecoverable',
      );
    }
    if (entry === undefined) {
      entry = { name, versions: [], deleted: undefined };
      this.#secrets.set(name.toLowerCase(), entry);
    }
    const now = nowSeconds();
    const version: SecretVersion = {
      version: newVersionId(),
      value,
      contentType: properties.contentType,
      tags: properties.tags,
      enabled: properties.enabled ?? true,
      nbf: properties.nbf,
      exp: properties.exp,
      created: now,
      updated: now,
    };
    entry.versions.push(version);
    return { entry, version };
  }

  /** A version (`''`: the current one) whose value may be read: disabled versions answer 403. */
  get(name: string, versionId: string): { entry: SecretEntry; version: SecretVersion } {
    const found = this.#version(name, versionId);
    if (!found.version.enabled) {
      throw new KeyVaultError(403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', 'SecretDisabled');
    }
    return found;
  }

  #version(name: string, versionId: string): { entry: SecretEntry; version: SecretVersion } {
    const entry = this.#live(name);
    const version =
      versionId === '' ? entry.versions.at(-1) : entry.versions.find((v) => v.version === versionId.toLowerCase());
    if (version === undefined) {
      throw new KeyVaultError(404, 'SecretNotFound', `A secret with (name/id) ${name}/${versionId} was not found in this key vault.`);
    }
    return { entry, version };
  }

  /** PATCH: content type, tags and attributes of one version (`''`: the current one). */
  update(name: string, versionId: string, properties: SecretProperties): { entry: SecretEntry; version: SecretVersion } {
    const found = this.#version(name, versionId);
    const v = found.version;
    if (properties.contentType !== undefined) v.contentType = properties.contentType;
    if (properties.tags !== undefined) v.tags = properties.tags;
    if (properties.enabled !== undefined) v.enabled = properties.enabled;
    if (properties.nbf !== undefined) v.nbf = properties.nbf;
    if (properties.exp !== undefined) v.exp = properties.exp;
    v.updated = nowSeconds();
    return found;
  }

  versions(name: string): { entry: SecretEntry; versions: readonly SecretVersion[] } {
    const entry = this.#live(name);
    return { entry, versions: entry.versions };
  }

  /** Live secrets, in name order. */
  list(): SecretEntry[] {
    return [...this.#secrets.values()].filter((e) => e.deleted === undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  listDeleted(): SecretEntry[] {
    return [...this.#secrets.values()].filter((e) => e.deleted !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Soft delete: every version goes to the deleted state, recoverable for 90 days. */
  delete(name: string): SecretEntry {
    const entry = this.#live(name);
    const now = nowSeconds();
    entry.deleted = { deletedDate: now, scheduledPurgeDate: now + recoverableDays * 86_400 };
    return entry;
  }

  getDeleted(name: string): SecretEntry {
    return this.#deletedEntry(name);
  }

  recover(name: string): SecretEntry {
    const entry: SecretEntry = this.#deletedEntry(name);
    entry.deleted = undefined;
    return entry;
  }

  purge(name: string): void {
    const entry = this.#deletedEntry(name);
    this.#secrets.delete(entry.name.toLowerCase());
  }
}

// --- Wire shapes -------------------------------------------------------------------------------

interface Attributes {
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
  recoveryLevel: string;
  recoverableDays: number;
}

function attributes(v: SecretVersion): Attributes {
  return {
    enabled: v.enabled,
    ...(v.nbf === undefined ? {} : { nbf: v.nbf }),
    ...(v.exp === undefined ? {} : { exp: v.exp }),
    created: v.created,
    updated: v.updated,
    recoveryLevel,
    recoverableDays,
  };
}

function optional(v: SecretVersion): { contentType?: string; tags?: Record<string, string> } {
  return {
    ...(v.contentType === undefined ? {} : { contentType: v.contentType }),
    ...(v.tags === undefined ? {} : { tags: v.tags }),
  };
}

/** SecretBundle: the value, `id` = `<vault>/secrets/<name>/<version>`, attributes. */
export function secretBundle(vaultUrl: string, entry: SecretEntry, v: SecretVersion, withValue: boolean): Record<string, unknown> {
  return {
    ...(withValue ? { value: v.value } : {}),
    id: `${vaultUrl}/secrets/${entry.name}/${v.version}`,
    attributes: attributes(v),
    ...optional(v),
  };
}

/** SecretItem of a version listing: no value. */
export function versionItem(vaultUrl: string, entry: SecretEntry, v: SecretVersion): Record<string, unknown> {
  return { id: `${vaultUrl}/secrets/${entry.name}/${v.version}`, attributes: attributes(v), ...optional(v) };
}

/** SecretItem of the secrets listing: `id` without a version, the current version's attributes. */
export function secretItem(vaultUrl: string, entry: SecretEntry): Record<string, unknown> {
  const current = entry.versions.at(-1);
  if (current === undefined) return { id: `${vaultUrl}/secrets/${entry.name}` };
  return { id: `${vaultUrl}/secrets/${entry.name}`, attributes: attributes(current), ...optional(current) };
}

/** DeletedSecretBundle (or, without the version's id, DeletedSecretItem). */
export function deletedBundle(vaultUrl: string, entry: SecretEntry, asItem: boolean): Record<string, unknown> {
  const current = entry.versions.at(-1);
  const deleted = entry.deleted;
  return {
    recoveryId: `${vaultUrl}/deletedsecrets/${entry.name}`,
    ...(deleted === undefined ? {} : { deletedDate: deleted.deletedDate, scheduledPurgeDate: deleted.scheduledPurgeDate }),
    ...(current === undefined
      ? { id: `${vaultUrl}/secrets/${entry.name}` }
      : {
          id: asItem ? `${vaultUrl}/secrets/${entry.name}` : `${vaultUrl}/secrets/${entry.name}/${current.version}`,
          attributes: attributes(current),
          ...optional(current),
        }),
  };
}
