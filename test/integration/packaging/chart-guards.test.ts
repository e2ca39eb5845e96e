import { beforeAll, describe, expect, it } from '@jest/globals';
import { only, template, type CommandResult } from './helm.support.ts';

/**
 * Values that pass a naive schema but would break the release are refused by `helm template` (and
 * so by `helm install`) with a sentence naming the value and the rule: values.schema.json where
 * JSON Schema can say it, templates/_validate.tpl where it cannot (ADR 0160). One render per guard,
 * all at once.
 */

interface Guard {
  readonly values: unknown;
  /** What Helm's error must say: the value's path and the rule. */
  readonly message: RegExp;
}

const guards: Record<string, Guard> = {
  'agent without the webhook': { values: { agent: { enabled: true }, webhook: { enabled: false } }, message: /agent\.enabled needs webhook\.enabled/ },
  'agent as the default mode while off': { values: { agent: { defaultDeliveryMode: 'agent' } }, message: /agent\.defaultDeliveryMode is agent but agent\.enabled is false/ },
  'tmpfsSize above 1Gi': { values: { nodePlugin: { tmpfsSize: '8Gi' } }, message: /nodePlugin\.tmpfsSize "8Gi" must be between 4Ki and 1Gi/ },
  'tmpfsSize below 4Ki': { values: { nodePlugin: { tmpfsSize: '1Ki' } }, message: /nodePlugin\.tmpfsSize "1Ki" must be between 4Ki and 1Gi/ },
  'renewDeadline equal to leaseDuration': {
    values: { controller: { leaderElection: { leaseDurationSeconds: 10, renewDeadlineSeconds: 10 } } },
    message: /controller\.leaderElection\.renewDeadlineSeconds \(10\) must be shorter than controller\.leaderElection\.leaseDurationSeconds \(10\)/,
  },
  'renewDeadline above leaseDuration': {
    values: { controller: { leaderElection: { leaseDurationSeconds: 10, renewDeadlineSeconds: 30 } } },
    message: /renewDeadlineSeconds \(30\) must be shorter than controller\.leaderElection\.leaseDurationSeconds \(10\)/,
  },
  'retryPeriod not below renewDeadline': {
    values: { controller: { leaderElection: { renewDeadlineSeconds: 5, retryPeriodSeconds: 5 } } },
    message: /controller\.leaderElection\.retryPeriodSeconds \(5\) must be shorter than controller\.leaderElection\.renewDeadlineSeconds \(5\)/,
  },
  'http port equal to the broker port': {
    values: { controller: { ports: { http: 8443 } } },
    message: /controller\.ports\.broker \(8443\) equals controller\.ports\.http: the controller's ports \(http, broker, webhook, change-notice listeners\) must all differ/,
  },
  'webhook port equal to the http port': {
    values: { controller: { ports: { webhook: 8080 } } },
    message: /controller\.ports\.webhook \(8080\) equals controller\.ports\.http/,
  },
  'OpenBao audit listener without its prefix Secret': {
    values: { changeNotices: { vaultAudit: { enabled: true } } },
    message: /changeNotices\.vaultAudit\.prefixSecret is required when changeNotices\.vaultAudit\.enabled/,
  },
  'SQS notices without a queue': {
    values: { changeNotices: { awsSqs: { enabled: true, backend: 'ClusterSecretBackend/aws' } } },
    message: /changeNotices\.awsSqs\.queueUrl and changeNotices\.awsSqs\.backend are required/,
  },
  'Event Grid receiver without its secret': {
    values: { changeNotices: { azureEventGrid: { enabled: true } } },
    message: /changeNotices\.azureEventGrid\.secretName is required when changeNotices\.azureEventGrid\.enabled/,
  },
  'Vault events API without its backend': {
    values: { changeNotices: { vaultEvents: { enabled: true } } },
    message: /changeNotices\.vaultEvents\.backend is required/,
  },
  'Event Grid Entra check without its audience': {
    values: { changeNotices: { azureEventGrid: { enabled: true, entra: { enabled: true, tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47' } } } },
    message: /changeNotices\.azureEventGrid\.entra\.audience is required/,
  },
  'Event Grid Entra check without a tenant, issuer or keys': {
    values: { changeNotices: { azureEventGrid: { enabled: true, entra: { enabled: true, audience: 'api://secret-binder' } } } },
    message: /changeNotices\.azureEventGrid\.entra\.tenantId is required/,
  },
  'Event Grid port equal to the broker port': {
    values: { changeNotices: { azureEventGrid: { enabled: true, secretName: 'grid', port: 8443 } } },
    message: /changeNotices\.azureEventGrid\.port \(8443\) equals controller\.ports\.broker/,
  },
  'SQS backend that is no backend reference': {
    values: { changeNotices: { awsSqs: { enabled: true, queueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/q', backend: 'aws' } } },
    message: /changeNotices\/awsSqs\/backend/,
  },
  'leader election off with 2 replicas': {
    values: { controller: { replicas: 2, leaderElection: { enabled: false } } },
    message: /controller\.replicas is 2 but controller\.leaderElection\.enabled is false/,
  },
  'PDB minAvailable equal to the replica count': {
    values: { controller: { replicas: 2, podDisruptionBudget: { minAvailable: 2 } } },
    message: /controller\.podDisruptionBudget\.minAvailable \(2\) must be less than controller\.replicas \(2\)/,
  },
  'PDB minAvailable negative': {
    values: { controller: { podDisruptionBudget: { minAvailable: -1 } } },
    message: /\/controller\/podDisruptionBudget\/minAvailable'?: minimum: got -1, want 0/,
  },
  'PDB minAvailable over 100%': {
    values: { controller: { podDisruptionBudget: { minAvailable: '150%' } } },
    message: /controller\.podDisruptionBudget\.minAvailable "150%" must be below 100%/,
  },
  'PDB minAvailable of 100%': {
    values: { controller: { podDisruptionBudget: { minAvailable: '100%' } } },
    message: /controller\.podDisruptionBudget\.minAvailable "100%" must be below 100%/,
  },
  'PDB minAvailable not a number or percentage': {
    values: { controller: { podDisruptionBudget: { minAvailable: 'half' } } },
    message: /\/controller\/podDisruptionBudget\/minAvailable'?: 'half' does not match pattern/,
  },
  'invalid resource quantity': {
    values: { controller: { resources: { requests: { memory: '128MB' } } } },
    message: /\/controller\/resources\/requests\/memory'?: '128MB' does not match pattern/,
  },
  'invalid node-plugin resource quantity': {
    values: { nodePlugin: { resources: { limits: { cpu: 'one' } } } },
    message: /\/nodePlugin\/resources\/limits\/cpu'?: 'one' does not match pattern/,
  },
  'cert-manager issuerRef without a name': {
    values: { certManager: { enabled: true, issuerRef: { kind: 'ClusterIssuer' } } },
    message: /\/certManager\/issuerRef'?: missing property 'name'/,
  },
  'podLabels overriding a selector label': {
    values: { controller: { podLabels: { 'app.kubernetes.io/component': 'other', team: 'a' } } },
    message: /controller\.podLabels must not set "app\.kubernetes\.io\/component": the chart's selector labels/,
  },
  'audit log outside /var/log/secret-binder (the root file system is read-only)': {
    values: { controller: { auditLog: '/tmp/audit.jsonl' } },
    message: /\/controller\/auditLog'?: '\/tmp\/audit\.jsonl' does not match pattern/,
  },
  'image tag latest': { values: { image: { tag: 'latest' } }, message: /image\.tag "latest" is not allowed: pin a version \(or set image\.digest\)/ },
};

/** Values just inside each rule: the guards refuse only what breaks. */
const accepted: Record<string, unknown> = {
  'tmpfsSize of 1Gi': { nodePlugin: { tmpfsSize: '1Gi' } },
  'tmpfsSize of 8Gi with the node plugin off': { nodePlugin: { enabled: false, tmpfsSize: '8Gi' } },
  'one replica without leader election': { controller: { replicas: 1, leaderElection: { enabled: false } } },
  'PDB minAvailable one below the replicas': { controller: { replicas: 3, podDisruptionBudget: { minAvailable: 2 } } },
  'PDB minAvailable 50%': { controller: { podDisruptionBudget: { minAvailable: '50%' } } },
  'decimal and milli quantities': { controller: { resources: { requests: { cpu: '0.5', memory: '100M' }, limits: { cpu: '1500m', memory: '1Gi' } } } },
  'an issuerRef with a name': { certManager: { enabled: true, issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer' } } },
  'extra pod labels': { controller: { podLabels: { team: 'platform' } } },
  'webhook port reused with the webhook off': { webhook: { enabled: false }, controller: { ports: { webhook: 8080 } } },
};

const refused: Record<string, CommandResult> = {};
const rendered: Record<string, CommandResult> = {};

beforeAll(async () => {
  await Promise.all([
    ...Object.entries(guards).map(async ([name, guard]) => {
      refused[name] = (await template({ values: guard.values })).result;
    }),
    ...Object.entries(accepted).map(async ([name, values]) => {
      rendered[name] = (await template({ values })).result;
    }),
  ]);
}, 120_000);

describe('chart guards', () => {
  it.each(Object.keys(guards))('refuses %s with a message naming the value and the rule', (name) => {
    const result = refused[name];
    const guard = guards[name];
    expect({ name, code: result?.code }).toEqual({ name, code: 1 });
    expect(result?.stderr).toMatch(guard?.message ?? /never/);
  });

  it.each(Object.keys(accepted))('accepts %s', (name) => {
    const result = rendered[name];
    expect({ name, code: result?.code, stderr: result?.code === 0 ? '' : result?.stderr }).toEqual({ name, code: 0, stderr: '' });
  });
});

describe('audit log file', () => {
  it('mounts auditVolume (an emptyDir by default, or the source given) where controller.auditLog points', async () => {
    const path = '/var/log/secret-binder/audit.jsonl';
    for (const [auditVolume, expected] of [
      [undefined, { emptyDir: { sizeLimit: '256Mi' } }],
      [{ persistentVolumeClaim: { claimName: 'audit' } }, { persistentVolumeClaim: { claimName: 'audit' } }],
    ] as const) {
      const { manifests, result } = await template({ values: { controller: { auditLog: path, ...(auditVolume === undefined ? {} : { auditVolume }) } } });
      expect(result.stderr).toBe('');
      const pod = (only(manifests, 'Deployment') as unknown as { spec: { template: { spec: { containers: { args: string[]; volumeMounts: { name: string; mountPath: string }[] }[]; volumes: { name: string }[] } } } }).spec.template.spec;
      expect(pod.containers[0]?.args).toContain(`--audit-log=${path}`);
      expect(pod.containers[0]?.volumeMounts).toContainEqual({ name: 'audit', mountPath: '/var/log/secret-binder' });
      expect(pod.volumes).toContainEqual({ name: 'audit', ...expected });
    }
    const stdout = await template({ values: {} });
    expect(JSON.stringify(only(stdout.manifests, 'Deployment'))).not.toContain('/var/log/secret-binder');
  });
});
