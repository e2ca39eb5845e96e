import type { Reason } from '../api/v1alpha1/index.ts';

/** A refusal: the HTTP status, the reason from the closed list, and what to tell the caller and the audit. */
export class Denial extends Error {
  readonly status: number;
  readonly reason: Reason;
  constructor(status: number, reason: Reason, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** The HTTP status of a content failure: refusals are final, outages are retried by the caller. */
export function statusForReason(reason: Reason): number {
  switch (reason) {
    case 'AccessDenied':
    case 'NotEntitled':
      return 403;
    case 'BackendNotFound':
    case 'KeyNotFound':
    case 'PropertyNotFound':
      return 404;
    case 'InvalidSpec':
      return 422;
    default:
      // Outages, throttling, a backend not ready: the node plugin retries.
      return 503;
  }
}
