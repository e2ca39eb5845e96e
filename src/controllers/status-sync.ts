import type { CustomApi } from '../kube/kube-clients.ts';
import { findCondition, type Condition } from '../api/v1alpha1/index.ts';
import type { EventRecorder, EventSubject } from '../kube/event-recorder.ts';
import { patchStatus, type CustomResourceRef } from '../kube/status-writer.ts';

/** What a reconciler needs to publish its conclusions. */
export interface StatusPublisher {
  readonly custom: CustomApi;
  readonly events: EventRecorder;
}

export interface StatusUpdate {
  readonly ref: CustomResourceRef;
  readonly subject: EventSubject;
  readonly current: object | undefined;
  readonly desired: object & { readonly conditions?: readonly Condition[] };
}

/**
 * Writes the status only when it differs from what the cache holds (invariant 5), as a JSON merge
 * patch that also removes fields the desired status no longer has; records an Event only when
 * the Ready condition changes status or reason — not when it first appears as True. Returns
 * whether anything was written.
 */
export async function publishStatus(publisher: StatusPublisher, update: StatusUpdate): Promise<boolean> {
  const patch = mergePatch(update.current ?? {}, update.desired);
  if (patch === undefined) return false;
  await patchStatus(publisher.custom, update.ref, patch as object);
  const before = findCondition((update.current as { conditions?: Condition[] } | undefined)?.conditions, 'Ready');
  const after = findCondition(update.desired.conditions, 'Ready');
  // A first conclusion that is a success is not news (the status says it, and 5,000 new bindings
  // would be 5,000 Events to write before they are all Ready, ADR 0207); a first failure, a
  // recovery and every change of reason are.
  const firstSuccess = before === undefined && after?.status === 'True';
  if (after !== undefined && !firstSuccess && (before?.status !== after.status || before.reason !== after.reason)) {
    await publisher.events.record(update.subject, {
      type: after.status === 'False' ? 'Warning' : 'Normal',
      reason: after.reason,
      message: after.message,
    });
  }
  return true;
}

/**
 * The RFC 7386 merge patch turning `from` into `to`, or undefined when they are equal. Arrays and
 * scalars are replaced whole; keys missing from `to` become null. (A dozen lines rather than a
 * dependency: the JSON merge-patch packages on npm are unmaintained.)
 */
export function mergePatch(from: unknown, to: unknown): unknown {
  if (!isPlainObject(from) || !isPlainObject(to)) {
    return canonicalJson(from) === canonicalJson(to) ? undefined : to;
  }
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(from)) {
    if (!(key in to) || to[key] === undefined) patch[key] = null;
  }
  for (const [key, value] of Object.entries(to)) {
    if (value === undefined) continue;
    const sub = key in from ? mergePatch(from[key], value) : value;
    if (sub !== undefined) patch[key] = sub;
  }
  return Object.keys(patch).length === 0 ? undefined : patch;
}

/** JSON with object keys sorted: the API server returns fields in its own order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isPlainObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
