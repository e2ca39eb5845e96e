import type { ChangesAnswer, ChangesRequest, PublishAnswer, PublishBatchAnswer, PublishBatchRequest, PublishRequest } from '../../broker/broker.protocol.ts';

/**
 * What the node plugin needs from the broker (the wire contract is `broker.protocol.ts`). The HTTP
 * client implements it; unit tests put an in-process fake behind it.
 */
export interface NodeBrokerPort {
  /** The file set of one binding for one pod. Throws {@link BrokerRefusal} or {@link BrokerUnreachable}. */
  publish(request: PublishRequest): Promise<PublishAnswer>;
  /**
   * The file sets of many volumes in one request (ADR 0224); a volume's refusal is in its result.
   * Throws {@link BrokerRefusal} (404 from a broker that predates the endpoint) or {@link BrokerUnreachable}.
   */
  publishBatch(request: PublishBatchRequest): Promise<PublishBatchAnswer>;
  /** Long poll: which of this node's volumes changed. Rejects when `signal` aborts. */
  changes(request: ChangesRequest, signal: AbortSignal): Promise<ChangesAnswer>;
}

/** The broker answered with a refusal (an HTTP error status and one reason of the closed list). */
export class BrokerRefusal extends Error {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, message: string) {
    super(`broker refused (${String(status)} ${reason}): ${message}`);
    this.name = 'BrokerRefusal';
    this.status = status;
    this.reason = reason;
  }

  /**
   * True when the broker says the pod is not (or no longer) entitled to the binding, or the
   * binding may not read its keys (as the change stream's revocation, ADR 0083): the volume is
   * emptied. Every other refusal may be transient (outage, token expiry) and keeps the files
   * (invariant 7).
   */
  get revokes(): boolean {
    return this.reason === 'NotEntitled' || this.reason === 'IdentityMismatch' || this.reason === 'AccessDenied';
  }
}

/** The broker could not be reached or answered something that is not the protocol. */
export class BrokerUnreachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BrokerUnreachable';
  }
}
