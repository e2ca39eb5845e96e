/**
 * Prometheus text from a process's /metrics, read by the scale tier's node and webhook rows: a
 * histogram's buckets at two moments give the quantile of what happened in between (to the
 * resolution of its buckets: the answer is the upper bound of the bucket holding the quantile).
 */

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
