import { PatchStrategy, setHeaderOptions, type CustomObjectsApi } from '@kubernetes/client-node';

/** Identifies one of our custom resources. `namespace` undefined means cluster-scoped. */
export interface CustomResourceRef {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespace: string | undefined;
  readonly name: string;
}

/**
 * Writes the status subresource with a JSON merge patch. The caller decides whether anything
 * changed (invariant 5: no write unless something changed); this only performs the write.
 */
export async function patchStatus(
  custom: CustomObjectsApi,
  ref: CustomResourceRef,
  status: object,
): Promise<void> {
  const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  const body = { status };
  if (ref.namespace === undefined) {
    await custom.patchClusterCustomObjectStatus(
      { group: ref.group, version: ref.version, plural: ref.plural, name: ref.name, body },
      options,
    );
  } else {
    await custom.patchNamespacedCustomObjectStatus(
      { group: ref.group, version: ref.version, plural: ref.plural, namespace: ref.namespace, name: ref.name, body },
      options,
    );
  }
}
