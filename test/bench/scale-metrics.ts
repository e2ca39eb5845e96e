/**
 * Prometheus text from a process's /metrics, read by the scale tier's node and webhook rows: a
 * histogram's buckets at two moments give the quantile of what happened in between (to the
 * resolution of its buckets: the answer is the upper bound of the bucket holding the quantile).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** Cumulative bucket counts of `name` (a histogram) over the series whose labels contain `labels`, by upper bound. */
export type Buckets = ReadonlyMap<number, number>;

export function histogramBuckets(text: string, name: string, labels = ''): Buckets {
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(labels)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return buckets;
}

/** The observations between two readings of the same histogram: their count and the bucket holding quantile `q`. */
export function quantileBetween(before: Buckets, after: Buckets, q: number): { count: number; upperBoundSeconds: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const delta = (bound: number): number => (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
  const count = delta(Number.POSITIVE_INFINITY);
  const wanted = Math.ceil(q * count);
  const bound = bounds.find((b) => delta(b) >= wanted) ?? Number.POSITIVE_INFINITY;
  return { count, upperBoundSeconds: bound };
}

/** "≤ 5 ms" for a bucket bound (seconds); "> 1 s" for the overflow bucket. */
export function boundText(seconds: number, largest: number): string {
  if (!Number.isFinite(seconds)) return `> ${msText(largest)}`;
  return `≤ ${msText(seconds)}`;
}

const msText = (seconds: number): string => (seconds >= 1 ? `${String(seconds)} s` : `${String(Number((seconds * 1000).toFixed(1)))} ms`);

export async function fetchMetrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${String(port)}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
}

/** The API server's `apiserver_request_total` series (verb, resource, scope, …) and their counts. */
export type RequestCounts = ReadonlyMap<string, number>;

/** Reads the API server's own /metrics with the kubeconfig's client certificate. */
export async function apiserverRequests(kc: KubeConfig): Promise<RequestCounts> {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (cluster === null || user === null) throw new Error('the kubeconfig has no current cluster or user');
  const pem = (data: string | undefined, file: string | undefined): string | undefined =>
    data !== undefined ? Buffer.from(data, 'base64').toString('utf8') : file !== undefined ? readFileSync(file, 'utf8') : undefined;
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(`${cluster.server}/metrics`, { ca: pem(cluster.caData, cluster.caFile), cert: pem(user.certData, user.certFile), key: pem(user.keyData, user.keyFile), timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => { resolve(body); });
    });
    req.on('error', reject);
    req.end();
  });
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('apiserver_request_total{')) counts.set(line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

/**
 * Requests the API server served between two readings, all clients together but the bench's own:
 * `benchOwn` names the (resource, verbs, scope) the bench itself sent in the window (its creates
 * and its polling lists), which the process under test does not send then.
 */
export function requestsBetween(before: RequestCounts, after: RequestCounts, benchOwn: { resource: string; verbs: readonly string[]; scope?: string }): number {
  let sum = 0;
  for (const [series, n] of after) {
    const label = (name: string): string | undefined => new RegExp(`[{,]${name}="([^"]*)"`).exec(series)?.[1];
    const own = label('resource') === benchOwn.resource && benchOwn.verbs.includes(label('verb') ?? '') && (benchOwn.scope === undefined || label('scope') === benchOwn.scope);
    if (!own) sum += n - (before.get(series) ?? 0);
  }
  return sum;
}
