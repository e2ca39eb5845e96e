import type { ProviderName } from './backend.port.ts';

/**
 * The change-notification port, beside the backend port (ADR 0220). A provider may offer a stream
 * of "key K changed" notices: an OpenBao audit device, an SQS queue of CloudTrail events, an Event
 * Grid subscription. A notice never carries a value — only where a document lives — and all it
 * can cause is an early version check of keys that bindings use, deduplicated and within the
 * backend's rate budget. Polling stays on at every binding's interval: a lost, late or forged
 * notice changes when a change is seen, never what is delivered.
 */

/** The kinds of notice source, a closed list: a metric label and a flag prefix. */
export const noticeSourceKinds = ['vaultAudit', 'vaultEvents', 'awsSqs', 'azureEventGrid'] as const;
export type NoticeSourceKind = (typeof noticeSourceKinds)[number];

/** How a change was detected: the closed `source` label of the detection metrics. */
export const detectionSources = ['poll', 'event'] as const;
export type DetectionSource = (typeof detectionSources)[number];

/**
 * "The document `key` in `scope` of a `provider` store changed." Scope names the store the way a
 * backend spec does: the Vault KV mount (`secret`), the AWS region (`eu-west-1`), the Key Vault's
 * host (`myvault.vault.azure.net`). Keys are as bindings write them (Vault: the path under the
 * mount; AWS: the secret name — or its ARN, sent as a second notice; Azure: the secret name).
 */
export interface ChangeNotice {
  readonly provider: ProviderName;
  readonly scope: string;
  readonly key: string;
}

/** Why a source dropped an input without making a notice of it: a closed list (metric label). */
export const noticeRejections = [
  /** Not parseable as the source's format (bad JSON, wrong shape). */
  'malformed',
  /** Longer than the source accepts; discarded unread up to its end. */
  'oversized',
  /** Over the source's input rate; discarded unread (polling covers what it might have said). */
  'rateLimited',
  /** The sender did not prove who it is (bad shared secret, signature or token). */
  'unauthenticated',
] as const;
export type NoticeRejection = (typeof noticeRejections)[number];

/** Where a source delivers: the composition root's dispatcher. Calls never throw and never block. */
export interface ChangeNoticeSink {
  /** A change of one document. */
  notice(source: NoticeSourceKind, notice: ChangeNotice): void;
  /** A valid input that announced no change of a document (a read, a failed request, a login). */
  ignored(source: NoticeSourceKind): void;
  /** An input dropped unread or unparsed. Never given the input itself: it may hold anything. */
  rejected(source: NoticeSourceKind, why: NoticeRejection): void;
  /** Whether the source can receive (listening / connected), reported on every change of state. */
  up(source: NoticeSourceKind, up: boolean): void;
}

/**
 * A running source of notices. `start` listens until `signal` aborts, then closes and resolves;
 * it rejects only when it cannot start at all (the address is taken, the queue is unknown).
 */
export interface ChangeNoticeSource {
  readonly kind: NoticeSourceKind;
  start(sink: ChangeNoticeSink, signal: AbortSignal): Promise<void>;
}
