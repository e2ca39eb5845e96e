import { AppsV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { group, resources, version, type SecretBinding } from '../../src/api/v1alpha1/index.ts';

/**
 * What the upgrade suite watches on the consuming side (ADR 0230): a watcher in every pod that reads
 * its binding's files continuously, and a snapshot of what must not change across `helm upgrade`
 * and `helm rollback` — pods (names, UIDs, restarts), Deployments (generation, ReplicaSets) and
 * bindings (Ready, content HMAC, backend versions).
 */

/** Where each consuming container mounts its binding's volume. */
export const watchedMount = '/secrets';
/** The files every binding of the suite yields. */
export const watchedFiles = ['db.env', 'password'] as const;

/**
 * The watcher, a busybox shell loop in the container `app`: every 100 ms it reads every file of the
 * volume with the shell's own `read` (no process per read, so the loop keeps its pace on a busy
 * node). A read that finds a file missing or unreadable is a miss; the longest interval between two
 * successful reads (in centiseconds of /proc/uptime; restarted when /tmp/watch.reset appears) and
 * the number of times the content changed are kept. The counters are written atomically (rename)
 * to /tmp/watch for `kubectl exec cat`. No value leaves the pod: the content is compared in the
 * shell's memory only.
 */
export const watcherScript = [
  `files="${watchedFiles.map((f) => `${watchedMount}/${f}`).join(' ')}"`,
  'reads=0; misses=0; changes=0; longest=0; previous=""',
  // "12345.67 ..." -> 1234567 (centiseconds), with builtins only.
  'uptime_cs() { read -r up rest < /proc/uptime; echo_cs=${up%.*}${up#*.}; }',
  'uptime_cs; last=$echo_cs',
  'while true; do',
  '  uptime_cs; now=$echo_cs',
  '  if [ -e /tmp/watch.reset ]; then rm -f /tmp/watch.reset; longest=0; fi',
  '  content=""; ok=1',
  '  for f in $files; do',
  '    { while IFS= read -r line || [ -n "$line" ]; do content="$content$line;"; done < "$f"; } 2>/dev/null || ok=0',
  '  done',
  '  if [ $ok = 1 ] && [ -n "$content" ]; then',
  '    if [ -n "$previous" ] && [ "$content" != "$previous" ]; then changes=$((changes + 1)); fi',
  '    previous=$content',
  '    gap=$((now - last)); if [ $gap -gt $longest ]; then longest=$gap; fi',
  '    last=$now; reads=$((reads + 1))',
  '  else',
  '    misses=$((misses + 1))',
  '  fi',
  '  echo "reads=$reads misses=$misses changes=$changes longest_cs=$longest" > /tmp/watch.new && mv /tmp/watch.new /tmp/watch',
  '  sleep 0.1',
  'done',
].join('\n');

export interface WatchCounters {
  readonly reads: number;
  readonly misses: number;
  readonly changes: number;
  /** Longest interval between two successful reads since the last reset, in milliseconds. */
  readonly longestMs: number;
}

export function parseWatch(text: string): WatchCounters {
  const field = (name: string): number => {
    const match = new RegExp(`\\b${name}=(\\d+)`).exec(text);
    if (match?.[1] === undefined) throw new Error(`watcher state without ${name}: ${JSON.stringify(text)}`);
    return Number(match[1]);
  };
  return { reads: field('reads'), misses: field('misses'), changes: field('changes'), longestMs: field('longest_cs') * 10 };
}

/** A Deployment of one busybox pod whose container `app` mounts `binding`'s volume and runs the watcher. */
export function consumerDeployment(name: string, binding: string, image: string, toleration: object): V1Deployment {
  return {
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          tolerations: [toleration],
          terminationGracePeriodSeconds: 1,
          volumes: [{ name: 'secrets', csi: { driver: 'secretbinder.dev', readOnly: true, volumeAttributes: { binding } } }],
          containers: [
            {
              name: 'app',
              image,
              imagePullPolicy: 'Never',
              command: ['sh', '-c', watcherScript],
              volumeMounts: [{ name: 'secrets', mountPath: watchedMount, readOnly: true }],
            },
          ],
        },
      },
    },
  };
}

/** One consumer's state: what must stay the same through an upgrade. */
export interface ConsumerState {
  readonly deployment: string;
  readonly generation: number;
  readonly replicaSets: readonly string[];
  readonly pods: readonly string[];
  readonly restarts: number;
}

/** One binding's state: what must stay the same through an upgrade. */
export interface BindingState {
  readonly name: string;
  readonly ready: string;
  readonly contentHmac: string;
  readonly backendVersions: string;
}

export interface Snapshot {
  readonly consumers: readonly ConsumerState[];
  readonly bindings: readonly BindingState[];
}

const podName = (p: V1Pod): string => `${p.metadata?.name ?? '?'}/${p.metadata?.uid ?? '?'}`;
const restartsOf = (p: V1Pod): number => (p.status?.containerStatuses ?? []).reduce((n, c) => n + c.restartCount, 0);

export async function snapshot(kc: KubeConfig, namespace: string, deployments: readonly string[]): Promise<Snapshot> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const consumers: ConsumerState[] = [];
  for (const name of deployments) {
    const deployment = await apps.readNamespacedDeployment({ namespace, name });
    const replicaSets = (await apps.listNamespacedReplicaSet({ namespace, labelSelector: `app=${name}` })).items.map((rs) => rs.metadata?.name ?? '?').sort();
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: `app=${name}` })).items;
    consumers.push({
      deployment: name,
      generation: deployment.metadata?.generation ?? 0,
      replicaSets,
      pods: pods.map(podName).sort(),
      restarts: pods.reduce((n, p) => n + restartsOf(p), 0),
    });
  }
  const listed = (await custom.listNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace })) as { items: SecretBinding[] };
  const bindings = listed.items
    .map((b): BindingState => ({
      name: b.metadata.name ?? '?',
      ready: b.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown',
      contentHmac: b.status?.contentHmac ?? '',
      backendVersions: (b.status?.backendVersions ?? []).map((v) => `${v.key}@${v.version}`).join(','),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return { consumers, bindings };
}

/**
 * Samples the snapshot while an operation runs (every ~300 ms) and collects every sample that
 * differs from `expected` — a binding not Ready, a new hash, a restarted or replaced pod, a rollout —
 * so a transient change between the two end points is seen too.
 */
export function sampleDuring(kc: KubeConfig, namespace: string, deployments: readonly string[], expected: Snapshot): { stop(): Promise<{ samples: number; deviations: string[] }> } {
  const expectedText = JSON.stringify(expected);
  const deviations = new Set<string>();
  let samples = 0;
  const control = { running: true };
  const loop = (async (): Promise<void> => {
    while (control.running) {
      const now = await snapshot(kc, namespace, deployments).catch((error: unknown) => new Error(String(error)));
      // A list the API server could not answer is not a deviation of the world; the next sample counts.
      if (!(now instanceof Error)) {
        samples += 1;
        if (JSON.stringify(now) !== expectedText) deviations.add(JSON.stringify(now));
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  })();
  return {
    async stop() {
      control.running = false;
      await loop;
      return { samples, deviations: [...deviations] };
    },
  };
}
