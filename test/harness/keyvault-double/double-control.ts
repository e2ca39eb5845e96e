/**
 * What tests see of the double besides the Key Vault API: request counts (`GET /_double/stats`)
 * and injected faults (`POST /_double/faults`). In memory only; a restart starts both afresh.
 */

/** Operations of the vault (Key Vault REST names) and of the token endpoints. */
export const vaultOperations = [
  'setSecret',
  'getSecret',
  'updateSecret',
  'listSecretVersions',
  'listSecrets',
  'deleteSecret',
  'getDeletedSecret',
  'listDeletedSecrets',
  'purgeDeletedSecret',
  'recoverDeletedSecret',
] as const;
export type VaultOperation = (typeof vaultOperations)[number];
export const tokenOperations = ['token', 'openidConfiguration', 'managedIdentityToken'] as const;
export type TokenOperation = (typeof tokenOperations)[number];
export type Operation = VaultOperation | TokenOperation | 'unsupported';

/** `POST /_double/faults` body. */
export interface FaultSpec {
  /** 429 (throttled, with Retry-After), 500 or 503. */
  readonly status: 429 | 500 | 503;
  /** Answer this many matching requests with the fault (default 1 when no duration is given). */
  readonly count?: number;
  /** Or: answer every matching request for this long. */
  readonly durationMs?: number;
  /** `Retry-After` header in seconds (default 1 for 429 and 503). */
  readonly retryAfterSeconds?: number;
  /** `vault` (default: Key Vault requests that passed authentication) or `token` (the token endpoints). */
  readonly target?: 'vault' | 'token';
  /** Only these operations (default: every operation of the target). */
  readonly operations?: readonly Operation[];
  /**
   * Only requests for these secret names (vault target; case-insensitive), so a test can inject
   * faults into a world other test files share.
   */
  readonly names?: readonly string[];
}

interface ActiveFault {
  readonly spec: FaultSpec;
  remaining: number | undefined;
  readonly until: number | undefined;
}

export interface Stats {
  readonly since: string;
  /** Every request by operation, including 401 challenges and faults. */
  readonly requests: Record<string, number>;
  /** Requests answered 2xx, by operation. */
  readonly succeeded: Record<string, number>;
  readonly statuses: Record<string, number>;
  /** Successful secret reads (getSecret) by secret name: never values. */
  readonly secretReads: Record<string, number>;
  /** Access tokens issued, by client id. */
  readonly tokensIssued: Record<string, number>;
  /** 401 answers carrying the challenge because no Authorization header was sent. */
  challenges: number;
  faultsServed: number;
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

export class DoubleControl {
  #stats: Stats = DoubleControl.#emptyStats();
  #faults: ActiveFault[] = [];

  static #emptyStats(): Stats {
    return {
      since: new Date().toISOString(),
      requests: {},
      succeeded: {},
      statuses: {},
      secretReads: {},
      tokensIssued: {},
      challenges: 0,
      faultsServed: 0,
    };
  }

  stats(): Stats {
    return this.#stats;
  }

  resetStats(): void {
    this.#stats = DoubleControl.#emptyStats();
  }

  recordRequest(operation: Operation): void {
    increment(this.#stats.requests, operation);
  }

  recordAnswer(operation: Operation, status: number): void {
    increment(this.#stats.statuses, String(status));
    if (status >= 200 && status < 300) increment(this.#stats.succeeded, operation);
  }

  recordSecretRead(name: string): void {
    increment(this.#stats.secretReads, name);
  }

  recordToken(clientId: string): void {
    increment(this.#stats.tokensIssued, clientId);
  }

  recordChallenge(): void {
    this.#stats.challenges += 1;
  }

  /** Validates and activates a fault; returns an error text for a bad spec. */
  addFault(input: unknown): string | undefined {
    if (typeof input !== 'object' || input === null) return 'body must be a JSON object';
    const { status, count, durationMs, retryAfterSeconds, target, operations, names } = input as Record<string, unknown>;
    if (status !== 429 && status !== 500 && status !== 503) return 'status must be 429, 500 or 503';
    if (count !== undefined && (typeof count !== 'number' || !Number.isInteger(count) || count < 1)) return 'count must be a positive integer';
    if (durationMs !== undefined && (typeof durationMs !== 'number' || durationMs <= 0)) return 'durationMs must be positive';
    if (retryAfterSeconds !== undefined && (typeof retryAfterSeconds !== 'number' || !Number.isInteger(retryAfterSeconds) || retryAfterSeconds < 0)) {
      return 'retryAfterSeconds must be a non-negative integer';
    }
    if (target !== undefined && target !== 'vault' && target !== 'token') return "target must be 'vault' or 'token'";
    const known: readonly unknown[] = [...vaultOperations, ...tokenOperations];
    if (operations !== undefined && (!Array.isArray(operations) || operations.some((o) => !known.includes(o)))) {
      return `operations must be a list of: ${known.join(', ')}`;
    }
    if (names !== undefined && (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))) {
      return 'names must be a list of secret names';
    }
    const spec = input as FaultSpec;
    const remaining = spec.count ?? (spec.durationMs === undefined ? 1 : undefined);
    this.#faults.push({ spec, remaining, until: spec.durationMs === undefined ? undefined : Date.now() + spec.durationMs });
    return undefined;
  }

  clearFaults(): void {
    this.#faults = [];
  }

  activeFaults(): readonly { spec: FaultSpec; remaining: number | undefined; until: string | undefined }[] {
    this.#expire();
    return this.#faults.map((f) => ({ spec: f.spec, remaining: f.remaining, until: f.until === undefined ? undefined : new Date(f.until).toISOString() }));
  }

  #expire(): void {
    const now = Date.now();
    this.#faults = this.#faults.filter((f) => (f.remaining === undefined || f.remaining > 0) && (f.until === undefined || f.until > now));
  }

  /** The fault this request gets, if any (and counts it down). `name`: the secret concerned, if any. */
  takeFault(target: 'vault' | 'token', operation: Operation, name = ''): FaultSpec | undefined {
    this.#expire();
    const fault = this.#faults.find(
      (f) =>
        (f.spec.target ?? 'vault') === target &&
        (f.spec.operations === undefined || f.spec.operations.includes(operation)) &&
        (f.spec.names === undefined || f.spec.names.some((n) => n.toLowerCase() === name.toLowerCase())),
    );
    if (fault === undefined) return undefined;
    if (fault.remaining !== undefined) fault.remaining -= 1;
    this.#stats.faultsServed += 1;
    return fault.spec;
  }
}
