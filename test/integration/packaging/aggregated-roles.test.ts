import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { AuthorizationV1Api, CoreV1Api, RbacAuthorizationV1Api, type V1ClusterRole } from '@kubernetes/client-node';
import { adminKubeConfig, eventually } from '../support/cluster.ts';
import { find, template } from './helm.support.ts';

/**
 * Multi-tenancy: the chart's aggregated ClusterRoles, applied to the real API server, extend the
 * built-in view / edit / admin roles (the controller manager's aggregation controller merges them),
 * so a namespace RoleBinding to `view`, `edit` or `admin` grants the matching rights on our kinds
 * there — and nothing on ClusterSecretBackends.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `aggr-${suffix}`;
const fullname = `sbaggr-${suffix}`;
const users = { view: `viewer-${suffix}`, edit: `editor-${suffix}`, admin: `admin-${suffix}` } as const;

let rbac: RbacAuthorizationV1Api;
let core: CoreV1Api;
let roles: V1ClusterRole[] = [];

/** A SubjectAccessReview; `namespace` null asks about the cluster scope. */
async function can(user: string, verb: string, resource: string, namespace: string | null = ns): Promise<boolean> {
  const review = await adminKubeConfig()
    .makeApiClient(AuthorizationV1Api)
    .createSubjectAccessReview({ body: { spec: { user, resourceAttributes: { group: 'secretbinder.dev', resource, verb, ...(namespace === null ? {} : { namespace }) } } } });
  return review.status?.allowed === true;
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  core = kc.makeApiClient(CoreV1Api);
  const { manifests, result } = await template({ values: { fullnameOverride: fullname } });
  if (result.code !== 0) throw new Error(result.stderr);
  roles = find(manifests, 'ClusterRole').filter((r) => /-(view|edit|admin)$/.test(r.metadata.name));
  for (const role of roles) await rbac.createClusterRole({ body: role });
  await core.createNamespace({ body: { metadata: { name: ns } } });
  for (const [role, user] of Object.entries(users)) {
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: { metadata: { name: role }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role }, subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }] },
    });
  }
}, 60_000);

afterAll(async () => {
  for (const role of roles) await rbac.deleteClusterRole({ name: role.metadata?.name ?? '' }).catch(() => undefined);
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe('aggregated ClusterRoles', () => {
  it('renders view, edit and admin roles with the aggregation labels, and none when turned off', async () => {
    expect(roles.map((r) => r.metadata?.name).sort()).toEqual([`${fullname}-admin`, `${fullname}-edit`, `${fullname}-view`]);
    const off = await template({ values: { fullnameOverride: fullname, aggregatedRoles: { enabled: false } } });
    expect(find(off.manifests, 'ClusterRole').map((r) => r.metadata.name)).not.toContain(`${fullname}-view`);
  });

  it('lets view read, edit write bindings, admin write backends — in their namespace only, never cluster backends', async () => {
    // The aggregation controller fills the built-in roles asynchronously.
    await eventually('the built-in roles aggregate ours', async () => ((await can(users.admin, 'create', 'secretbackends')) ? true : undefined), 30_000);
    expect(await can(users.view, 'list', 'secretbindings')).toBe(true);
    expect(await can(users.view, 'get', 'secretbackends')).toBe(true);
    expect(await can(users.view, 'create', 'secretbindings')).toBe(false);
    expect(await can(users.edit, 'create', 'secretbindings')).toBe(true);
    expect(await can(users.edit, 'create', 'secretbackends')).toBe(false);
    expect(await can(users.admin, 'delete', 'secretbackends')).toBe(true);
    expect(await can(users.edit, 'list', 'secretbindings', 'default')).toBe(false);
    for (const user of Object.values(users)) expect(await can(user, 'create', 'clustersecretbackends', null)).toBe(false);
  }, 60_000);
});
