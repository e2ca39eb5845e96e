import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { CoreApi } from '../kube/kube-clients.ts';
import { isConflict, isNotFound } from '../kube/kube-errors.ts';
import { minContentHmacKeyBytes } from './content-hmac.ts';
import { SecretValue } from './secret-value.ts';

/**
 * The content-HMAC key kept in a Secret of the operator's namespace (ADR 0155): created at run time
 * by the first replica that finds it absent (32 random bytes), never rotated, never overwritten —
 * every content hash in status depends on it (ADR 0053, invariant 6). Two replicas starting at once
 * both try to create it; the one that loses (409 AlreadyExists) reads the winner's key back.
 */

export class ContentHmacKeyError extends Error {
  override readonly name = 'ContentHmacKeyError';
}

export async function ensureContentHmacKey(core: CoreApi, namespace: string, name: string): Promise<SecretValue> {
  const existing = await read(core, namespace, name);
  if (existing !== undefined) return keyOf(existing, namespace, name);
  const bytes = randomBytes(32);
  try {
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name,
          labels: { 'app.kubernetes.io/managed-by': 'secret-binder' },
          annotations: { 'secretbinder.dev/managed': 'content-HMAC key, created once by the controller and never rotated (ADR 0155)' },
        },
        type: 'Opaque',
        data: { key: bytes.toString('base64') },
      },
    });
    return SecretValue.fromBytes(bytes);
  } catch (error) {
    if (!isConflict(error)) throw error;
    // Another replica created it first: its key is the key.
    const winner = await read(core, namespace, name);
    if (winner === undefined) throw error;
    return keyOf(winner, namespace, name);
  } finally {
    bytes.fill(0);
  }
}

async function read(core: CoreApi, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function keyOf(secret: V1Secret, namespace: string, name: string): SecretValue {
  const bytes = Buffer.from(secret.data?.key ?? '', 'base64');
  try {
    // Never repaired by overwriting: a key someone else put there decides every hash.
    if (bytes.byteLength < minContentHmacKeyBytes) throw new ContentHmacKeyError(`Secret ${namespace}/${name} has no "key" of at least ${minContentHmacKeyBytes} bytes`);
    return SecretValue.fromBytes(bytes);
  } finally {
    bytes.fill(0);
  }
}
