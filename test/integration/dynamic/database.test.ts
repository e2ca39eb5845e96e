import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import type { PostgresEndpoint } from '../../harness/world-state.ts';
import type { OpenBaoEndpoint } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { startDeliveryWorld, type DeliveryWorld } from '../rotation/delivery-world.ts';
import { createDatabaseRole, credentialIn, databaseBindingSpec, leasesOf, loginAs, lookupLease, openBaoRoles, parseDsn, worldPostgres } from './dynamic-world.ts';

/**
 * Dynamic database credentials (issue 21) against real servers: OpenBao's database engine on the
 * world's PostgreSQL, the controller and its broker in-process, node plugins writing real tmpfs.
 * perPod: each pod its own PostgreSQL role that logs in; a deleted pod's role dropped; a deleted
 * binding's roles all dropped. Renewal: a 30 s lease renewed (same credential) until its max TTL,
 * then a new credential, whole, and the old role dropped once the new one is served. A controller
 * stopped and started again: OpenBao's leases are exactly those of the live pods.
 */

let world: DeliveryWorld;
let bao: OpenBaoEndpoint;
let postgres: PostgresEndpoint;

const deleteBinding = (name: string): Promise<unknown> =>
  world.custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: world.ns, name });

/** Waits until OpenBao's roles in PostgreSQL satisfy `check`; returns them. */
const rolesUntil = (what: string, check: (roles: readonly string[]) => boolean, timeoutMs: number): Promise<string[]> =>
  eventually(what, async () => {
    const roles = await openBaoRoles(postgres);
    return check(roles) ? roles : undefined;
  }, timeoutMs);

describe('dynamic database credentials', () => {
  beforeAll(async () => {
    ({ bao, pg: postgres } = await worldPostgres());
    world = await startDeliveryWorld({ prefix: 'dyn', nodes: 2 });
  }, 120_000);

  afterAll(async () => {
    await world.close();
  }, 120_000);

  it('gives each of 3 pods its own role, drops a deleted pod\'s role within 10 s and every role with the binding', async () => {
    const role = `perpod-${world.suffix}`;
    await createDatabaseRole(bao, role, { defaultSeconds: 3600, maxSeconds: 7200 });
    await world.createBinding('db', databaseBindingSpec('db', role, 'perPod', postgres));
    const pods = await Promise.all([0, 1, 2].map((i) => world.podWithVolume(`web-${String(i)}`, 'db', i % 2)));
    const credentials = await Promise.all(pods.map(({ mount }) => credentialIn(mount.targetPath)));
    const users = credentials.map((c) => c.username ?? '');
    expect(new Set(users).size).toBe(3);
    for (const c of credentials) {
      expect(await loginAs(postgres, c.username ?? '', c.password ?? '')).toBe(c.username);
      // The templated DSN carries the same credential.
      expect(parseDsn(c.dsn ?? '')).toEqual({ user: c.username, password: c.password });
    }
    const before = await openBaoRoles(postgres);
    for (const user of users) expect(before).toContain(user);
    expect(await leasesOf(bao, role)).toHaveLength(3);

    const deleted = users[0] ?? '';
    const deletedAt = Date.now();
    await world.core.deleteNamespacedPod({ namespace: world.ns, name: 'web-0', gracePeriodSeconds: 0 });
    const after = await rolesUntil(`role of web-0 dropped`, (roles) => !roles.includes(deleted), 10_000);
    process.stdout.write(`dynamic: role of a deleted pod dropped ${String(Date.now() - deletedAt)} ms after the delete\n`);
    expect(after).toContain(users[1]);
    expect(after).toContain(users[2]);
    expect(await loginAs(postgres, users[1] ?? '', credentials[1]?.password ?? '')).toBe(users[1]);
    expect(await leasesOf(bao, role)).toHaveLength(2);

    await deleteBinding('db');
    await rolesUntil('every role of the binding dropped', (roles) => !roles.some((r) => users.includes(r)), 15_000);
    expect(await leasesOf(bao, role)).toEqual([]);
    for (const c of credentials.slice(1)) expect(await loginAs(postgres, c.username ?? '', c.password ?? '')).toMatch(/^refused/);
  }, 90_000);

  it('renews a 30 s lease with the same credential until its max TTL, then serves a new one and drops the old role', async () => {
    const role = `renew-${world.suffix}`;
    // 30 s leases, at most 50 s: renewed at 20 s (to 50 s), re-issued at 40 s (a third of the TTL before the end).
    await createDatabaseRole(bao, role, { defaultSeconds: 30, maxSeconds: 50 });
    await world.createBinding('renewed', databaseBindingSpec('renewed', role, 'perWorkload', postgres));
    const { mount } = await world.podWithVolume('renewed-0', 'renewed', 0);
    const first = await credentialIn(mount.targetPath);
    const [leaseId] = await leasesOf(bao, role);
    expect(leaseId).toBeDefined();

    // The renewal: the same lease and credential, renewed by the controller.
    await eventually('lease renewed', async () => ((await lookupLease(bao, leaseId ?? '')).last_renewal === null ? undefined : true), 30_000);
    const renewed = await credentialIn(mount.targetPath);
    expect(renewed.username).toBe(first.username);
    expect(await loginAs(postgres, renewed.username ?? '', renewed.password ?? '')).toBe(first.username);

    // The re-issue before the max TTL: new files, whole (the DSN holds user and password in one read).
    const next = await eventually('new credential served', async () => {
      const now = await credentialIn(mount.targetPath);
      return now.dsn !== undefined && now.dsn !== first.dsn ? now : undefined;
    }, 40_000);
    const { user, password } = parseDsn(next.dsn ?? '');
    expect(user).not.toBe(first.username);
    expect(await loginAs(postgres, user, password)).toBe(user);
    // The old role goes once the new credential is served, before its lease would have ended.
    await rolesUntil('old role dropped', (roles) => !roles.includes(first.username ?? '') && roles.includes(user), 15_000);
    expect(await leasesOf(bao, role)).toHaveLength(1);
    await deleteBinding('renewed');
    await eventually('leases of the deleted binding revoked', async () => ((await leasesOf(bao, role)).length === 0 ? true : undefined), 15_000);
  }, 120_000);

  it('after a controller restart, OpenBao holds exactly the leases of the live pods', async () => {
    const role = `restart-${world.suffix}`;
    await createDatabaseRole(bao, role, { defaultSeconds: 3600, maxSeconds: 7200 });
    await world.createBinding('kept', databaseBindingSpec('kept', role, 'perPod', postgres));
    const pods = await Promise.all([0, 1, 2].map((i) => world.podWithVolume(`kept-${String(i)}`, 'kept', i % 2)));
    const users = await Promise.all(pods.map(async ({ mount }) => (await credentialIn(mount.targetPath)).username ?? ''));
    const leasesBefore = await leasesOf(bao, role);
    expect(leasesBefore).toHaveLength(3);

    // Down: a pod goes while no controller runs; nothing may be revoked by the stop itself.
    await world.restartController(async () => {
      expect(await leasesOf(bao, role)).toEqual(leasesBefore);
      await world.core.deleteNamespacedPod({ namespace: world.ns, name: 'kept-0', gracePeriodSeconds: 0 });
    });
    // The new controller finds the leases it issued before (in OpenBao) and revokes only the dead pod's.
    await rolesUntil('the deleted pod\'s role dropped after the restart', (roles) => !roles.includes(users[0] ?? ''), 30_000);
    const leasesAfter = await leasesOf(bao, role);
    expect(leasesAfter).toHaveLength(2);
    for (const id of leasesAfter) expect(leasesBefore).toContain(id);
    const roles = await openBaoRoles(postgres);
    expect(roles).toContain(users[1]);
    expect(roles).toContain(users[2]);
    await deleteBinding('kept');
    await eventually('leases of the deleted binding revoked', async () => ((await leasesOf(bao, role)).length === 0 ? true : undefined), 15_000);
  }, 90_000);
});
