import { z } from 'zod';
import { maxPublishBatch } from './broker.protocol.ts';

/** The broker's request bodies as the endpoints validate them (the wire types: broker.protocol.ts, agent.protocol.ts). */
const name = z.string().min(1).max(253);
export const publishSchema = z.object({
  volumeId: z.string().min(1).max(512),
  pod: z.object({ namespace: name, name, uid: z.string().min(1).max(64), serviceAccountName: name }),
  binding: name,
  podToken: z.string().min(1).max(16_384),
  // A signing request only: a private key never crosses this boundary (ADR 0263).
  csr: z
    .string()
    .max(16_384)
    .refine((pem) => pem.trimStart().startsWith('-----BEGIN CERTIFICATE REQUEST-----') && !pem.includes('PRIVATE KEY'), 'csr must be a PEM certificate request and nothing else')
    .optional(),
});
export const publishBatchSchema = z.object({ volumes: z.array(publishSchema).min(1).max(maxPublishBatch) });
export const changesSchema = z.object({
  volumes: z
    .array(
      z.object({
        volumeId: z.string().min(1).max(512),
        namespace: name,
        binding: name,
        contentHash: z.string().max(256),
        pod: z.object({ name, uid: z.string().min(1).max(64) }),
      }),
    )
    .max(10_000),
  waitSeconds: z.number().min(0),
});
export const agentPublishSchema = z.object({ binding: name });
export const agentChangesSchema = z.object({
  bindings: z.array(z.object({ binding: name, contentHash: z.string().max(256) })).min(1).max(64),
  waitSeconds: z.number().min(0),
});
