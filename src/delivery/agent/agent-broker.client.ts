import type { AgentChangesRequest, AgentPublishRequest } from '../../broker/agent.protocol.ts';
import type { ChangesAnswer, PublishAnswer } from '../../broker/broker.protocol.ts';
import { BrokerHttpClient, isChangesAnswer, isPublishAnswer, type BrokerHttpClientOptions } from '../csi/broker-http.client.ts';
import { BrokerUnreachable } from '../csi/broker.port.ts';

/** What the agent needs from the broker (ADR 0250); unit tests put an in-process fake behind it. */
export interface AgentBrokerPort {
  publish(request: AgentPublishRequest): Promise<PublishAnswer>;
  changes(request: AgentChangesRequest, signal: AbortSignal): Promise<ChangesAnswer>;
}

/**
 * {@link AgentBrokerPort} over HTTPS: the same transport as the node plugin's, with the pod's own
 * projected token (`tokenFile`) as the bearer token.
 */
export class AgentBrokerClient implements AgentBrokerPort {
  readonly #http: BrokerHttpClient;
  readonly #timeoutMs: number;

  constructor(options: BrokerHttpClientOptions) {
    this.#http = new BrokerHttpClient(options);
    this.#timeoutMs = options.timeoutMs;
  }

  async publish(request: AgentPublishRequest): Promise<PublishAnswer> {
    const answer = await this.#http.post('/v1/agent/publish', request, this.#timeoutMs, undefined);
    if (!isPublishAnswer(answer)) throw new BrokerUnreachable('broker answered /v1/agent/publish with an unexpected body');
    return answer;
  }

  async changes(request: AgentChangesRequest, signal: AbortSignal): Promise<ChangesAnswer> {
    const answer = await this.#http.post('/v1/agent/changes', request, this.#timeoutMs + request.waitSeconds * 1000, signal);
    if (!isChangesAnswer(answer)) throw new BrokerUnreachable('broker answered /v1/agent/changes with an unexpected body');
    return answer;
  }
}
