import { createHash } from 'node:crypto';

/**
 * The annotation that carries a workload's content hash: on the pod template (changing it rolls
 * the workload) and on the workload itself (the record of what it was last started with).
 */
export const contentHashAnnotation = 'secretbinder.dev/content-hash';

/**
 * The content hash of a workload: a digest of the content HMACs of every RollingRestart binding it
 * consumes, sorted, so it depends on content only — not on the order bindings were listed in, nor
 * on which replica or process computes it. Values never enter it (HMACs already stand for them).
 */
export function workloadContentHash(bindingHashes: readonly string[]): string {
  const digest = createHash('sha256');
  for (const hash of [...bindingHashes].sort()) digest.update(`${hash}\n`);
  return `sha256:${digest.digest('hex')}`;
}
