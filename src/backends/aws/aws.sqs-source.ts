import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { ChangeNoticeSink, ChangeNoticeSource } from '../change-notice.port.ts';
import { InputBudget } from '../notices/input-budget.ts';
import type { Logger } from '../../observability/logger.ts';
import { backoffDelay } from '../../runtime/rate-limiter.ts';
import { sleep, type Clock } from '../../runtime/clock.ts';
import type { AwsCredentialIdentityProvider } from './aws.auth.ts';
import { parseChangeEvent } from './aws.change-event.ts';
import { mapAwsError } from './aws.errors.ts';

/**
 * The AWS Secrets Manager change-notice source (ADR 0222): long-polls an SQS queue that an
 * EventBridge rule on `aws.secretsmanager` CloudTrail events feeds, with the credentials of the
 * backend it serves. Every message is deleted once read — a change, an ignored event or a
 * malformed body alike — so nothing is redelivered forever; polling covers anything lost.
 * Messages over `maxMessagesPerSecond` are deleted unparsed. A failing receive marks the source
 * down and is retried with backoff (1 s doubling to 60 s); it never stops the controller.
 */
export interface AwsSqsSourceOptions {
  readonly queueUrl: string;
  readonly region: string;
  /** SQS endpoint override (the backend's endpoint, for emulators); undefined: AWS's. */
  readonly endpoint: string | undefined;
  /** The backend's credentials; undefined: the SDK's default chain. */
  readonly credentials: AwsCredentialIdentityProvider | undefined;
  /** Long-poll wait (1–20 s). */
  readonly waitSeconds: number;
  readonly maxMessagesPerSecond: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

export class AwsSqsSource implements ChangeNoticeSource {
  readonly kind = 'awsSqs';
  readonly #options: AwsSqsSourceOptions;
  readonly #budget: InputBudget;

  constructor(options: AwsSqsSourceOptions) {
    this.#options = options;
    this.#budget = new InputBudget(options.maxMessagesPerSecond, options.clock);
  }

  async start(sink: ChangeNoticeSink, signal: AbortSignal): Promise<void> {
    const { queueUrl, region, endpoint, credentials, waitSeconds, clock, logger } = this.#options;
    const client = new SQSClient({
      region,
      maxAttempts: 1,
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(credentials === undefined ? {} : { credentials }),
      requestHandler: { connectionTimeout: 10_000, requestTimeout: (waitSeconds + 10) * 1000 },
    });
    const stopped = (): boolean => signal.aborted;
    let failures = 0;
    let up: boolean | undefined;
    const report = (now: boolean): void => {
      if (up !== now) sink.up(this.kind, now);
      up = now;
    };
    try {
      while (!signal.aborted) {
        let messages;
        try {
          const answer = await client.send(
            new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }),
            { abortSignal: signal },
          );
          messages = answer.Messages ?? [];
        } catch (error) {
          if (stopped()) break;
          report(false);
          failures++;
          // Mapped: the message names the operation and the error kind, never credentials.
          logger.warn('sqs receive failed; polling covers changes meanwhile', { error: mapAwsError(error, { operation: 'ReceiveMessage' }).message, attempt: failures });
          await sleep(clock, backoffDelay(failures, { baseMs: 1000, capMs: 60_000, jitter: 0.2, random: Math.random }), signal);
          continue;
        }
        failures = 0;
        report(true);
        if (messages.length === 0) continue;
        for (const message of messages) this.#handle(message.Body, sink);
        const entries = messages.flatMap((m, i) => (m.ReceiptHandle === undefined ? [] : [{ Id: String(i), ReceiptHandle: m.ReceiptHandle }]));
        if (entries.length > 0) {
          await client.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }), { abortSignal: signal }).catch((error: unknown) => {
            // Redelivered after the visibility timeout: at worst one more check each.
            if (!stopped()) logger.warn('sqs delete failed', { error: mapAwsError(error, { operation: 'DeleteMessageBatch' }).message });
          });
        }
      }
    } finally {
      client.destroy();
      report(false);
    }
  }

  #handle(body: string | undefined, sink: ChangeNoticeSink): void {
    if (!this.#budget.take()) {
      sink.rejected(this.kind, 'rateLimited');
      return;
    }
    if (body === undefined || body.length > 256 * 1024) {
      sink.rejected(this.kind, body === undefined ? 'malformed' : 'oversized');
      return;
    }
    const meaning = parseChangeEvent(body);
    if (meaning.kind === 'malformed') sink.rejected(this.kind, 'malformed');
    else if (meaning.kind === 'ignored') sink.ignored(this.kind);
    else for (const key of meaning.keys) sink.notice(this.kind, { provider: 'awsSecretsManager', scope: meaning.region, key });
  }
}
