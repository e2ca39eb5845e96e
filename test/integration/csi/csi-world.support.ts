import type { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import type { OpenBaoEndpoint } from '../../harness/world-state.ts';

/**
 * What the CSI suites stand on: the app and system namespaces, a Node object, the node plugin's
 * service account, the app's service account, and a SecretBackend `openbao` logging in to the
 * world's OpenBao with its root token from a Secret of the app namespace.
 */
export async function createCsiWorld(
  clients: { readonly core: CoreV1Api; readonly custom: CustomObjectsApi },
  names: { readonly ns: string; readonly systemNs: string; readonly node: string; readonly appServiceAccount: string },
  bao: OpenBaoEndpoint,
): Promise<void> {
  const { core, custom } = clients;
  for (const name of [names.ns, names.systemNs]) await core.createNamespace({ body: { metadata: { name } } });
  await core.createNode({ body: { metadata: { name: names.node } } });
  await core.createNamespacedServiceAccount({ namespace: names.systemNs, body: { metadata: { name: 'node-plugin' } } });
  await core.createNamespacedServiceAccount({ namespace: names.ns, body: { metadata: { name: names.appServiceAccount } } });
  await core.createNamespacedSecret({ namespace: names.ns, body: { metadata: { name: 'openbao-token' }, stringData: { token: bao.rootToken } } });
  await custom.createNamespacedCustomObject({
    group, version, plural: resources.SecretBackend.plural, namespace: names.ns,
    body: {
      apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'openbao' },
      spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: 'openbao-token', key: 'token' } } } } },
    },
  });
}
