import type { CustomApi } from './kube-clients.ts';

/** Identifies one of our custom resources. `namespace` undefined means cluster-scoped. */
export interface CustomResourceRef {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespace: string | undefined;
  readonly name: string;
}

/**
 * Writes the status subresource with a JSON merge patch (every patch of {@link CustomApi} is one). The caller decides whether anything
 * changed (invariant 5: no write unless something changed); this only performs the write.
 */
export async function patchStatus(
  custom: CustomApi,
  ref: CustomResourceRef,
  status: object,
): Promise<void> {
  const body = { status };
  if (ref.namespace === undefined) {
    await custom.patchClusterCustomObjectStatus(
      { group: ref.group, version: ref.version, plural: ref.plural, name: ref.name, body },
    );
  } else {
    await custom.patchNamespacedCustomObjectStatus(
      { group: ref.group, version: ref.version, plural: ref.plural, namespace: ref.namespace, name: ref.name, body },
    );
  }
}
