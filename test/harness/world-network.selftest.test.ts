import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preferredServiceRange, setUpWorldNetwork, tearDownWorldNetwork, worldNetworkNames } from './world-network.ts';

/**
 * Two worlds on one host get different Service ranges, each routed to its own sink, and `down`
 * leaves nothing behind (ADR 0180). The second world's directory is chosen so that it would prefer
 * the first world's /24: it must take another.
 */

const root = process.getuid?.() === 0;
if (!root) process.stderr.write('world network selftest SKIPPED: routes and interfaces need root\n');
const describeRoot = root ? describe : describe.skip;

const first = join(tmpdir(), `sb-netselftest-${String(process.pid)}-a`);
const firstRange = preferredServiceRange(first);
let second = '';
for (let i = 0; second === ''; i++) {
  const candidate = join(tmpdir(), `sb-netselftest-${String(process.pid)}-b${String(i)}`);
  if (preferredServiceRange(candidate) === firstRange) second = candidate;
}

const routeDev = (address: string): string | undefined => (JSON.parse(execFileSync('ip', ['-j', 'route', 'get', address], { encoding: 'utf8' })) as { dev?: string }[])[0]?.dev;
const linkExists = (name: string): boolean => {
  try {
    execFileSync('ip', ['link', 'show', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

describeRoot('world networks on one host', () => {
  afterAll(() => {
    tearDownWorldNetwork(first);
    tearDownWorldNetwork(second);
  });

  it('routes each world’s own /24 to its own sink, and removes sink, routes and guard on tear-down', () => {
    const a = setUpWorldNetwork(first, []);
    const b = setUpWorldNetwork(second, []);
    expect(a.serviceRange).toBe(firstRange);
    expect(b.serviceRange).not.toBe(a.serviceRange);
    expect(b.serviceRange).toMatch(/^10\.(9[6-9]|10\d|11[01])\.\d+\.0\/24$/);
    expect(routeDev(a.kubernetesServiceIp)).toBe(worldNetworkNames(first).sink);
    expect(routeDev(b.clusterDnsIp)).toBe(worldNetworkNames(second).sink);
    expect(execFileSync('iptables', ['-t', 'mangle', '-S', 'POSTROUTING'], { encoding: 'utf8' })).toContain(worldNetworkNames(second).chain);

    tearDownWorldNetwork(first);
    tearDownWorldNetwork(second);
    expect(linkExists(worldNetworkNames(first).sink)).toBe(false);
    expect(routeDev(b.clusterDnsIp)).not.toBe(worldNetworkNames(second).sink);
    expect(execFileSync('iptables', ['-t', 'mangle', '-S'], { encoding: 'utf8' })).not.toMatch(new RegExp(`${worldNetworkNames(first).chain}|${worldNetworkNames(second).chain}`));
  });
});
