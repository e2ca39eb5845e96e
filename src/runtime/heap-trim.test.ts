import { describe, expect, it } from '@jest/globals';
import { shouldTrim } from './heap-trim.ts';

const MiB = 2 ** 20;
const limits = { maxUtilization: 0.05, minGrowthBytes: 32 * MiB };

describe('shouldTrim', () => {
  it('trims a quiet process that stands well above its floor', () => {
    expect(shouldTrim({ utilization: 0.01, rssBytes: 250 * MiB }, 190 * MiB, limits)).toBe(true);
    expect(shouldTrim({ utilization: 0.05, rssBytes: 222 * MiB }, 190 * MiB, limits)).toBe(true);
  });

  it('leaves a busy process, and a quiet one near its floor, alone', () => {
    expect(shouldTrim({ utilization: 0.4, rssBytes: 250 * MiB }, 190 * MiB, limits)).toBe(false);
    expect(shouldTrim({ utilization: 0.01, rssBytes: 221 * MiB }, 190 * MiB, limits)).toBe(false);
  });
});
