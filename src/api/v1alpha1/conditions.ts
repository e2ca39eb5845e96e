import { CredentialsNotFoundError, TokenRefusedError, type BackendError, type BackendErrorKind } from '../../backends/backend.port.ts';

/**
 * Conditions and the one closed list of reasons. Condition reasons, Event reasons and the `reason`
 * label of metrics all come from {@link reasons}, so a grep finds every user-visible cause and the
 * metric label set stays bounded.
 */

/** The condition types our resources carry. */
export const conditionTypes = [
  /** The object does its job: a backend can be read, a binding's files are served. */
  'Ready',
  /** The object works, but not fully: last-known-good content, stale consumers, throttling. */
  'Degraded',
] as const;
export type ConditionType = (typeof conditionTypes)[number];

export const conditionStatuses = ['True', 'False', 'Unknown'] as const;
export type ConditionStatus = (typeof conditionStatuses)[number];

/** Every reason secret-binder reports, with what it means. Keep it closed and CamelCase. */
export const reasons = [
  // --- Healthy / progressing
  /** Everything converged (Ready=True, Degraded=False). */
  'Reconciled',

  // --- Configuration (not retried until the spec or a referenced object changes)
  /** The spec is invalid beyond what the CRD schema can check (e.g. a provider refused its block). */
  'InvalidSpec',
  /** A backend the binding names (backendRef or an entry of backends) does not exist. */
  'BackendNotFound',
  /** The referenced backend exists but is not Ready. */
  'BackendNotReady',
  /** A ClusterSecretBackend's access rules do not admit the namespace or a key. */
  'AccessDenied',
  /** A Secret or service account the backend's auth refers to does not exist. */
  'CredentialsNotFound',

  // --- Service-account token minting (ADR 0150; not retried until the spec or the account changes)
  /** The token audience is empty, the broker's, or one of the API server's own audiences. */
  'AudienceNotAllowed',
  /** The service account does not name this backend in its `secretbinder.dev/backends` annotation. */
  'ServiceAccountNotOptedIn',
  /** The service account is the controller's or the node plugin's own; tokens are never minted for them. */
  'ServiceAccountReserved',
  /** The address that would receive the token is not https (plain http only to loopback, behind a flag). */
  'InsecureTokenEndpoint',

  // --- Backend answers
  /** A key (or a pinned version of it) does not exist in the backend. */
  'KeyNotFound',
  /** The secret exists but is not JSON, or lacks the requested property. */
  'PropertyNotFound',
  /** The backend refused the credentials or the read (login failed, permission denied). */
  'AuthFailed',
  /** The backend rate-limited us; calls are retried within the rate budget. */
  'Throttled',
  /** The backend could not be reached or failed (timeouts, 5xx). */
  'BackendUnavailable',

  // --- Consumers and rotation (Events, Degraded)
  /** The binding's content changed (a new content HMAC): an Event, whatever the rotation strategy. */
  'Rotated',
  /** A rolling restart of a consuming workload was triggered by a content change. */
  'RestartTriggered',
  /** A consuming workload could not be restarted (e.g. it is not a Deployment, StatefulSet or DaemonSet). */
  'RestartFailed',

  // --- Admission and the broker (Events, audit, metrics)
  /** A pod mounts a bound volume from a container the binding does not list (the webhook's refusal starts with it). */
  'ContainerNotAllowed',
  /** A container mounts a bound volume with subPath; such mounts never update (the webhook's warning starts with it). */
  'SubPathMount',
  /** A broker caller's token was not valid (TokenReview failed or wrong audience). */
  'Unauthenticated',
  /** The caller is not the pod it asks for, or the pod is not on the caller's node. */
  'IdentityMismatch',
  /** The pod is not entitled to the binding (selector, service account or container mismatch). */
  'NotEntitled',
  /** An agent container exited with an error (broker unreachable, refused): its termination message as a pod Event (ADR 0250). */
  'AgentFailed',

  /** An unexpected error; retried with backoff. */
  'InternalError',
] as const;
export type Reason = (typeof reasons)[number];

const reasonSet: ReadonlySet<string> = new Set(reasons);

/** Whether a string (e.g. read back from a status) is one of our reasons. */
export function isReason(value: string): value is Reason {
  return reasonSet.has(value);
}

/**
 * The reason for a failure a backend port reported; `credentialsMissing` for an AuthFailed whose
 * cause is on our side (the backend's credentials Secret or service account is missing).
 */
export function reasonForBackendError(kind: BackendErrorKind, credentialsMissing = false): Reason {
  switch (kind) {
    case 'NotFound':
      return 'KeyNotFound';
    case 'AuthFailed':
      return credentialsMissing ? 'CredentialsNotFound' : 'AuthFailed';
    case 'Throttled':
      return 'Throttled';
    case 'Unavailable':
      return 'BackendUnavailable';
    case 'InvalidConfig':
      return 'InvalidSpec';
  }
}

/**
 * The reason for a failure a backend reported: a refused token request names its own reason
 * (ADR 0150), any other error the reason of its kind.
 */
export function reasonForError(error: BackendError): Reason {
  if (error instanceof TokenRefusedError) return error.refusal;
  return reasonForBackendError(error.kind, error instanceof CredentialsNotFoundError);
}

/**
 * A status condition: the standard metav1.Condition shape, as every CRD status schema in `crds/`
 * declares it (the generated types use this interface). Times are RFC 3339 strings.
 */
export interface Condition {
  /** Type of the condition, e.g. Ready or Degraded. */
  type: string;
  /** Status of the condition, one of True, False, Unknown. */
  status: ConditionStatus;
  /** The metadata.generation the condition was set for. */
  observedGeneration?: number;
  /** When the condition last changed status (RFC 3339). */
  lastTransitionTime: string;
  /** A CamelCase machine-readable cause, from {@link reasons}. */
  reason: string;
  /** A human-readable explanation. Never contains secret values. */
  message: string;
}

/** What a reconciler says about one condition; the helpers add the transition time. */
export interface ConditionUpdate {
  readonly type: ConditionType;
  readonly status: ConditionStatus;
  readonly reason: Reason;
  readonly message: string;
  readonly observedGeneration?: number;
}

/** The longest message a condition keeps (the CRD schema allows 32768; status stays small). */
export const maxConditionMessageLength = 1024;

/** RFC 3339 with second precision, as the API server stores metav1.Time. */
export function formatConditionTime(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function truncate(message: string): string {
  if (message.length <= maxConditionMessageLength) return message;
  return `${message.slice(0, maxConditionMessageLength - 1)}…`;
}

/**
 * Returns the conditions with `update` set: an existing condition of the same type is replaced in
 * place (others keep their order), a new one is appended. The transition time is kept when the
 * status did not change, so setting the same condition twice yields an equal array. Pure: the
 * input is not modified.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
): Condition[] {
  const current = conditions ?? [];
  const previous = current.find((c) => c.type === update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    ...(update.observedGeneration === undefined ? {} : { observedGeneration: update.observedGeneration }),
    lastTransitionTime:
      previous !== undefined && previous.status === update.status
        ? previous.lastTransitionTime
        : formatConditionTime(now),
    reason: update.reason,
    message: truncate(update.message),
  };
  if (previous === undefined) return [...current.map(copyCondition), next];
  return current.map((c) => (c.type === update.type ? next : copyCondition(c)));
}

/** {@link setCondition} for several updates, applied in order. */
export function setConditions(
  conditions: readonly Condition[] | undefined,
  updates: readonly ConditionUpdate[],
  now: Date,
): Condition[] {
  let result = (conditions ?? []).map(copyCondition);
  for (const update of updates) result = setCondition(result, update, now);
  return result;
}

/** Returns the conditions without the given type. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type).map(copyCondition);
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: ConditionType,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: ConditionType): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * Whether two condition lists say the same thing, field by field and ignoring order. A reconciler
 * compares the current and the computed conditions and skips the status write when they are equal.
 */
export function conditionsEqual(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  return left.every((x) => {
    const y = right.find((c) => c.type === x.type);
    return y !== undefined && conditionEqual(x, y);
  });
}

function conditionEqual(a: Condition, b: Condition): boolean {
  return (
    a.type === b.type &&
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.lastTransitionTime === b.lastTransitionTime &&
    a.observedGeneration === b.observedGeneration
  );
}

function copyCondition(c: Condition): Condition {
  return { ...c };
}
