import type { CoreV1Api } from '@kubernetes/client-node';
import { SecretValue } from '../observability/secret-value.ts';

/**
 * Reads one key of a Secret in the operator's own namespace (backend credentials such as AppRole
 * secret ids or static AWS keys). A single `get` by name: the controller never lists or watches
 * Secrets, and its Role allows `get` in its own namespace only.
 */
export async function readOperatorSecret(
  core: CoreV1Api,
  namespace: string,
  name: string,
  key: string,
): Promise<SecretValue> {
  const secret = await core.readNamespacedSecret({ name, namespace });
  const encoded = secret.data?.[key];
  if (encoded === undefined) {
    throw new Error(`Secret ${namespace}/${name} has no key "${key}"`);
  }
  return SecretValue.fromBytes(Buffer.from(encoded, 'base64'));
}
