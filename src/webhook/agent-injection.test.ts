import { describe, expect, it } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import { agentEntitlement } from '../broker/agent-entitlement.ts';
import type { AdmissionRequest } from './admission.ts';
import type { AgentSettings } from './agent-injection.ts';
import { mutate, type MutateContext } from './mutate.ts';
import { validate } from './validate.ts';

/** Agent mode in the webhook (ADR 0250): what an opted-in pod of an agent-mode binding becomes. */

function binding(name: string, strategy: 'Refresh' | 'RollingRestart' | 'None', mode?: 'csi' | 'agent'): SecretBinding {
  return {
    apiVersion: 'secretbinder.dev/v1alpha1',
    kind: 'SecretBinding',
    metadata: { name, namespace: 'apps' },
    spec: {
      backendRef: { kind: 'SecretBackend', name: 'b' },
      podSelector: { matchLabels: { app: 'web' } },
      containers: ['app'],
      files: [{ path: 'a', key: 'k' }],
      rotation: { strategy },
      ...(mode === undefined ? {} : { delivery: { mode, sizeLimit: '2Mi' } }),
    },
  };
}

const bindings = [binding('db', 'Refresh', 'agent'), binding('tls', 'RollingRestart', 'agent'), binding('plain', 'Refresh')];
const settings: AgentSettings = {
  image: 'secret-binder:1',
  imagePullPolicy: 'IfNotPresent',
  brokerUrl: 'https://secret-binder-broker.sys.svc:443',
  brokerCaPem: '-----BEGIN CERTIFICATE-----\n',
  metricsPort: 9097,
  resources: { cpuRequest: '10m', memoryRequest: '48Mi', memoryLimit: '64Mi' },
  startTimeoutSeconds: 60,
};
const ctx = (extra: Partial<MutateContext> = {}): MutateContext => ({
  operatorNamespace: 'sys',
  lookupBinding: (namespace, name) => bindings.find((b) => b.metadata.namespace === namespace && b.metadata.name === name),
  agent: settings,
  ...extra,
});

function pod(names: string): V1Pod {
  return {
    metadata: { name: 'p', namespace: 'apps', uid: 'u1', labels: { app: 'web', 'secretbinder.dev/inject': 'true' }, annotations: { 'secretbinder.dev/bindings': names } },
    spec: { securityContext: { fsGroup: 2000 }, containers: [{ name: 'app', image: 'app' }, { name: 'proxy', image: 'proxy' }] },
  };
}

function admit(incoming: V1Pod, context = ctx()): { pod: V1Pod; decision: ReturnType<typeof mutate> } {
  const request: AdmissionRequest = {
    uid: 'r',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'apps',
    operation: 'CREATE',
    object: incoming,
  };
  const decision = mutate(request, context);
  const patched = decision.outcome === 'patched' ? fastJsonPatch.applyPatch(structuredClone(incoming), fastJsonPatch.deepClone(decision.patch) as fastJsonPatch.Operation[]).newDocument : incoming;
  return { pod: patched, decision };
}

describe('agent injection', () => {
  it('Refresh: a native sidecar with a startup probe, a memory volume read-only in the listed container only, the token in the agent only', () => {
    const { pod: out } = admit(pod('db'));
    const agent = out.spec?.initContainers?.[0];
    expect(agent?.name).toBe('secretbinder-agent');
    expect(agent?.restartPolicy).toBe('Always');
    expect(agent?.startupProbe?.httpGet).toEqual({ path: '/readyz', port: 9097 });
    expect(agent?.command).toEqual(['node', '/app/dist/delivery/agent/agent.main.js']);
    expect(agent?.args).toEqual(expect.arrayContaining(['--mode', 'follow', '--binding', 'db=app', '--gid', '2000']));
    expect(agent?.securityContext).toEqual({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(agent?.resources).toEqual({ requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '64Mi' } });
    expect(out.spec?.volumes).toEqual([
      { name: 'secretbinder-db', emptyDir: { medium: 'Memory', sizeLimit: '2Mi' } },
      { name: 'secretbinder-agent-token', projected: { sources: [{ serviceAccountToken: { audience: 'secretbinder.dev', expirationSeconds: 600, path: 'token' } }] } },
    ]);
    const [app, proxy] = out.spec?.containers ?? [];
    expect(app?.volumeMounts).toEqual([{ name: 'secretbinder-db', mountPath: '/var/run/secrets/secretbinder/db', readOnly: true }]);
    expect(proxy?.volumeMounts).toBeUndefined();
    expect(out.spec?.automountServiceAccountToken).toBeUndefined();
    // What the webhook builds is what the broker entitles.
    expect(agentEntitlement(bindings[0] as SecretBinding, out)).toEqual({ entitled: true, containers: ['app'] });
  });

  it('RollingRestart / None: a plain init container that fetches once; next to a Refresh binding, the sidecar fetches it once', () => {
    const initOnly = admit(pod('tls')).pod.spec?.initContainers?.[0];
    expect(initOnly?.restartPolicy).toBeUndefined();
    expect(initOnly?.startupProbe).toBeUndefined();
    expect(initOnly?.args).toEqual(expect.arrayContaining(['--mode', 'once', '--binding', 'tls=app:once']));
    const both = admit(pod('db,tls')).pod.spec?.initContainers ?? [];
    expect(both).toHaveLength(1);
    expect(both[0]?.args).toEqual(expect.arrayContaining(['--binding', 'db=app', '--binding', 'tls=app:once']));
  });

  it('follows the chart-wide default for bindings that name no mode, and keeps CSI otherwise', () => {
    expect(admit(pod('plain')).pod.spec?.volumes?.[0]?.csi?.driver).toBe('secretbinder.dev');
    expect(admit(pod('plain'), ctx({ defaultMode: 'agent' })).pod.spec?.volumes?.[0]?.emptyDir?.medium).toBe('Memory');
  });

  it('refuses an agent-mode pod when the controller has no agent image, naming the binding and the setting', () => {
    const { decision } = admit(pod('db'), ctx({ agent: undefined }));
    expect(decision).toMatchObject({ outcome: 'denied' });
    expect(JSON.stringify(decision)).toContain('SecretBinding db is delivered by the agent (delivery.mode), but this controller runs without an agent image');
  });

  it('the validating webhook refuses an ephemeral container mounting an agent volume its binding does not list', () => {
    const injected = admit(pod('db')).pod;
    const debugged = structuredClone(injected);
    if (debugged.spec !== undefined) debugged.spec.ephemeralContainers = [{ name: 'debug', image: 'busybox', volumeMounts: [{ name: 'secretbinder-db', mountPath: '/x' }] }];
    const decision = validate(
      { uid: 'r', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, subResource: 'ephemeralcontainers', namespace: 'apps', operation: 'UPDATE', object: debugged, oldObject: injected },
      ctx().lookupBinding,
    );
    expect(JSON.stringify(decision)).toContain('ContainerNotAllowed: ephemeral container debug mounts volume secretbinder-db of SecretBinding db');
    // The injected pod itself passes (the agent's own mount is not judged).
    expect(validate({ uid: 'r', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'apps', operation: 'CREATE', object: injected }, ctx().lookupBinding)).toMatchObject({ outcome: 'allowed' });
  });
});
