import type { CoreApi } from './kube-clients.ts';
import { SecretValue } from '../observability/secret-value.ts';

/**
 * Reads one key of a backend's credentials Secret (AppRole secret ids, static AWS keys, tokens): in
 * the operator's namespace for a ClusterSecretBackend, in the backend's own namespace for a
 * SecretBackend (ADR 0002). A single `get` by name: the controller never lists or watches Secrets.
 */
export async function readOperatorSecret(
  core: CoreApi,
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
