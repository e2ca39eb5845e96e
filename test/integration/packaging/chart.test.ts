import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { parseControllerConfig } from '../../../src/config/controller.config.ts';
import { parseNodePluginConfig } from '../../../src/delivery/csi/node-plugin.config.ts';
import { webhookConfigurations } from '../../../src/webhook/webhook-configurations.ts';
import { adminKubeConfig } from '../support/cluster.ts';
import {
  chartDir,
  find,
  helm,
  kubectl,
  only,
  plainManifestPath,
  renderPlainManifests,
  root,
  template,
  valuesFile,
  type Manifest,
} from './helm.support.ts';

/**
 * The Helm chart, rendered: lint, the schema, every value set accepted by the real API server
 * (server-side dry-run), least-privilege RBAC, the pods' security settings, flags the binaries
 * actually parse, and no drift from crds/, the webhook code and the plain manifests in deploy/.
 */

const suffix = randomBytes(3).toString('hex');
const releaseNs = `pkg-chart-${suffix}`;
const watched = [`pkg-chart-a-${suffix}`, `pkg-chart-b-${suffix}`];

/** Kinds whose APIs the test world does not serve (cert-manager, prometheus-operator). */
const foreignGroups = ['cert-manager.io/', 'monitoring.coreos.com/'];

const valueSets: Record<string, unknown> = {
  default: {},
  namespaced: { watchNamespaces: watched },
  certManager: { certManager: { enabled: true } },
  certManagerClusterIssuer: { certManager: { enabled: true, issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' } } },
  observability: { metrics: { serviceMonitor: { enabled: true } }, networkPolicy: { enabled: true } },
  minimal: { controller: { replicas: 1, rollingRestart: { enabled: false } }, webhook: { enabled: false }, nodePlugin: { enabled: false } },
  tokenAccounts: { tokenServiceAccounts: ['vault-reader', 'aws-reader'] },
  existingSecrets: { brokerTls: { existingSecret: 'my-broker-tls' }, hmacKey: { existingSecret: 'my-hmac' }, image: { digest: `sha256:${'a'.repeat(64)}` } },
  eventGridEntra: { changeNotices: { azureEventGrid: { enabled: true, entra: { enabled: true, tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', audience: 'api://secret-binder-events' } } } },
  changeNotices: {
    networkPolicy: { enabled: true },
    changeNotices: {
      vaultAudit: { enabled: true, prefixSecret: 'bao-audit-prefix' },
      vaultEvents: { enabled: true, backend: 'ClusterSecretBackend/vault-enterprise' },
      awsSqs: { enabled: true, queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/secret-changes', backend: 'ClusterSecretBackend/aws' },
      azureEventGrid: { enabled: true, secretName: 'event-grid-secret' },
    },
  },
};

type Rule = { apiGroups?: string[]; resources?: string[]; verbs?: string[]; resourceNames?: string[] };
type Container = {
  name: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; mountPropagation?: string }[];
  ports?: { name: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
  image?: string;
};
type PodSpec = {
  containers: Container[];
  volumes?: Record<string, unknown>[];
  securityContext?: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
  affinity?: Record<string, unknown>;
};

function podSpec(m: Manifest): PodSpec {
  return (m as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

function rules(m: Manifest): Rule[] {
  return (m as unknown as { rules?: Rule[] }).rules ?? [];
}

const rendered: Record<string, Manifest[]> = {};
/** Each value set rendered twice, as two GitOps syncs would (ADR 0155). */
const texts: Record<string, [string, string]> = {};

beforeAll(async () => {
  await Promise.all(
    Object.entries(valueSets).map(async ([name, values]) => {
      const [first, second] = await Promise.all([template({ namespace: releaseNs, values }), template({ namespace: releaseNs, values })]);
      for (const { result } of [first, second]) if (result.code !== 0) throw new Error(`helm template (${name}) failed: ${result.stderr}`);
      rendered[name] = first.manifests;
      texts[name] = [first.text, second.text];
    }),
  );
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  for (const ns of [releaseNs, ...watched]) await core.createNamespace({ body: { metadata: { name: ns } } });
}, 120_000);

afterAll(async () => {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  for (const ns of [releaseNs, ...watched]) await core.deleteNamespace({ name: ns }).catch(() => undefined);
}, 60_000);

function set(name: string): Manifest[] {
  const manifests = rendered[name];
  if (manifests === undefined) throw new Error(`value set ${name} not rendered`);
  return manifests;
}

describe('chart', () => {
  it('passes helm lint --strict with every value set', async () => {
    for (const [name, values] of Object.entries(valueSets)) {
      const result = await helm(['lint', '--strict', chartDir, '--namespace', releaseNs, '-f', valuesFile(values)]);
      expect({ name, code: result.code, out: result.code === 0 ? '' : result.stdout + result.stderr }).toEqual({ name, code: 0, out: '' });
    }
  });

  it('ships crds/ unchanged', () => {
    const files = readdirSync(join(root, 'crds')).sort();
    expect(readdirSync(join(chartDir, 'crds')).sort()).toEqual(files);
    for (const file of files) expect(readFileSync(join(chartDir, 'crds', file), 'utf8')).toBe(readFileSync(join(root, 'crds', file), 'utf8'));
  });

  it('refuses unsafe or mistyped values through values.schema.json', async () => {
    const refused: [unknown, string][] = [
      [{ replicas: 2 }, 'replicas'],
      [{ watchNamespaces: ['Not_A_Namespace'] }, 'watchNamespaces'],
      [{ webhook: { failurePolicy: 'Sometimes' } }, 'failurePolicy'],
      [{ nodePlugin: { tmpfsSize: 'lots' } }, 'tmpfsSize'],
      [{ agent: { defaultDeliveryMode: 'sidecar' } }, 'defaultDeliveryMode'],
    ];
    for (const [values, field] of refused) {
      const { result } = await template({ values });
      expect({ field, code: result.code }).toEqual({ field, code: 1 });
      expect(result.stderr).toContain('values don');
    }
  });

  it.each(Object.keys(valueSets))('renders %s, and the API server accepts every object (server-side dry-run)', async (name) => {
    const manifests = set(name);
    const served = manifests.filter((m) => !foreignGroups.some((g) => m.apiVersion.startsWith(g)));
    const text = served.map((m) => JSON.stringify(m)).join('\n');
    const result = await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '--field-manager=sb-packaging-test', '-f', '-'], text);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const applied = result.stdout.split('\n').filter((line) => line.includes('serverside-applied (server dry run)'));
    expect(applied).toHaveLength(served.length);
    // The value sets that need foreign APIs render them, they are just not servable here.
    if (name.startsWith('certManager')) expect(find(manifests, 'Certificate').length).toBeGreaterThanOrEqual(2);
    if (name === 'observability') expect(find(manifests, 'ServiceMonitor')).toHaveLength(1);
  });

  it('dry-runs the CRDs as packaged', async () => {
    const { result, manifests } = await template({ namespace: releaseNs, includeCrds: true });
    expect(result.code).toBe(0);
    const crds = manifests.filter((m) => m.kind === 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual([
      'clustersecretbackends.secretbinder.dev',
      'secretbackends.secretbinder.dev',
      'secretbindings.secretbinder.dev',
    ]);
    const apply = await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '--field-manager=sb-packaging-test', '-f', '-'], crds.map((m) => JSON.stringify(m)).join('\n'));
    expect(apply.code).toBe(0);
  });
});

describe('RBAC', () => {
  it('never grants list or watch of Secrets or ConfigMaps, nor wildcards, in any value set', () => {
    for (const name of Object.keys(valueSets)) {
      for (const role of set(name).filter((m) => m.kind === 'ClusterRole' || m.kind === 'Role')) {
        for (const rule of rules(role)) {
          const where = `${name}: ${role.kind} ${role.metadata.name}`;
          expect({ where, wild: [...(rule.verbs ?? []), ...(rule.resources ?? []), ...(rule.apiGroups ?? [])].includes('*') }).toEqual({ where, wild: false });
          if ((rule.resources ?? []).some((r) => r === 'secrets' || r === 'configmaps')) {
            // get by name; create of the Secrets the controller keeps; update only of named ones (ADR 0155).
            const verbs = rule.verbs ?? [];
            expect({ where, verbs: verbs.filter((v) => !['get', 'create', 'update'].includes(v)) }).toEqual({ where, verbs: [] });
            if (verbs.includes('update')) expect({ where, named: (rule.resourceNames ?? []).length > 0 }).toEqual({ where, named: true });
            expect({ where, configmaps: rule.resources?.includes('configmaps') }).toEqual({ where, configmaps: false });
          }
        }
      }
    }
  });

  it('lets the controller get Secrets only in its own namespace; the credentials reader is bound by nobody', () => {
    const manifests = set('default');
    const withSecrets = manifests.filter((m) => (m.kind === 'ClusterRole' || m.kind === 'Role') && rules(m).some((r) => r.resources?.includes('secrets')));
    expect(withSecrets.map((m) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`).sort()).toEqual([
      'ClusterRole//secret-binder-credentials-reader',
      `Role/${releaseNs}/secret-binder-controller`,
    ]);
    const refs = manifests.filter((m) => m.kind.endsWith('Binding')).map((m) => (m as unknown as { roleRef: { name: string } }).roleRef.name);
    expect(refs).not.toContain('secret-binder-credentials-reader');
    // Bound to the controller's service account only; the node plugin's has no binding at all.
    const subjects = manifests
      .filter((m) => m.kind.endsWith('Binding'))
      .flatMap((m) => (m as unknown as { subjects: { name: string; namespace: string }[] }).subjects);
    expect(new Set(subjects.map((s) => `${s.namespace}/${s.name}`))).toEqual(new Set([`${releaseNs}/secret-binder-controller`]));
  });

  it('grants exactly the verbs the controller uses (cluster mode)', () => {
    const clusterRole = only(set('default'), 'ClusterRole', 'secret-binder-controller');
    const grants = rules(clusterRole).flatMap((r) => (r.resources ?? []).flatMap((res) => (r.verbs ?? []).map((v) => `${res}:${v}`))).sort();
    expect(grants).toEqual(
      [
        'clustersecretbackends:list', 'clustersecretbackends:watch', 'clustersecretbackends/status:patch',
        'secretbindings:list', 'secretbindings:watch', 'secretbackends:list', 'secretbackends:watch',
        'secretbindings/status:patch', 'secretbackends/status:patch',
        'namespaces:list', 'namespaces:watch', 'tokenreviews:create',
        'mutatingwebhookconfigurations:get', 'mutatingwebhookconfigurations:update', 'mutatingwebhookconfigurations:patch',
        'validatingwebhookconfigurations:get', 'validatingwebhookconfigurations:update', 'validatingwebhookconfigurations:patch',
        'pods:get', 'pods:list', 'pods:watch', 'events:create',
        'deployments:get', 'deployments:patch', 'statefulsets:get', 'statefulsets:patch', 'daemonsets:get', 'daemonsets:patch',
        'pods:patch', 'pods/eviction:create',
      ].sort(),
    );
    const webhookRule = rules(clusterRole).find((r) => r.resources?.includes('mutatingwebhookconfigurations'));
    expect(webhookRule?.resourceNames).toEqual(['secret-binder-webhook']);
  });

  it('lets the controller create the Secrets it keeps and update only its two certificates, by name', () => {
    const secretGrants = (name: string): string[] =>
      rules(only(set(name).filter((m) => m.metadata.namespace === releaseNs), 'Role', 'secret-binder-controller'))
        .filter((r) => r.resources?.includes('secrets'))
        .flatMap((r) => (r.verbs ?? []).map((v) => `${v}${r.resourceNames === undefined ? '' : `:${r.resourceNames.join(',')}`}`))
        .sort();
    expect(secretGrants('default')).toEqual(['create', 'get', 'update:secret-binder-broker-tls,secret-binder-webhook-tls']);
    // cert-manager issues both certificates: only the HMAC key is created.
    expect(secretGrants('certManager')).toEqual(['create', 'get']);
    // The webhook off and the broker's certificate from an existing Secret: nothing kept but the HMAC key.
    expect(secretGrants('existingSecrets')).toEqual(['create', 'get', 'update:secret-binder-webhook-tls']);
    expect(secretGrants('minimal')).toEqual(['create', 'get', 'update:secret-binder-broker-tls']);
  });

  it('in the namespaced mode keeps pods, bindings and workloads in Roles of the watched namespaces', () => {
    const manifests = set('namespaced');
    const clusterRole = only(manifests, 'ClusterRole', 'secret-binder-controller');
    const clusterResources = rules(clusterRole).flatMap((r) => r.resources ?? []);
    for (const r of ['pods', 'secretbindings', 'secretbackends', 'deployments', 'events', 'pods/eviction']) expect(clusterResources).not.toContain(r);
    for (const ns of watched) {
      const role = only(manifests.filter((m) => m.metadata.namespace === ns), 'Role', 'secret-binder-controller');
      expect(rules(role).flatMap((r) => r.resources ?? [])).toEqual(expect.arrayContaining(['pods', 'secretbindings', 'secretbackends', 'deployments']));
      expect(find(manifests.filter((m) => m.metadata.namespace === ns), 'RoleBinding')).toHaveLength(1);
    }
    // The webhook sees only the watched namespaces.
    const mutating = only(manifests, 'MutatingWebhookConfiguration') as unknown as { webhooks: { namespaceSelector: { matchExpressions: { operator: string; values: string[] }[] } }[] };
    expect(mutating.webhooks[0]?.namespaceSelector.matchExpressions).toContainEqual({ key: 'kubernetes.io/metadata.name', operator: 'In', values: watched });
  });

  it('mints tokens in its own namespace only for tokenServiceAccounts, by name, and never for its own or the node plugin\'s account (ADR 0150)', async () => {
    const releaseRole = (name: string): Rule[] => rules(only(set(name).filter((m) => m.metadata.namespace === releaseNs), 'Role', 'secret-binder-controller'));
    // By default: no TokenRequest at all in the release namespace.
    expect(releaseRole('default').flatMap((r) => r.resources ?? [])).not.toContain('serviceaccounts/token');
    expect(releaseRole('default').flatMap((r) => r.resources ?? [])).not.toContain('serviceaccounts');
    const named = releaseRole('tokenAccounts').filter((r) => (r.resources ?? []).some((res) => res.startsWith('serviceaccounts')));
    expect(named).toEqual([
      { apiGroups: [''], resources: ['serviceaccounts'], resourceNames: ['vault-reader', 'aws-reader'], verbs: ['get'] },
      { apiGroups: [''], resources: ['serviceaccounts/token'], resourceNames: ['vault-reader', 'aws-reader'], verbs: ['create'] },
    ]);
    // No other role of any value set grants TokenRequest without names, except the unbound credentials reader.
    for (const name of Object.keys(valueSets)) {
      for (const role of set(name).filter((m) => (m.kind === 'ClusterRole' || m.kind === 'Role') && m.metadata.name !== 'secret-binder-credentials-reader')) {
        for (const rule of rules(role).filter((r) => r.resources?.includes('serviceaccounts/token'))) expect({ name, names: rule.resourceNames }).toEqual({ name, names: ['vault-reader', 'aws-reader'] });
      }
    }
    for (const own of ['secret-binder-controller', 'secret-binder-node']) {
      const { result } = await template({ namespace: releaseNs, values: { tokenServiceAccounts: ['vault-reader', own] } });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(`tokenServiceAccounts must not name "${own}"`);
    }
  });

  it('drops the RollingRestart grants when RollingRestart is off', () => {
    const resources = rules(only(set('minimal'), 'ClusterRole', 'secret-binder-controller')).flatMap((r) => r.resources ?? []);
    for (const r of ['deployments', 'statefulsets', 'daemonsets', 'pods/eviction', 'mutatingwebhookconfigurations']) expect(resources).not.toContain(r);
    const podVerbs = rules(only(set('minimal'), 'ClusterRole', 'secret-binder-controller')).filter((r) => r.resources?.includes('pods')).flatMap((r) => r.verbs ?? []);
    expect(podVerbs.sort()).toEqual(['get', 'list', 'watch']);
  });
});

describe('controller Deployment', () => {
  const deployment = (): Manifest => only(set('default'), 'Deployment', 'secret-binder-controller');

  it('runs two replicas, spread, under a PDB, locked down', () => {
    const d = deployment() as unknown as { spec: { replicas: number } };
    expect(d.spec.replicas).toBe(2);
    const pod = podSpec(deployment());
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(JSON.stringify(pod.affinity)).toContain('kubernetes.io/hostname');
    const c = pod.containers[0] as Container;
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect((c.ports ?? []).map((p) => p.name).sort()).toEqual(['broker', 'http', 'webhook']);
    expect(only(set('default'), 'PodDisruptionBudget')).toMatchObject({ spec: { minAvailable: 1 } });
    expect(pod.automountServiceAccountToken).not.toBe(false);
  });

  it('passes flags the controller parses: leader election, broker and webhook on, managed TLS and HMAC key (files with cert-manager)', () => {
    for (const name of ['default', 'namespaced', 'certManager']) {
      const c = podSpec(only(set(name), 'Deployment', 'secret-binder-controller')).containers[0] as Container;
      const [script, ...args] = c.args ?? [];
      expect(script).toBe('/app/dist/main.js');
      const config = parseControllerConfig(args, { POD_NAMESPACE: releaseNs, POD_NAME: 'controller-0' });
      expect(config.operatorNamespace).toBe(releaseNs);
      expect(config.kube).toEqual({ kind: 'in-cluster' });
      expect(config.leaderElection).toMatchObject({ enabled: true, leaseName: 'secret-binder-controller' });
      const managed = name !== 'certManager';
      expect(config.broker).toMatchObject({
        enabled: true,
        port: 8443,
        tls: managed ? { kind: 'secret', secretName: 'secret-binder-broker-tls', validitySeconds: 90 * 86_400 } : { kind: 'files' },
        nodePlugin: { namespace: releaseNs, name: 'secret-binder-node' },
      });
      expect(config.hmacKey).toEqual({ kind: 'secret', name: 'secret-binder-content-hmac' });
      expect(config.webhook).toMatchObject({ enabled: true, port: 9443, configurationNames: { mutating: 'secret-binder-webhook', validating: 'secret-binder-webhook' } });
      expect(config.watchNamespaces).toEqual(name === 'namespaced' ? watched : []);
      if (config.webhook.enabled) expect(config.webhook.tls).toMatchObject(managed ? { kind: 'secret', secretName: 'secret-binder-webhook-tls' } : { kind: 'files' });
    }
    // Existing Secrets are mounted as files.
    const c = podSpec(only(set('existingSecrets'), 'Deployment', 'secret-binder-controller')).containers[0] as Container;
    const config = parseControllerConfig((c.args ?? []).slice(1), { POD_NAMESPACE: releaseNs });
    expect(config.hmacKey).toEqual({ kind: 'file', path: '/etc/secret-binder/content-hmac/key' });
    expect(config.broker).toMatchObject({ tls: { kind: 'files' } });
  });

  it('enables each change-notice source: flags the controller parses, Secrets mounted, a Service and policy ports (docs/rotation.md)', () => {
    const manifests = set('changeNotices');
    const pod = podSpec(only(manifests, 'Deployment', 'secret-binder-controller'));
    const c = pod.containers[0] as Container;
    const config = parseControllerConfig((c.args ?? []).slice(1), { POD_NAMESPACE: releaseNs });
    expect(config.changeNotices).toEqual({
      windowMs: 1000,
      vaultAudit: { listen: { kind: 'tcp', host: '0.0.0.0', port: 8200 }, prefixFile: '/etc/secret-binder/vault-audit/prefix', maxLinesPerSecond: 2000 },
      vaultEvents: { backend: 'ClusterSecretBackend/vault-enterprise', eventTypes: 'kv*', maxEventsPerSecond: 100 },
      awsSqs: { queueUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/secret-changes', backend: 'ClusterSecretBackend/aws', waitSeconds: 20, maxMessagesPerSecond: 100 },
      azureEventGrid: { host: '0.0.0.0', port: 8090, secretFile: '/etc/secret-binder/event-grid/secret', maxEventsPerSecond: 100 },
    });
    expect(JSON.stringify(pod)).toContain('"secretName":"bao-audit-prefix"');
    expect(JSON.stringify(pod)).toContain('"secretName":"event-grid-secret"');
    const service = only(manifests, 'Service', 'secret-binder-change-notices') as unknown as { spec: { ports: { name: string; port: number }[] } };
    expect(service.spec.ports.map((p) => `${p.name}:${String(p.port)}`)).toEqual(['vault-audit:8200', 'event-grid:8090']);
    expect(JSON.stringify(only(manifests, 'NetworkPolicy', 'secret-binder-controller'))).toContain('"port":"vault-audit"');
    // Off by default: no flag, no Service.
    const defaults = podSpec(only(set('default'), 'Deployment', 'secret-binder-controller')).containers[0] as Container;
    expect(parseControllerConfig((defaults.args ?? []).slice(1), { POD_NAMESPACE: releaseNs }).changeNotices).toMatchObject({ vaultAudit: undefined, vaultEvents: undefined, awsSqs: undefined, azureEventGrid: undefined });
    expect(set('default').filter((m) => m.metadata.name === 'secret-binder-change-notices')).toEqual([]);
  });

  it("checks Event Grid's Entra tokens with the tenant's issuer and keys, without a shared secret when none is named (ADR 0225)", () => {
    const pod = podSpec(only(set('eventGridEntra'), 'Deployment', 'secret-binder-controller'));
    const config = parseControllerConfig(((pod.containers[0] as Container).args ?? []).slice(1), { POD_NAMESPACE: releaseNs });
    expect(config.changeNotices.azureEventGrid).toEqual({
      host: '0.0.0.0',
      port: 8090,
      maxEventsPerSecond: 100,
      entra: {
        audience: 'api://secret-binder-events',
        issuer: 'https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/',
        jwksUrl: 'https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/discovery/v2.0/keys',
        senderAppId: '4962773b-9cdb-44cf-a8bf-237846a00ab7',
      },
    });
    expect(JSON.stringify(pod)).not.toContain('event-grid-secret');
  });
});

describe('wiring', () => {
  type Service = { metadata: { name: string; labels?: Record<string, string> }; spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] } };

  it('every Service selects the controller pods and targets a named port they declare; the ServiceMonitor finds the metrics Service', () => {
    const manifests = set('observability');
    const deployment = only(manifests, 'Deployment');
    const podLabels = (deployment as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
    const portNames = (podSpec(deployment).containers[0]?.ports ?? []).map((p) => p.name);
    const services = find(manifests, 'Service') as unknown as Service[];
    expect(services.map((svc) => svc.metadata.name).sort()).toEqual(['secret-binder-broker', 'secret-binder-metrics', 'secret-binder-webhook']);
    for (const svc of services) {
      expect(podLabels).toMatchObject(svc.spec.selector);
      for (const port of svc.spec.ports) expect(portNames).toContain(port.targetPort);
    }
    const monitor = only(manifests, 'ServiceMonitor') as unknown as { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } };
    const metrics = services.find((svc) => svc.metadata.name === 'secret-binder-metrics');
    expect(metrics?.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(metrics?.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]?.port);
    expect(monitor.spec.endpoints[0]?.path).toBe('/metrics');
    // The NetworkPolicy opens exactly the ports the controller serves.
    const policy = only(manifests, 'NetworkPolicy') as unknown as { spec: { ingress: { ports: { port: string }[] }[] } };
    expect(policy.spec.ingress.flatMap((rule) => rule.ports.map((p) => p.port)).sort()).toEqual([...portNames].sort());
  });

  it('the broker URL of the node plugin names the broker Service and a DNS name of its certificate', () => {
    const manifests = set('default');
    const args = podSpec(only(manifests, 'DaemonSet')).containers[0]?.args ?? [];
    const url = new URL((args.find((a) => a.startsWith('--broker-url=')) ?? '').slice('--broker-url='.length));
    expect(url.hostname).toBe(`secret-binder-broker.${releaseNs}.svc`);
    // The certificate the controller makes carries the names the chart passes it.
    const controllerArgs = podSpec(only(manifests, 'Deployment')).containers[0]?.args ?? [];
    const config = parseControllerConfig(controllerArgs.slice(1), { POD_NAMESPACE: releaseNs });
    expect(config.broker).toMatchObject({ tls: { dnsNames: expect.arrayContaining([url.hostname]) as unknown } });
    const nodeCa = (podSpec(only(manifests, 'DaemonSet')).volumes ?? []).find((v) => v.name === 'broker-ca') as { projected: { sources: { secret: { name: string } }[] } };
    expect(nodeCa.projected.sources[0]?.secret.name).toBe(config.broker.enabled && config.broker.tls.kind === 'secret' ? config.broker.tls.secretName : 'not managed');
  });
});

describe('node plugin DaemonSet', () => {
  it('is privileged with Bidirectional propagation, has no API token, and presents a secretbinder.dev token', () => {
    const ds = only(set('default'), 'DaemonSet', 'secret-binder-node');
    const pod = podSpec(ds);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe('secret-binder-node');
    const c = pod.containers[0] as Container;
    expect(c.securityContext).toMatchObject({ privileged: true, runAsUser: 0 });
    expect(c.volumeMounts).toContainEqual({ name: 'pods-mount-dir', mountPath: '/var/lib/kubelet/pods', mountPropagation: 'Bidirectional' });
    const volumes = JSON.stringify(pod.volumes);
    expect(volumes).toContain('"audience":"secretbinder.dev"');
    // Only the CA of the broker's Secret reaches the node, never its key.
    const ca = (pod.volumes ?? []).find((v) => v.name === 'broker-ca') as { projected: { sources: { secret: { items: unknown[] } }[] } };
    expect(ca.projected.sources[0]?.secret.items).toEqual([{ key: 'ca.crt', path: 'ca.crt' }]);
    expect(pod.containers).toHaveLength(1); // no node-driver-registrar: the plugin registers itself

    const [script, ...args] = c.args ?? [];
    expect(script).toBe('/app/dist/delivery/node-plugin.main.js');
    const config = parseNodePluginConfig(args, { NODE_NAME: 'node-1' });
    expect(config).toMatchObject({
      tokenFile: '/var/run/secrets/secretbinder.dev/token',
      brokerUrl: `https://secret-binder-broker.${releaseNs}.svc:443`,
      brokerCaFile: '/etc/secret-binder/broker-ca/ca.crt',
      kubeletCsiSocket: '/var/lib/kubelet/plugins/secretbinder.dev/csi.sock',
      tmpfsSizeBytes: 4 * 1024 * 1024,
      healthAddress: { host: '0.0.0.0', port: 9809 },
    });
    // The kubelet probes the plugin's own health server (ADR 0161).
    expect(c.ports).toEqual([{ name: 'health', containerPort: 9809, protocol: 'TCP' }]);
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.volumeMounts?.map((m) => m.mountPath)).toEqual(expect.arrayContaining(['/csi', '/registration', '/var/run/secrets/secretbinder.dev', '/etc/secret-binder/broker-ca']));
  });

  it('declares the same CSIDriver as deploy/csidriver.yaml', () => {
    const fromDeploy = parse(readFileSync(join(root, 'deploy', 'csidriver.yaml'), 'utf8')) as Manifest;
    expect((only(set('default'), 'CSIDriver', 'secretbinder.dev') as unknown as { spec: unknown }).spec).toEqual((fromDeploy as unknown as { spec: unknown }).spec);
  });
});

describe('webhook and certificates', () => {
  it('registers the webhooks src/webhook/webhook-configurations.ts defines', () => {
    const manifests = set('default');
    const expected = webhookConfigurations({
      names: { mutating: 'secret-binder-webhook', validating: 'secret-binder-webhook' },
      clientConfig: (path) => ({ service: { namespace: releaseNs, name: 'secret-binder-webhook', port: 443, path } }),
      excludedNamespaces: ['kube-system', 'kube-public', 'kube-node-lease', releaseNs],
    });
    expect((only(manifests, 'MutatingWebhookConfiguration') as unknown as { webhooks: unknown }).webhooks).toEqual(JSON.parse(JSON.stringify(expected.mutating.webhooks)));
    expect((only(manifests, 'ValidatingWebhookConfiguration') as unknown as { webhooks: unknown }).webhooks).toEqual(JSON.parse(JSON.stringify(expected.validating.webhooks)));
  });

  it('renders byte-identical twice for every value set: no generated key, certificate or caBundle (GitOps, ADR 0155)', () => {
    for (const [name, [first, second]] of Object.entries(texts)) {
      expect({ name, identical: first === second }).toEqual({ name, identical: true });
      expect({ name, secrets: find(set(name), 'Secret').map((m) => m.metadata.name) }).toEqual({ name, secrets: [] });
      expect({ name, caBundle: JSON.stringify(set(name)).includes('caBundle') }).toEqual({ name, caBundle: false });
      expect({ name, pem: first.includes('-----BEGIN') }).toEqual({ name, pem: false });
    }
  });

  it('with cert-manager, issues both certificates and lets its CA injector own caBundle', () => {
    const manifests = set('certManager');
    expect(find(manifests, 'Secret', 'secret-binder-broker-tls')).toHaveLength(0);
    expect(find(manifests, 'Certificate').map((c) => c.metadata.name).sort()).toEqual(['secret-binder-broker-tls', 'secret-binder-ca', 'secret-binder-webhook-tls']);
    expect(only(manifests, 'MutatingWebhookConfiguration').metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe(`${releaseNs}/secret-binder-webhook-tls`);
    const issuer = set('certManagerClusterIssuer');
    expect(find(issuer, 'Issuer')).toHaveLength(0);
    expect(JSON.stringify(only(issuer, 'Certificate', 'secret-binder-broker-tls'))).toContain('"kind":"ClusterIssuer"');
  });

  it('uses existing Secrets and an image digest when given', () => {
    const manifests = set('existingSecrets');
    expect(find(manifests, 'Secret')).toHaveLength(0);
    expect(JSON.stringify(only(manifests, 'Deployment'))).toContain('"secretName":"my-hmac"');
    expect(JSON.stringify(only(manifests, 'DaemonSet'))).toContain('"name":"my-broker-tls"');
    expect(JSON.stringify(only(manifests, 'Deployment'))).toContain(`ghcr.io/secret-binder/secret-binder@sha256:${'a'.repeat(64)}`);
  });
});

describe('helm test hook', () => {
  it('renders a release check the API server accepts, running a built entry point with only list-pods and get-webhook rights', async () => {
    const { manifests, result } = await template({ namespace: releaseNs, includeTests: true });
    expect(result.code).toBe(0);
    const hooks = manifests.filter((m) => m.metadata.annotations?.['helm.sh/hook'] === 'test');
    expect(hooks.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
      ['ClusterRole', 'ClusterRoleBinding', 'Pod', 'Role', 'RoleBinding', 'ServiceAccount'].map((kind) => `${kind}/secret-binder-release-check`),
    );
    // The Pod's admission looks its service account up: that one is created for real (the namespace goes after the suite).
    expect((await kubectl(['apply', '--server-side', '--field-manager=sb-packaging-test', '-f', '-'], JSON.stringify(only(hooks, 'ServiceAccount')))).code).toBe(0);
    const apply = await kubectl(['apply', '--server-side', '--dry-run=server', '--field-manager=sb-packaging-test', '-f', '-'], hooks.map((m) => JSON.stringify(m)).join('\n'));
    expect(apply.stderr).toBe('');
    expect(apply.code).toBe(0);
    const grants = hooks.flatMap((m) => rules(m)).map((r) => `${(r.resources ?? []).join()}:${(r.verbs ?? []).join()}:${(r.resourceNames ?? []).join()}`).sort();
    expect(grants).toEqual(['pods:list:', 'validatingwebhookconfigurations:get:secret-binder-webhook']);
    const pod = only(hooks, 'Pod') as unknown as { spec: PodSpec & { restartPolicy: string } };
    expect(pod.spec.restartPolicy).toBe('Never');
    const c = pod.spec.containers[0] as Container;
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true });
    const [script, ...args] = c.args ?? [];
    // The image's dist/ is tsc's output of src/ (tsconfig.build.json).
    expect(readdirSync(join(root, 'src', 'release-check'))).toContain((script ?? '').replace('/app/dist/release-check/', '').replace(/\.js$/, '.ts'));
    expect(args).toEqual([
      `--namespace=${releaseNs}`,
      '--controller-selector=app.kubernetes.io/name=secret-binder,app.kubernetes.io/instance=secret-binder,app.kubernetes.io/component=controller',
      `--broker-url=https://secret-binder-broker.${releaseNs}.svc:443`,
      '--broker-ca-file=/etc/secret-binder/broker-ca/ca.crt',
      '--webhook-configuration-name=secret-binder-webhook',
      '--webhook-service=secret-binder-webhook',
    ]);
  });
});

describe('plain manifests', () => {
  it('deploy/secret-binder.yaml is the chart rendered (node test/integration/packaging/render-deploy.ts)', async () => {
    expect(readFileSync(plainManifestPath, 'utf8')).toBe(await renderPlainManifests());
  });
});
