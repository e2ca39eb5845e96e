import type { Registry } from 'prom-client';
import { noticeRejections, noticeSourceKinds } from '../change-notice.port.ts';
import { defineCounter, defineGauge, type CounterMetric, type GaugeMetric } from '../../observability/metrics.ts';

/**
 * Metrics of change-notice sources (ADR 0220). Labels are closed lists — the source kind, what
 * became of a notice, why an input was dropped — never a key, a path or a sender.
 */

export const noticeResults = [
  /** Caused a check of the document now. */
  'scheduled',
  /** Within the window of an earlier notice of the same document: at most one more check. */
  'coalesced',
  /** Of a document no binding uses: nothing read. */
  'unbound',
  /** A valid input that announced no change (a read, a failed request). */
  'ignored',
] as const;

const source = { source: noticeSourceKinds } as const;

export interface NoticeMetrics {
  readonly notices: CounterMetric<{ source: typeof noticeSourceKinds; result: typeof noticeResults }>;
  readonly rejected: CounterMetric<{ source: typeof noticeSourceKinds; reason: typeof noticeRejections }>;
  /** 1 while the source can receive (listening, polling its queue), 0 when it is down. */
  readonly up: GaugeMetric<typeof source>;
  /** Wall-clock time of the last valid input: the heartbeat a silent source stops moving. */
  readonly lastInput: GaugeMetric<typeof source>;
}

export function createNoticeMetrics(registry: Registry): NoticeMetrics {
  return {
    notices: defineCounter(registry, {
      name: 'secretbinder_change_notices_total',
      help: 'Valid inputs of change-notice sources, by source and what became of them.',
      labels: { source: noticeSourceKinds, result: noticeResults },
    }),
    rejected: defineCounter(registry, {
      name: 'secretbinder_change_notices_rejected_total',
      help: 'Inputs of change-notice sources dropped unread or unparsed, by source and reason.',
      labels: { source: noticeSourceKinds, reason: noticeRejections },
    }),
    up: defineGauge(registry, {
      name: 'secretbinder_change_source_up',
      help: 'Whether a change-notice source can receive (1) or is down (0).',
      labels: source,
    }),
    lastInput: defineGauge(registry, {
      name: 'secretbinder_change_source_last_input_timestamp_seconds',
      help: 'Unix time of the last valid input of a change-notice source (its heartbeat).',
      labels: source,
    }),
  };
}
