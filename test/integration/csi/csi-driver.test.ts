import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AuthenticationV1Api, CoreV1Api, type KubeConfig, type V1CSIDriver, type V1Pod, StorageV1Api } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { parseVolumeContext } from '../../../src/delivery/csi/volume-context.ts';
import { KubeletDriver } from '../../harness/kubelet-driver.ts';
import { adminKubeConfig, root } from '../support/cluster.ts';

/**
 * The node plugin's Kubernetes-facing pieces against the world's real API server: the CSIDriver
 * manifest is accepted as written, and the kubelet driver's pod tokens are what the kubelet gives a
 * CSI driver with `tokenRequests` (bound to the pod, audience secretbinder.dev), in a volume
 * context our plugin parses to that pod's identity.
 */

const ns = `csi-${randomBytes(3).toString('hex')}`;
let kc: KubeConfig;
let core: CoreV1Api;
let pod: V1Pod;
let rootDir: string;

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  rootDir = await mkdtemp('/tmp/csi-kubelet-');
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
  pod = await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'web-0' },
      spec: {
        nodeName: 'node-a',
        serviceAccountName: 'web',
        automountServiceAccountToken: false,
        securityContext: { fsGroup: 3000 },
        containers: [{ name: 'app', image: 'busybox', volumeMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }] }],
        volumes: [
          { name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding: 'db' } } },
          { name: 'scratch', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
        ],
      },
    },
  });
}, 60_000);

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await rm(rootDir, { recursive: true, force: true });
});

describe('CSIDriver manifest', () => {
  it('is accepted by the API server as written (server-side dry run)', async () => {
    const manifest = parse(readFileSync(join(root, 'deploy', 'csidriver.yaml'), 'utf8')) as V1CSIDriver;
    const created = await kc.makeApiClient(StorageV1Api).createCSIDriver({ body: manifest, dryRun: 'All' });
    expect(created.metadata?.name).toBe('secretbinder.dev');
    expect(created.spec).toMatchObject({
      attachRequired: false,
      podInfoOnMount: true,
      requiresRepublish: true,
      fsGroupPolicy: 'File',
      volumeLifecycleModes: ['Ephemeral'],
      tokenRequests: [{ audience: 'secretbinder.dev', expirationSeconds: 3600 }],
    });
  });
});

describe('kubelet driver', () => {
  it('builds the kubelet volume context with a token bound to the pod, audience secretbinder.dev', async () => {
    const driver = new KubeletDriver({ kubeConfig: kc, csiSocket: join(rootDir, 'unused.sock'), rootDir });
    try {
      expect(driver.volumesOf(pod)).toEqual([
        {
          volumeName: 'secrets',
          volumeId: KubeletDriver.volumeId(pod.metadata?.uid ?? '', 'secrets'),
          targetPath: join(rootDir, 'pods', pod.metadata?.uid ?? '', 'volumes', 'kubernetes.io~csi', 'secrets', 'mount'),
        },
      ]);
      const context = await driver.volumeContext(pod, 'secrets');
      const volume = parseVolumeContext(context, '');
      expect(volume.pod).toEqual({ namespace: ns, name: 'web-0', uid: pod.metadata?.uid, serviceAccountName: 'web' });
      expect(volume.binding).toBe('db');

      const review = await kc.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token: volume.podToken, audiences: ['secretbinder.dev'] } } });
      expect(review.status?.authenticated).toBe(true);
      expect(review.status?.user?.username).toBe(`system:serviceaccount:${ns}:web`);
      expect(review.status?.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['web-0']);
      expect(review.status?.user?.extra?.['authentication.kubernetes.io/pod-uid']).toEqual([pod.metadata?.uid]);
    } finally {
      driver.close();
    }
  });
});
