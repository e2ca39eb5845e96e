import { brokerAudience } from '../../broker/broker.protocol.ts';

/** What NodePublishVolume tells us about the pod and the volume (CSIDriver `podInfoOnMount`). */
export interface PodVolume {
  readonly pod: { readonly namespace: string; readonly name: string; readonly uid: string; readonly serviceAccountName: string };
  /** The `binding` volume attribute. */
  readonly binding: string;
  /** The pod's token for audience secretbinder.dev (CSIDriver `tokenRequests`). */
  readonly podToken: string;
  /** The pod's fsGroup, when known. */
  readonly gid: number | undefined;
}

export class InvalidVolumeRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidVolumeRequest';
  }
}

const key = {
  podName: 'csi.storage.k8s.io/pod.name',
  podNamespace: 'csi.storage.k8s.io/pod.namespace',
  podUid: 'csi.storage.k8s.io/pod.uid',
  serviceAccount: 'csi.storage.k8s.io/serviceAccount.name',
  tokens: 'csi.storage.k8s.io/serviceAccount.tokens',
  ephemeral: 'csi.storage.k8s.io/ephemeral',
  binding: 'binding',
  fsGroup: 'fsGroup',
} as const;

/**
 * Parses the volume context of a NodePublishVolume call. `volumeMountGroup` is the kubelet's
 * delegated fsGroup (VOLUME_MOUNT_GROUP); a `fsGroup` volume attribute is used when it is absent.
 * Throws {@link InvalidVolumeRequest} (never retried usefully: the pod spec or CSIDriver is wrong).
 */
export function parseVolumeContext(context: Readonly<Record<string, string>>, volumeMountGroup: string): PodVolume {
  const required = (name: string): string => {
    const value = context[name];
    if (value === undefined || value === '') throw new InvalidVolumeRequest(`volume context lacks ${name} (is the CSIDriver's podInfoOnMount/tokenRequests set?)`);
    return value;
  };
  if (context[key.ephemeral] !== undefined && context[key.ephemeral] !== 'true') {
    throw new InvalidVolumeRequest('only inline ephemeral volumes are supported');
  }
  const binding = context[key.binding];
  if (binding === undefined || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(binding) || binding.length > 253) {
    throw new InvalidVolumeRequest('volume attribute "binding" must name a SecretBinding in the pod\'s namespace');
  }
  let tokens: unknown;
  try {
    tokens = JSON.parse(required(key.tokens));
  } catch (err) {
    if (err instanceof InvalidVolumeRequest) throw err;
    throw new InvalidVolumeRequest(`${key.tokens} is not JSON`);
  }
  const entry = (tokens as Record<string, { token?: unknown } | undefined> | null)?.[brokerAudience];
  if (typeof entry?.token !== 'string' || entry.token === '') throw new InvalidVolumeRequest(`no token for audience ${brokerAudience} in ${key.tokens}`);
  const groupText = volumeMountGroup !== '' ? volumeMountGroup : context[key.fsGroup];
  let gid: number | undefined;
  if (groupText !== undefined && groupText !== '') {
    gid = Number(groupText);
    if (!/^\d+$/.test(groupText) || !Number.isSafeInteger(gid) || gid > 0xffffffff) throw new InvalidVolumeRequest('fsGroup must be a numeric group id');
  }
  return {
    pod: { namespace: required(key.podNamespace), name: required(key.podName), uid: required(key.podUid), serviceAccountName: required(key.serviceAccount) },
    binding,
    podToken: entry.token,
    gid,
  };
}
