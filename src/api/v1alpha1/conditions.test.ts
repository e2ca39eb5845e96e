import { describe, expect, it } from '@jest/globals';
import { AuthFailedError, backendErrorKinds, tokenRefusals, TokenRefusedError } from '../../backends/backend.port.ts';
import {
  conditionsEqual,
  findCondition,
  formatConditionTime,
  isConditionTrue,
  isReason,
  maxConditionMessageLength,
  reasonForBackendError,
  reasonForError,
  reasons,
  removeCondition,
  setCondition,
  setConditions,
  type Condition,
  type ConditionUpdate,
} from './conditions.ts';

const t0 = new Date('2026-01-02T03:04:05.678Z');
const t1 = new Date('2026-01-02T04:00:00.000Z');

const readyTrue: ConditionUpdate = { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'files served' };
const readyFalse: ConditionUpdate = {
  type: 'Ready',
  status: 'False',
  reason: 'KeyNotFound',
  message: 'key app/db not found',
};

describe('reasons', () => {
  it('are unique CamelCase strings a metav1.Condition accepts', () => {
    expect(new Set(reasons).size).toBe(reasons.length);
    for (const reason of reasons) {
      expect(reason).toMatch(/^[A-Z][A-Za-z0-9]*$/);
      expect(reason.length).toBeLessThanOrEqual(1024);
    }
  });

  it('recognise only members of the closed list', () => {
    expect(isReason('Reconciled')).toBe(true);
    expect(isReason('Ready')).toBe(false);
    expect(isReason('reconciled')).toBe(false);
  });

  it('map every backend error kind to a listed reason', () => {
    const mapped = backendErrorKinds.map((kind) => reasonForBackendError(kind));
    expect(mapped).toEqual(['KeyNotFound', 'AuthFailed', 'Throttled', 'BackendUnavailable', 'InvalidSpec']);
    expect(reasonForBackendError('AuthFailed', true)).toBe('CredentialsNotFound');
    for (const reason of mapped) expect(isReason(reason)).toBe(true);
  });

  it('give every token refusal its own listed reason (ADR 0150)', () => {
    for (const refusal of tokenRefusals) {
      expect(isReason(refusal)).toBe(true);
      expect(reasonForError(new TokenRefusedError(refusal, 'refused'))).toBe(refusal);
    }
    expect(reasonForError(new AuthFailedError('no'))).toBe('AuthFailed');
  });
});

describe('setCondition', () => {
  it('appends a new condition with the transition time at second precision', () => {
    const next = setCondition(undefined, { ...readyTrue, observedGeneration: 3 }, t0);
    expect(next).toEqual([
      {
        type: 'Ready',
        status: 'True',
        observedGeneration: 3,
        lastTransitionTime: '2026-01-02T03:04:05Z',
        reason: 'Reconciled',
        message: 'files served',
      },
    ]);
  });

  it('keeps the transition time when the status stays the same, even if reason or message change', () => {
    const first = setCondition([], readyFalse, t0);
    const second = setCondition(first, { ...readyFalse, reason: 'AccessDenied', message: 'denied' }, t1);
    expect(second[0]?.lastTransitionTime).toBe('2026-01-02T03:04:05Z');
    expect(second[0]?.reason).toBe('AccessDenied');
    expect(second[0]?.message).toBe('denied');
  });

  it('moves the transition time when the status changes', () => {
    const first = setCondition([], readyFalse, t0);
    const second = setCondition(first, readyTrue, t1);
    expect(second[0]?.lastTransitionTime).toBe('2026-01-02T04:00:00Z');
    expect(second[0]?.status).toBe('True');
  });

  it('replaces in place, keeps the order of the others and does not touch the input', () => {
    const degraded: ConditionUpdate = {
      type: 'Degraded',
      status: 'False',
      reason: 'Reconciled',
      message: '',
    };
    const input = setConditions(undefined, [readyFalse, degraded], t0);
    const frozen = JSON.stringify(input);
    const next = setCondition(input, readyTrue, t1);
    expect(next.map((c) => c.type)).toEqual(['Ready', 'Degraded']);
    expect(JSON.stringify(input)).toBe(frozen);
    expect(next[1]).toEqual(input[1]);
    expect(next[1]).not.toBe(input[1]);
  });

  it('truncates long messages', () => {
    const next = setCondition([], { ...readyFalse, message: 'x'.repeat(5000) }, t0);
    expect(next[0]?.message.length).toBe(maxConditionMessageLength);
    expect(next[0]?.message.endsWith('…')).toBe(true);
  });

  it('drops observedGeneration when the update has none', () => {
    const first = setCondition([], { ...readyTrue, observedGeneration: 1 }, t0);
    const second = setCondition(first, readyTrue, t0);
    expect(second[0]).not.toHaveProperty('observedGeneration');
  });
});

describe('conditionsEqual', () => {
  it('says a repeated identical update is a no-op, so no status write is needed', () => {
    const current = setConditions([], [readyTrue, { ...readyFalse, type: 'Degraded' }], t0);
    const recomputed = setConditions(current, [readyTrue, { ...readyFalse, type: 'Degraded' }], t1);
    expect(conditionsEqual(current, recomputed)).toBe(true);
  });

  it('sees changes of status, reason, message and observedGeneration', () => {
    const current = setCondition([], { ...readyTrue, observedGeneration: 1 }, t0);
    expect(conditionsEqual(current, setCondition(current, readyFalse, t0))).toBe(false);
    expect(conditionsEqual(current, setCondition(current, { ...readyTrue, reason: 'InvalidSpec' }, t0))).toBe(false);
    expect(conditionsEqual(current, setCondition(current, { ...readyTrue, message: 'other' }, t0))).toBe(false);
    expect(conditionsEqual(current, setCondition(current, { ...readyTrue, observedGeneration: 2 }, t0))).toBe(false);
  });

  it('ignores order and treats undefined as empty', () => {
    const a = setConditions([], [readyTrue, { ...readyTrue, type: 'Degraded' }], t0);
    const b = [...a].reverse();
    expect(conditionsEqual(a, b)).toBe(true);
    expect(conditionsEqual(undefined, [])).toBe(true);
    expect(conditionsEqual(a, undefined)).toBe(false);
    expect(conditionsEqual(a, a.slice(0, 1))).toBe(false);
  });

  it('compares conditions as read back from the API server', () => {
    const stored: Condition[] = [
      {
        type: 'Ready',
        status: 'True',
        lastTransitionTime: '2026-01-02T03:04:05Z',
        reason: 'Reconciled',
        message: 'files served',
      },
    ];
    expect(conditionsEqual(stored, setCondition(stored, readyTrue, t1))).toBe(true);
  });
});

describe('lookups', () => {
  it('find, test and remove conditions by type', () => {
    const conditions = setConditions([], [readyTrue, { ...readyFalse, type: 'Degraded' }], t0);
    expect(findCondition(conditions, 'Degraded')?.reason).toBe('KeyNotFound');
    expect(isConditionTrue(conditions, 'Ready')).toBe(true);
    expect(isConditionTrue(conditions, 'Degraded')).toBe(false);
    expect(isConditionTrue(undefined, 'Ready')).toBe(false);
    expect(removeCondition(conditions, 'Ready').map((c) => c.type)).toEqual(['Degraded']);
  });

  it('formats times like metav1.Time', () => {
    expect(formatConditionTime(t1)).toBe('2026-01-02T04:00:00Z');
  });
});
