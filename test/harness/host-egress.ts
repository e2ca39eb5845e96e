import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { BlockList } from 'node:net';

/**
 * Counts packets to private address ranges that leave this host through an interface (ADR 0182):
 * a chain of its own in iptables' `mangle` table, jumped to first from POSTROUTING, with one rule
 * per (interface, range) and no target, so it only counts. POSTROUTING sees every packet that
 * leaves, locally sent or forwarded, after kube-proxy's DNAT and after the final route, so a count
 * is a packet that really went out through that interface.
 */

/** RFC 1918: the ranges no packet of a test world may send off this machine. */
export const privateRanges = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] as const;

export interface EgressGuard {
  /** iptables chain in the mangle table (≤ 28 characters). */
  readonly chain: string;
  /** The interfaces counted on (the default route's, for a world). */
  readonly interfaces: readonly string[];
}

export interface EgressCount {
  readonly interface: string;
  readonly range: string;
  readonly packets: number;
  readonly bytes: number;
}

const iptables = (args: readonly string[]): string => execFileSync('iptables', ['-w', '5', '-t', 'mangle', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The interfaces of this host's default routes (`ip route show default`); empty without one. */
export function defaultRouteInterfaces(): string[] {
  const routes = JSON.parse(execFileSync('ip', ['-j', '-4', 'route', 'show', 'default'], { encoding: 'utf8' }) || '[]') as { dev?: string }[];
  return [...new Set(routes.map((r) => r.dev).filter((d): d is string => d !== undefined))];
}

/** Creates (or re-creates, counters at zero) the counting chain and its jump from POSTROUTING. */
export function installEgressGuard(chain: string, interfaces: readonly string[], comment: string): EgressGuard {
  removeEgressGuard(chain);
  iptables(['-N', chain]);
  for (const dev of interfaces) {
    for (const range of privateRanges) iptables(['-A', chain, '-o', dev, '-d', range, '-m', 'comment', '--comment', comment]);
  }
  iptables(['-I', 'POSTROUTING', '1', '-j', chain]);
  return { chain, interfaces: [...interfaces] };
}

/** The counters of a guard's rules; throws when its chain is gone (a guard that counts nothing). */
export function egressCounts(guard: EgressGuard): EgressCount[] {
  // `-S -v` prints each rule with `-c <packets> <bytes>`.
  return iptables(['-S', guard.chain, '-v'])
    .split('\n')
    .flatMap((line) => {
      const match = / -d (\S+) -o (\S+) .* -c (\d+) (\d+)$/.exec(line);
      return match === null ? [] : [{ range: match[1] ?? '', interface: match[2] ?? '', packets: Number(match[3]), bytes: Number(match[4]) }];
    });
}

/** Removes the jump and the chain; nothing when they do not exist. */
export function removeEgressGuard(chain: string): void {
  for (;;) {
    try {
      iptables(['-D', 'POSTROUTING', '-j', chain]);
    } catch {
      break;
    }
  }
  for (const args of [['-F', chain], ['-X', chain]]) {
    try {
      iptables(args);
    } catch {
      // No such chain.
    }
  }
}

const privateList = new BlockList();
for (const range of privateRanges) {
  const [network = '', prefix = ''] = range.split('/');
  privateList.addSubnet(network, Number(prefix), 'ipv4');
}

/**
 * For a failure report: the flows conntrack tracks now to a private address that no NAT translated
 * and that the host routes out through one of `interfaces` — the likely senders of counted packets.
 */
export function untranslatedPrivateFlows(interfaces: readonly string[]): string[] {
  if (!existsSync('/proc/net/nf_conntrack')) return [];
  const routedOut = new Map<string, boolean>();
  return readFileSync('/proc/net/nf_conntrack', 'utf8')
    .split('\n')
    .filter((line) => {
      const dst = / dst=(\S+)/.exec(line)?.[1];
      const replySrc = /src=\S+ dst=\S+ .*? src=(\S+)/.exec(line)?.[1];
      if (dst === undefined || dst !== replySrc || !privateList.check(dst, 'ipv4')) return false;
      if (!routedOut.has(dst)) {
        const route = JSON.parse(execFileSync('ip', ['-j', 'route', 'get', dst], { encoding: 'utf8' })) as { dev?: string }[];
        routedOut.set(dst, interfaces.includes(route[0]?.dev ?? ''));
      }
      return routedOut.get(dst) === true;
    })
    .map((line) => line.replace(/\s+/g, ' ').trim());
}
