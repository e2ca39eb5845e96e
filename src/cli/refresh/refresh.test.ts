import { describe, expect, it } from '@jest/globals';
import { refreshRequestedAnnotation as reconcilerSpelling } from '../../controllers/binding/binding.reconciler.ts';
import { refreshRequestedAnnotation } from './refresh.command.ts';

describe('refresh', () => {
  it('sets the annotation the binding reconciler acts on', () => {
    expect(refreshRequestedAnnotation).toBe(reconcilerSpelling);
  });
});
