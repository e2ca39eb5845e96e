import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { defaultRouteInterfaces, installEgressGuard, removeEgressGuard, type EgressGuard } from './host-egress.ts';

/**
 * A world's addresses on this host (ADR 0180): its Service range, a /24 of 10.96.0.0/12 that no
 * other world on the host routes, and a local "sink" interface that range (and the node's pod /24)
 * is routed to before the API server starts, so a ClusterIP that kube-proxy does not translate goes
 * nowhere instead of out through the default route. Plus the egress guard (ADR 0182) counting
 * private-range packets that leave through the default route while the world lives.
 */

export interface WorldNetwork {
  /** The Service range handed to kube-apiserver and kube-controller-manager: a /24. */
  readonly serviceRange: string;
  /** The `kubernetes` Service's ClusterIP (the range's first address). */
  readonly kubernetesServiceIp: string;
  /** The `kube-system/kube-dns` Service's ClusterIP, the kubelet's clusterDNS (ADR 0181). */
  readonly clusterDnsIp: string;
  /** Where the world's ranges are routed; absent when this process may not change routes. */
  readonly sink?: { readonly name: string; readonly kind: 'dummy' | 'ifb'; readonly ranges: readonly string[] };
  readonly egressGuard?: EgressGuard;
  /** Why there is no sink and no guard. */
  readonly unrouted?: string;
}

/** Below every route that is not a last resort: a connected route (the node's bridge) wins. */
const sinkMetric = '4000';
const serviceSupernet = { first: [10, 96], size: 4096 } as const;

function hashOf(worldDir: string): Buffer {
  return createHash('sha256').update(worldDir).digest();
}

/** Host object names of a world: the sink interface (≤ 15 characters) and the guard's chain. */
export function worldNetworkNames(worldDir: string): { sink: string; chain: string } {
  const hex = hashOf(worldDir).toString('hex');
  return { sink: `sbsink${hex.slice(0, 6)}`, chain: `SB-EGRESS-${hex.slice(0, 10)}` };
}

function serviceRangeAt(index: number): { range: string; base: string } {
  const i = index % serviceSupernet.size;
  const base = `${String(serviceSupernet.first[0])}.${String(serviceSupernet.first[1] + (i >> 8))}.${String(i & 255)}`;
  return { range: `${base}.0/24`, base };
}

/** Destinations of the IPv4 routes inside 10.96.0.0/12 (other worlds' Service ranges). */
function routedServiceRanges(): Set<string> {
  const routes = JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show', 'root', '10.96.0.0/12'], { encoding: 'utf8' }) || '[]') as { dst?: string }[];
  return new Set(routes.map((r) => r.dst ?? ''));
}

function addressesOf(base: string, serviceRange: string): Pick<WorldNetwork, 'serviceRange' | 'kubernetesServiceIp' | 'clusterDnsIp'> {
  return { serviceRange, kubernetesServiceIp: `${base}.1`, clusterDnsIp: `${base}.10` };
}

const ip = (args: readonly string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * Creates the sink interface: a `dummy` where the kernel has that driver, else an `ifb`, which
 * likewise has no ARP and drops every packet routed to it (this host's kernel has no dummy driver:
 * "Error: Unknown device type.").
 */
function createSink(name: string): 'dummy' | 'ifb' {
  let kind: 'dummy' | 'ifb' = 'dummy';
  try {
    ip(['link', 'add', name, 'type', 'dummy']);
  } catch (error) {
    const stderr = (error as { stderr?: string | Buffer }).stderr ?? '';
    if (!stderr.toString().includes('Unknown device type')) throw error;
    kind = 'ifb';
    ip(['link', 'add', name, 'type', 'ifb']);
  }
  ip(['link', 'set', name, 'up']);
  return kind;
}

function preferredIndex(worldDir: string): number {
  const hash = hashOf(worldDir);
  return ((hash[0] ?? 0) << 8) | (hash[1] ?? 0);
}

/** The /24 a world takes unless another world on the host routes it already. */
export function preferredServiceRange(worldDir: string): string {
  return serviceRangeAt(preferredIndex(worldDir)).range;
}

/**
 * Picks the world's Service range and, as root, routes it and `extraRanges` (the node's pod /24) to
 * a new sink interface and installs the egress guard. Call before the API server starts; undo with
 * `tearDownWorldNetwork`. Without root nothing on the host changes and `unrouted` says so.
 */
export function setUpWorldNetwork(worldDir: string, extraRanges: readonly string[]): WorldNetwork {
  const hash = hashOf(worldDir);
  const start = preferredIndex(worldDir);
  if (process.getuid?.() !== 0) {
    const { range, base } = serviceRangeAt(start);
    return { ...addressesOf(base, range), unrouted: 'not root: the Service range is not routed to a sink and no egress guard counts (ADR 0180)' };
  }
  tearDownWorldNetwork(worldDir);
  const taken = routedServiceRanges();
  let index = start;
  while (taken.has(serviceRangeAt(index).range)) {
    index++;
    if (index - start >= serviceSupernet.size) throw new Error('every /24 of 10.96.0.0/12 is routed on this host: no Service range left for a world');
  }
  const { range, base } = serviceRangeAt(index);
  const { sink, chain } = worldNetworkNames(worldDir);
  try {
    const kind = createSink(sink);
    const ranges = [range, ...extraRanges];
    // `append`: a pod /24 another world's sink already routes (hash collision) gets a second route.
    for (const r of ranges) ip(['route', 'append', r, 'dev', sink, 'metric', sinkMetric]);
    const egressGuard = installEgressGuard(chain, defaultRouteInterfaces(), `secret-binder world ${hash.toString('hex').slice(0, 10)}`);
    return { ...addressesOf(base, range), sink: { name: sink, kind, ranges }, egressGuard };
  } catch (error) {
    tearDownWorldNetwork(worldDir);
    throw error;
  }
}

/** Deletes the sink (its routes go with it) and the egress guard. Idempotent; as root only. */
export function tearDownWorldNetwork(worldDir: string): void {
  if (process.getuid?.() !== 0) return;
  const { sink, chain } = worldNetworkNames(worldDir);
  try {
    ip(['link', 'del', sink]);
  } catch {
    // Never created, or already deleted.
  }
  removeEgressGuard(chain);
}
