import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { registerNeedle } from '../harness/leak-capture.ts';
import { projectImageReference } from '../harness/node/project-image.ts';
import { realNodeUnavailable } from '../harness/node/real-node.ts';
import type { OpenBaoEndpoint, PostgresEndpoint } from '../harness/world-state.ts';
import { currentWorld } from '../harness/world-state.ts';
import { createDatabaseRole, createPkiRole, leasesOf, loginAs, openBaoRoles, worldPostgres } from '../integration/dynamic/dynamic-world.ts';
import { eventually } from '../integration/support/cluster.ts';
import { mountPath, startDynamicNodeWorld, type DynamicNodeWorld } from './dynamic-node-world.ts';

/**
 * Dynamic secrets on the real node (issue 21): kubelet + containerd run the pods, the node plugin
 * publishes their volumes, the controller is a separate process. A Deployment of 3 pods with a
 * perPod database binding gets 3 PostgreSQL roles that log in with what the pods read; a deleted
 * pod's role is dropped within 10 s; after a SIGKILL of the controller and a new one, OpenBao's
 * leases are exactly the live pods'; the binding's deletion drops them all. Two pods with per-pod
 * certificates complete a mutual TLS handshake over the pod network, each seeing the other's
 * templated names.
 */

const unavailable = realNodeUnavailable();
if (unavailable !== undefined) process.stderr.write(`dynamic e2e tier SKIPPED: ${unavailable}\n`);
const describeNode = unavailable === undefined ? describe : describe.skip;

const suffix = randomBytes(3).toString('hex');
// OpenBao names a PostgreSQL role `v-<display>-<role, 8 chars>-…`: a 7-character role name finds this suite's roles.
const dbRole = `n${suffix}`;

let w: DynamicNodeWorld;
let bao: OpenBaoEndpoint;
let postgres: PostgresEndpoint;

const podNames = (pods: readonly { metadata?: { name?: string } }[]): string[] => pods.map((p) => p.metadata?.name ?? '');
const ourRoles = async (): Promise<string[]> => (await openBaoRoles(postgres)).filter((r) => r.includes(`-${dbRole}-`)).sort();

/** What a pod reads from its volume, as a user would (`kubectl exec`). */
async function credentialOf(pod: string): Promise<{ username: string; password: string }> {
  const [username, password] = await Promise.all(['username', 'password'].map((f) => w.exec(pod, 'app', ['cat', `${mountPath}/${f}`])));
  registerNeedle(password ?? '', 'dynamic database password (real node)');
  return { username: username ?? '', password: password ?? '' };
}

/** Each live pod's credential, once `count` pods run. */
async function liveCredentials(count: number): Promise<Map<string, { username: string; password: string }>> {
  const pods = podNames(await w.runningPods('app=web', count));
  return new Map(await Promise.all(pods.map(async (p) => [p, await credentialOf(p)] as const)));
}

describeNode('dynamic secrets on the real node: perPod database roles, SIGKILLed controller, per-pod TLS', () => {
  beforeAll(async () => {
    ({ bao, pg: postgres } = await worldPostgres());
    const t0 = Date.now();
    w = await startDynamicNodeWorld(currentWorld(), { suffix, log: (line) => process.stdout.write(`[+${String(Date.now() - t0)} ms] ${line}\n`) });
    process.stdout.write(`dynamic e2e: image, node, controller and plugin ready in ${String(Date.now() - t0)} ms\n`);
  }, 300_000);

  afterAll(async () => {
    const t0 = Date.now();
    await w.stop();
    process.stdout.write(`dynamic e2e: stopped in ${String(Date.now() - t0)} ms\n`);
  }, 180_000);

  it('a Deployment of 3 pods: 3 roles that log in, a deleted pod\'s role dropped within 10 s, leases equal to the live pods after a SIGKILL, all revoked with the binding', async () => {
    await createDatabaseRole(bao, dbRole, { defaultSeconds: 3600, maxSeconds: 7200 });
    await w.createBinding('db', {
      podSelector: { matchLabels: { app: 'web' } },
      dynamic: { path: `database/creds/${dbRole}`, scope: 'perPod', files: [{ path: 'username', field: 'username' }, { path: 'password', field: 'password' }] },
    });
    await w.createDeployment('web', 'db', 3);
    const first = await liveCredentials(3);
    const users = [...first.values()].map((c) => c.username);
    expect(new Set(users).size).toBe(3);
    for (const c of first.values()) expect(await loginAs(postgres, c.username, c.password)).toBe(c.username);
    expect(await ourRoles()).toEqual([...users].sort());
    expect(await leasesOf(bao, dbRole)).toHaveLength(3);

    // A deleted pod: its role is dropped within 10 s; the Deployment's replacement gets its own.
    const [gone, ...kept] = [...first.keys()];
    const goneUser = first.get(gone ?? '')?.username ?? '';
    const deletedAt = Date.now();
    await w.core.deleteNamespacedPod({ namespace: w.ns, name: gone ?? '', gracePeriodSeconds: 0 });
    await eventually(`role of ${gone ?? ''} dropped`, async () => ((await ourRoles()).includes(goneUser) ? undefined : true), 10_000);
    process.stdout.write(`dynamic e2e: role of a deleted pod dropped ${String(Date.now() - deletedAt)} ms after the delete\n`);
    expect(await loginAs(postgres, goneUser, first.get(gone ?? '')?.password ?? '')).toMatch(/^refused/);
    const second = await liveCredentials(3);
    expect(new Set([...second.values()].map((c) => c.username)).size).toBe(3);
    for (const pod of kept) expect(second.get(pod)).toEqual(first.get(pod));
    await eventually('3 leases for 3 live pods', async () => ((await leasesOf(bao, dbRole)).length === 3 ? true : undefined), 15_000);

    // SIGKILL: a pod goes while no controller runs; the new controller revokes only its lease.
    const leasesBefore = await leasesOf(bao, dbRole);
    const [victim, ...survivors] = [...second.keys()];
    const victimUser = second.get(victim ?? '')?.username ?? '';
    await w.killController(async () => {
      expect(await leasesOf(bao, dbRole)).toEqual(leasesBefore);
      await w.core.deleteNamespacedPod({ namespace: w.ns, name: victim ?? '', gracePeriodSeconds: 0 });
    });
    const third = await eventually('after the restart, OpenBao\'s leases and roles are the live pods\'', async () => {
      const live = await liveCredentials(3);
      const roles = await ourRoles();
      const leases = await leasesOf(bao, dbRole);
      const liveUsers = [...live.values()].map((c) => c.username).sort();
      return leases.length === 3 && JSON.stringify(roles) === JSON.stringify(liveUsers) ? { live, leases } : undefined;
    }, 60_000);
    expect([...third.live.values()].map((c) => c.username)).not.toContain(victimUser);
    // No premature revoke: the survivors keep their leases and credentials.
    expect(third.leases.filter((l) => leasesBefore.includes(l))).toHaveLength(2);
    for (const pod of survivors) {
      const c = second.get(pod);
      expect(third.live.get(pod)).toEqual(c);
      expect(await loginAs(postgres, c?.username ?? '', c?.password ?? '')).toBe(c?.username);
    }

    await w.deleteBinding('db');
    await eventually('every lease of the deleted binding revoked', async () => ((await leasesOf(bao, dbRole)).length === 0 && (await ourRoles()).length === 0 ? true : undefined), 15_000);
    await w.apps.deleteNamespacedDeployment({ namespace: w.ns, name: 'web' });
  }, 240_000);

  it('two pods with per-pod certificates complete a mutual TLS handshake over the pod network, each seeing the other\'s templated names', async () => {
    const role = `tls-${suffix}`;
    await createPkiRole(bao, role, '1h');
    await w.createBinding('tls', {
      podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['tls-server', 'tls-client'] }] },
      rotation: { strategy: 'Refresh' },
      pki: {
        role,
        commonName: '{{ podName }}.{{ namespace }}.pod',
        dnsNames: ['{{ podName }}.{{ namespace }}.pod'],
        spiffeId: 'spiffe://cluster.local/ns/{{ namespace }}/sa/{{ serviceAccount }}',
        ttl: '1h',
      },
    });
    const files = `const fs = require('node:fs'); const f = (n) => fs.readFileSync('${mountPath}/' + n);`;
    const server = `${files} require('node:tls').createServer({ cert: f('tls.crt'), key: f('tls.key'), ca: f('ca.crt'), requestCert: true, rejectUnauthorized: true }, (s) => {
      const peer = s.getPeerX509Certificate();
      console.log('client ' + JSON.stringify({ authorized: s.authorized, subject: peer && peer.subject, san: peer && peer.subjectAltName }));
      s.end('hello');
    }).listen(8443);`;
    const asRoot = { runAsUser: 0 };
    await Promise.all([
      w.createDeployment('tls-server', 'tls', 1, { image: projectImageReference, command: ['node', '-e', server], securityContext: asRoot }),
      w.createDeployment('tls-client', 'tls', 1, { image: projectImageReference, command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], securityContext: asRoot }),
    ]);
    const [serverPod] = await w.runningPods('app=tls-server', 1);
    const [clientPod] = await w.runningPods('app=tls-client', 1);
    const serverName = serverPod?.metadata?.name ?? '';
    const clientName = clientPod?.metadata?.name ?? '';
    const serverIp = serverPod?.status?.podIP ?? '';
    expect(serverIp).not.toBe('');

    // The client verifies the server against ca.crt and the name it asks for (Node's checkServerIdentity).
    const client = `${files} const s = require('node:tls').connect({ host: '${serverIp}', port: 8443, servername: '${serverName}.${w.ns}.pod', cert: f('tls.crt'), key: f('tls.key'), ca: f('ca.crt') }, () => {
      const peer = s.getPeerX509Certificate();
      s.on('data', (d) => { console.log(JSON.stringify({ authorized: s.authorized, subject: peer.subject, san: peer.subjectAltName, said: String(d) })); s.end(); });
    }); s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exitCode = 1; });`;
    const answer = await eventually('the client\'s handshake', async () => w.exec(clientName, 'app', ['node', '-e', client]).catch(() => undefined), 30_000);
    const seen = JSON.parse(answer.trim()) as { authorized: boolean; subject: string; san: string; said: string };
    process.stdout.write(`dynamic e2e: TLS client ${clientName} saw ${JSON.stringify(seen)}\n`);
    expect(seen.authorized).toBe(true);
    expect(seen.said).toBe('hello');
    expect(seen.subject).toContain(`CN=${serverName}.${w.ns}.pod`);
    expect(seen.san).toContain(`DNS:${serverName}.${w.ns}.pod`);
    expect(seen.san).toContain(`URI:spiffe://cluster.local/ns/${w.ns}/sa/default`);

    // The server required and verified the client's certificate.
    const serverLog = await eventually('the server logged its client', async () => {
      const log = await w.kubectl(['logs', serverName, '-c', 'app']);
      return log.includes('client ') ? log : undefined;
    }, 15_000);
    const sawClient = JSON.parse(serverLog.split('\n').find((l) => l.startsWith('client '))?.slice('client '.length) ?? '{}') as { authorized: boolean; subject: string; san: string };
    expect(sawClient.authorized).toBe(true);
    expect(sawClient.subject).toContain(`CN=${clientName}.${w.ns}.pod`);
    expect(sawClient.san).toContain(`DNS:${clientName}.${w.ns}.pod`);
    expect(sawClient.san).toContain(`URI:spiffe://cluster.local/ns/${w.ns}/sa/default`);

    // The keys stayed on the node: the controller's log has none.
    for (const pod of [serverName, clientName]) {
      const key = await w.exec(pod, 'app', ['node', '-e', `process.stdout.write(require('node:fs').readFileSync('${mountPath}/tls.key', 'utf8'))`]);
      const line = key.split('\n')[1] ?? '';
      expect(line).not.toBe('');
      registerNeedle(key.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'pki private key (real node)');
      expect(w.controller().log()).not.toContain(line);
    }
  }, 180_000);
});
