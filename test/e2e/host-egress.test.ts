import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { defaultRouteInterfaces, egressCounts, installEgressGuard, privateRanges, removeEgressGuard, untranslatedPrivateFlows, type EgressCount } from '../harness/host-egress.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, eventually } from '../integration/support/cluster.ts';

/**
 * Nothing of the test world leaves this host for a private address (ADR 0180, 0182). Runs after
 * every other test file of the run (test/harness/jest.sequencer.ts): the world's egress guard has
 * counted, since the world started, every packet to 10/8, 172.16/12 and 192.168/16 that went out
 * through the default route's interface; there must be none. That the guard's rules count at all is
 * shown first on an interface of this test's own, so the final zero cannot be a rule that never
 * matches. No packet of this file leaves the host: the probes go to sink interfaces.
 */

const network = currentWorld().network;
const guard = network?.egressGuard;
if (guard === undefined) process.stderr.write(`host egress check SKIPPED: ${network?.unrouted ?? 'the world has no network record'}\n`);
const describeGuarded = guard === undefined ? describe.skip : describe;

const tag = process.pid.toString(16).slice(-5);
const probe = { dev: `sbprobe${tag}`, chain: `SB-EGRESS-PROBE-${tag}`, address: `10.255.${String(process.pid % 250)}.${String(1 + (process.pid % 200))}` };

async function sendDatagram(address: string): Promise<void> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.send('secret-binder egress probe', 9, address, (error) => {
        if (error === null) resolve();
        else reject(error);
      });
    });
  } finally {
    socket.close();
  }
}

/** Packets handed to a sink: a dummy counts them as sent, an ifb (not fed by tc) as dropped on receipt. */
const sunk = (dev: string): number => ['tx_packets', 'rx_dropped'].reduce((sum, c) => sum + Number(readFileSync(`/sys/class/net/${dev}/statistics/${c}`, 'utf8')), 0);
const total = (counts: readonly EgressCount[]): number => counts.reduce((sum, c) => sum + c.packets, 0);

describeGuarded('nothing leaves the host for a private address', () => {
  afterAll(() => {
    removeEgressGuard(probe.chain);
    try {
      execFileSync('ip', ['link', 'del', probe.dev], { stdio: 'ignore' });
    } catch {
      // Not created.
    }
  });

  it('the guard counts a packet routed out through the interface it watches (on a probe interface of this test)', async () => {
    execFileSync('ip', ['link', 'add', probe.dev, 'type', 'ifb']);
    execFileSync('ip', ['link', 'set', probe.dev, 'up']);
    execFileSync('ip', ['route', 'add', `${probe.address}/32`, 'dev', probe.dev]);
    const probeGuard = installEgressGuard(probe.chain, [probe.dev], 'secret-binder egress self-check');
    expect(total(egressCounts(probeGuard))).toBe(0);
    await sendDatagram(probe.address);
    const counts = await eventually('the probe packet counted', () => Promise.resolve(total(egressCounts(probeGuard)) > 0 ? egressCounts(probeGuard) : undefined), 10_000);
    expect(counts.find((c) => c.range === '10.0.0.0/8')?.packets).toBe(1);
    expect(counts.filter((c) => c.range !== '10.0.0.0/8').every((c) => c.packets === 0)).toBe(true);
  });

  it('routes a ClusterIP that no Service holds to the world’s sink, not out', async () => {
    const sink = network?.sink;
    if (sink === undefined || network === undefined) throw new Error('the world has a guard but no sink');
    const taken = new Set((await adminKubeConfig().makeApiClient(CoreV1Api).listServiceForAllNamespaces()).items.flatMap((s) => s.spec?.clusterIPs ?? []));
    const base = network.serviceRange.replace(/\.0\/24$/, '');
    const free = [...Array(250).keys()].map((i) => `${base}.${String(254 - i)}`).find((a) => !taken.has(a)) ?? '';
    const route = JSON.parse(execFileSync('ip', ['-j', 'route', 'get', free], { encoding: 'utf8' })) as { dev?: string }[];
    expect(route[0]?.dev).toBe(sink.name);
    const before = sunk(sink.name);
    if (guard === undefined) throw new Error('no guard');
    const leftBefore = total(egressCounts(guard));
    await sendDatagram(free);
    await eventually('the packet reached the sink', () => Promise.resolve(sunk(sink.name) > before ? true : undefined), 10_000);
    expect(total(egressCounts(guard))).toBe(leftBefore);
  });

  it('counted no packet to a private range through the default route’s interface during the whole run', () => {
    if (guard === undefined) throw new Error('no guard');
    // The guard watches the interfaces the default route uses now, every private range on each.
    expect([...guard.interfaces].sort()).toEqual(defaultRouteInterfaces().sort());
    const counts = egressCounts(guard);
    expect(counts).toHaveLength(guard.interfaces.length * privateRanges.length);
    process.stdout.write(`host egress: ${counts.map((c) => `${c.interface} ${c.range}: ${String(c.packets)} packets`).join('; ')}\n`);
    const leaked = counts.filter((c) => c.packets > 0);
    // The guard counts host-wide; the flows conntrack still tracks name the likely senders.
    if (leaked.length > 0) process.stdout.write(`host egress: flows to private addresses routed out now:\n${untranslatedPrivateFlows(guard.interfaces).join('\n')}\n`);
    expect(leaked).toEqual([]);
  });
});
