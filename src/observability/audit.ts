import type { Writable } from 'node:stream';
import winston from 'winston';

/**
 * The audit channel: who received which secret files (by path, version and keyed content HMAC),
 * who was refused and why, and whose access ended; and every service-account token the controller
 * minted for a backend's login, or refused to mint (ADR 0150). It is a separate winston logger with its own
 * transport and no level filter, writing one JSON object per line marked `"audit": true` with a
 * schema id, so a collector can route it apart from the operational log (ADR 0052).
 *
 * Events never carry a value. The types admit strings, numbers and arrays/maps of strings only
 * (a SecretValue does not type-check), and {@link AuditLog} re-checks every event at run time and
 * throws on anything else, failing closed: a caller that audits before it answers never answers
 * with a value it could not audit.
 */

export const auditSchema = 'secretbinder.dev/audit/v1';

export interface AuditObjectRef {
  readonly namespace: string;
  readonly name: string;
}

export interface AuditPodRef extends AuditObjectRef {
  readonly uid: string;
}

/** Files of a binding were handed to a pod (by the broker, for the CSI node plugin or the agent). */
export interface DeliveredEvent {
  readonly binding: AuditObjectRef;
  readonly pod: AuditPodRef;
  readonly node: string;
  /** The containers that mount the volume (all listed by the binding). */
  readonly containers: readonly string[];
  /** Paths inside the volume. */
  readonly paths: readonly string[];
  /** Keyed HMAC of the delivered file set (see content-hmac.ts), never the content. */
  readonly contentHmac: string;
  /** Backend key → version delivered. */
  readonly backendVersions: Readonly<Record<string, string>>;
  /** Which delivery path asked: the CSI node plugin or the in-pod agent. */
  readonly via: 'csi' | 'agent';
}

/** A request for secret files was refused. */
export interface DeniedEvent {
  /** One reason from the project's closed list (UpperCamelCase, e.g. `PodNotOnNode`). */
  readonly reason: string;
  /** A short explanation fit for an operator; no values, no tokens. */
  readonly detail?: string;
  readonly binding?: AuditObjectRef;
  /** The pod the caller asked for, as far as it was named (the uid may be unknown). */
  readonly pod?: AuditObjectRef & { readonly uid?: string };
  readonly node?: string;
  /** The authenticated caller, e.g. `system:serviceaccount:ns:name`, when known. */
  readonly caller?: string;
  readonly via?: 'csi' | 'agent';
}

/** A pod lost access to a binding's files (binding deleted or changed, pod no longer selected). */
export interface RevokedEvent {
  readonly reason: string;
  readonly binding: AuditObjectRef;
  readonly pod: AuditPodRef;
  readonly node?: string;
  readonly paths?: readonly string[];
}

/** The backend a service-account token was (or was not) minted for. */
export interface AuditBackendRef {
  readonly kind: 'SecretBackend' | 'ClusterSecretBackend';
  /** Absent for a ClusterSecretBackend. */
  readonly namespace?: string;
  readonly name: string;
}

/** The controller minted a service-account token for a backend's login (ADR 0150). Never the token. */
export interface MintedEvent {
  readonly backend: AuditBackendRef;
  readonly serviceAccount: AuditObjectRef;
  readonly audiences: readonly string[];
  /** The URL the token is presented to. */
  readonly recipient: string;
  readonly expirationSeconds: number;
  /** RFC 3339. */
  readonly expiresAt: string;
}

/** The controller refused to mint a token for a backend; `reason` from the closed list. */
export interface MintRefusedEvent {
  readonly reason: string;
  readonly detail: string;
  readonly backend: AuditBackendRef;
  readonly serviceAccount: AuditObjectRef;
  readonly audiences: readonly string[];
  readonly recipient: string;
}

export interface AuditLog {
  delivered(event: DeliveredEvent): void;
  denied(event: DeniedEvent): void;
  revoked(event: RevokedEvent): void;
  minted(event: MintedEvent): void;
  mintRefused(event: MintRefusedEvent): void;
  /** Flushes and closes the transport (a file is closed; a passed-in stream is left open). */
  close(): Promise<void>;
}

export type AuditDestination =
  /** Appends JSON lines to a file (created if missing). */
  | { readonly kind: 'file'; readonly path: string }
  /** Writes JSON lines to a stream the caller owns (e.g. `process.stdout`, or a test buffer). */
  | { readonly kind: 'stream'; readonly stream: Writable };

export interface AuditLogOptions {
  readonly destination: AuditDestination;
  /** Clock for the `time` field; tests pin it. */
  readonly now?: () => Date;
}

export function createAuditLog(options: AuditLogOptions): AuditLog {
  const now = options.now ?? (() => new Date());
  const transport =
    options.destination.kind === 'file'
      ? new winston.transports.File({ filename: options.destination.path })
      : new winston.transports.Stream({ stream: options.destination.stream });
  const w = winston.createLogger({
    level: 'audit',
    levels: { audit: 0 },
    // No name-based redaction here: audit fields are identifiers (keys, paths) that auditors need
    // verbatim, and the type and run-time checks already keep values out. winston's own `level`
    // and `message` fields are dropped from the line.
    format: winston.format.combine(
      winston.format((info) => {
        delete (info as Partial<typeof info>).level;
        delete (info as Partial<typeof info>).message;
        return info;
      })(),
      winston.format.json(),
    ),
    // winston types its transports as interfaces with construct signatures (see logger.ts).
    transports: [transport],
    exitOnError: false,
  });
  let closed = false;

  const emit = (event: 'delivered' | 'denied' | 'revoked' | 'minted' | 'mintRefused', fields: object): void => {
    if (closed) throw new Error('audit log is closed');
    assertAuditSafe(fields, event);
    for (const reserved of ['audit', 'schema', 'event', 'time', 'level', 'message']) {
      if (reserved in fields) throw new TypeError(`audit ${event}: field ${reserved} is reserved`);
    }
    w.log({ level: 'audit', message: '', audit: true, schema: auditSchema, event, time: now().toISOString(), ...fields });
  };

  return {
    delivered: (event) => {
      emit('delivered', event);
    },
    denied: (event) => {
      emit('denied', event);
    },
    revoked: (event) => {
      emit('revoked', event);
    },
    minted: (event) => {
      emit('minted', event);
    },
    mintRefused: (event) => {
      emit('mintRefused', event);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        transport.once('finish', () => {
          resolve();
        });
        w.end();
      });
    },
  };
}

/**
 * Throws unless `value` is made only of strings, finite numbers, booleans, arrays and plain
 * objects. A SecretValue, bytes, an Error or any class instance is refused: the audit stream
 * must not be able to carry a value, even through a cast.
 */
export function assertAuditSafe(value: unknown, path = 'event'): void {
  if (typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`audit ${path}: numbers must be finite`);
    return;
  }
  if (value === undefined) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      assertAuditSafe(item, `${path}[${i}]`);
    });
    return;
  }
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value)) assertAuditSafe(item, `${path}.${key}`);
    return;
  }
  throw new TypeError(`audit ${path}: only strings, numbers, booleans, arrays and plain objects are allowed`);
}
