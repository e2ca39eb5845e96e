import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { brokerAudience, driverName } from '../../src/broker/broker.protocol.ts';
import { CsiClient } from '../../src/delivery/csi/csi.client.ts';
import { registerNeedle } from './leak-capture.ts';

/**
 * A small kubelet-like driver for the node plugin: for a pod (a real object in the world's API
 * server) it calls NodePublishVolume / NodeUnpublishVolume over the plugin's CSI socket with what
 * the kubelet would send for each `secretbinder.dev` inline volume — the pod info
 * (`podInfoOnMount`), a token bound to the pod for audience secretbinder.dev minted with
 * TokenRequest (`tokenRequests`), the volume attributes, the pod's fsGroup (VOLUME_MOUNT_GROUP) —
 * and the kubelet's target path layout under `rootDir`. It does not run containers.
 */

export interface KubeletDriverOptions {
  /** A kubeconfig allowed to create `serviceaccounts/token` in the pods' namespaces. */
  readonly kubeConfig: KubeConfig;
  readonly csiSocket: string;
  /** Stands in for /var/lib/kubelet. */
  readonly rootDir: string;
  /** Lifetime of minted pod tokens (the kubelet's CSIDriver tokenRequests expirationSeconds). */
  readonly tokenSeconds?: number;
}

export interface PodVolumeMount {
  readonly volumeName: string;
  readonly volumeId: string;
  readonly targetPath: string;
}

export class KubeletDriver {
  readonly #core: CoreV1Api;
  readonly #client: CsiClient;
  readonly #options: KubeletDriverOptions;

  constructor(options: KubeletDriverOptions) {
    this.#options = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#client = new CsiClient(options.csiSocket);
  }

  /** The kubelet's volume id for an inline ephemeral CSI volume: `csi-` + sha256(pod UID + volume name). */
  static volumeId(podUid: string, volumeName: string): string {
    return `csi-${createHash('sha256').update(podUid + volumeName).digest('hex')}`;
  }

  targetPath(podUid: string, volumeName: string): string {
    return join(this.#options.rootDir, 'pods', podUid, 'volumes', 'kubernetes.io~csi', volumeName, 'mount');
  }

  /** The pod's secretbinder.dev volumes. */
  volumesOf(pod: V1Pod): PodVolumeMount[] {
    const uid = requireField(pod.metadata?.uid, 'metadata.uid');
    return (pod.spec?.volumes ?? [])
      .filter((volume) => volume.csi?.driver === driverName)
      .map((volume) => ({ volumeName: volume.name, volumeId: KubeletDriver.volumeId(uid, volume.name), targetPath: this.targetPath(uid, volume.name) }));
  }

  /** Mints the pod's secretbinder.dev token, as the kubelet does for CSIDriver tokenRequests. */
  async mintPodToken(pod: V1Pod): Promise<{ token: string; expirationTimestamp: string }> {
    const answer = await this.#core.createNamespacedServiceAccountToken({
      namespace: requireField(pod.metadata?.namespace, 'metadata.namespace'),
      name: pod.spec?.serviceAccountName ?? 'default',
      body: {
        spec: {
          audiences: [brokerAudience],
          expirationSeconds: this.#options.tokenSeconds ?? 600,
          boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: requireField(pod.metadata?.name, 'metadata.name'), uid: requireField(pod.metadata?.uid, 'metadata.uid') },
        },
      },
    });
    const token = answer.status?.token;
    if (token === undefined || token === '') throw new Error('TokenRequest returned no token');
    registerNeedle(token, `pod token ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`);
    return { token, expirationTimestamp: new Date(answer.status?.expirationTimestamp ?? Date.now()).toISOString() };
  }

  /** The volume context the kubelet sends for one volume of the pod. */
  async volumeContext(pod: V1Pod, volumeName: string): Promise<Record<string, string>> {
    const volume = (pod.spec?.volumes ?? []).find((v) => v.name === volumeName);
    if (volume?.csi?.driver !== driverName) throw new Error(`pod has no ${driverName} volume ${volumeName}`);
    const token = await this.mintPodToken(pod);
    return {
      ...(volume.csi.volumeAttributes ?? {}),
      'csi.storage.k8s.io/pod.name': requireField(pod.metadata?.name, 'metadata.name'),
      'csi.storage.k8s.io/pod.namespace': requireField(pod.metadata?.namespace, 'metadata.namespace'),
      'csi.storage.k8s.io/pod.uid': requireField(pod.metadata?.uid, 'metadata.uid'),
      'csi.storage.k8s.io/serviceAccount.name': pod.spec?.serviceAccountName ?? 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
      'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({ [brokerAudience]: token }),
    };
  }

  /**
   * NodePublishVolume for every secretbinder.dev volume of the pod (the first mount, and every
   * periodic republish — `requiresRepublish` — is the same call with a fresh token).
   */
  async publishPod(pod: V1Pod): Promise<PodVolumeMount[]> {
    const fsGroup = pod.spec?.securityContext?.fsGroup;
    const mounts = this.volumesOf(pod);
    for (const mount of mounts) {
      await this.#client.nodePublishVolume({
        volumeId: mount.volumeId,
        targetPath: mount.targetPath,
        volumeContext: await this.volumeContext(pod, mount.volumeName),
        ...(fsGroup === undefined ? {} : { volumeMountGroup: String(fsGroup) }),
        readonly: true,
      });
    }
    return mounts;
  }

  /** NodeUnpublishVolume for every secretbinder.dev volume of the pod (pod deleted). */
  async unpublishPod(pod: V1Pod): Promise<void> {
    for (const mount of this.volumesOf(pod)) await this.#client.nodeUnpublishVolume(mount.volumeId, mount.targetPath);
  }

  close(): void {
    this.#client.close();
  }
}

function requireField(value: string | undefined, name: string): string {
  if (value === undefined || value === '') throw new Error(`pod has no ${name}`);
  return value;
}
