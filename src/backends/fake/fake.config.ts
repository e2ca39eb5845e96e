import { z } from 'zod';
import { goDurationPattern as goDuration, parseDurationMs } from '../../api/v1alpha1/duration.ts';
import { InvalidConfigError } from '../backend.port.ts';
import { formatIssues } from '../provider.support.ts';
import type { GeneratedKeys } from './fake.store.ts';

/**
 * The `fake` block of a backend spec (see crds/): a seed, the keys that exist (each a string or a
 * JSON object of generated fields), an optional rotation period and an outage switch. It holds
 * no values; the store derives them in memory (ADR 0054).
 */
export interface FakeConfig extends GeneratedKeys {
  /** While true every call fails with Unavailable. */
  readonly unavailable: boolean;
}

const schema = z
  .object({
    seed: z.string().max(256).default('secret-binder-demo'),
    keys: z
      .array(
        z
          .object({
            key: z.string().min(1).max(512),
            fields: z.array(z.string().min(1).max(128)).max(32).optional(),
          })
          .strict(),
      )
      .max(256),
    rotationPeriod: z
      .string()
      .optional()
      .refine((v) => v === undefined || v === '' || goDuration.test(v), 'must be a duration such as 30s, 5m or 1h30m')
      .refine((v) => v === undefined || v === '' || !goDuration.test(v) || parseDurationMs(v) >= 1000, 'must be at least 1s'),
    unavailable: z.boolean().default(false),
  })
  .strict()
  .refine((c) => new Set(c.keys.map((k) => k.key)).size === c.keys.length, { message: 'keys must be unique', path: ['keys'] });

export function parseFakeConfig(spec: unknown): FakeConfig {
  const parsed = schema.safeParse(spec);
  if (!parsed.success) throw new InvalidConfigError(`fake: ${formatIssues(parsed.error)}`);
  const { seed, keys, rotationPeriod, unavailable } = parsed.data;
  return {
    seed,
    keys: keys.map((k) => (k.fields === undefined ? { key: k.key } : { key: k.key, fields: [...new Set(k.fields)] })),
    ...(rotationPeriod !== undefined && rotationPeriod !== '' ? { rotationPeriodMs: parseDurationMs(rotationPeriod) } : {}),
    unavailable,
  };
}
