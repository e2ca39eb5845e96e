import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { group, resources, version } from '../../src/api/v1alpha1/index.ts';
import { createAuditLog } from '../../src/observability/audit.ts';
import { CapturedOutput } from '../../src/observability/captured-output.ts';
import { apiserverAuditLogPath } from '../harness/control-plane.ts';
import { captureDir, captureText, filesUnder, needleForms, readNeedles, scanForNeedles, type Needle } from '../harness/leak-capture.ts';
import { writeKvSecret } from '../harness/openbao.ts';
import { currentWorld } from '../harness/world-state.ts';
import { adminKubeConfig, eventually, installCrds } from './support/cluster.ts';
import { buildInProcessController } from './support/in-process-controller.ts';

/**
 * The leak scan (issue #15 item 8, ADR 0177), run last by the integration project's sequencer:
 * every secret value and token the run's suites registered (test/harness/leak-capture.ts) and the
 * world's own credentials are searched — as is, JSON-escaped, base64, URL-encoded — in everything
 * the operator said: controller and node-plugin log lines at debug level, audit events, metrics
 * scrapes, the API server's audit log of every Event and every write to our resources, and the
 * Events and statuses still stored. Zero hits, over a haystack and a needle set proven non-empty.
 */

const suffix = randomBytes(3).toString('hex');
const ns = `leak-${suffix}`;
const sysNs = `leak-sys-${suffix}`;
const plural = { bindings: resources.SecretBinding.plural, backends: resources.SecretBackend.plural, clusterBackends: resources.ClusterSecretBackend.plural };

/** Our processes' logs in the world's log directory (the third-party servers' logs are not ours to judge). */
const ourProcessLog = /^(controller|node-plugin|agent|csi)/;

let kc: KubeConfig;
let work: string;

beforeAll(async () => {
  kc = adminKubeConfig();
  await installCrds(kc);
  work = mkdtempSync(join(tmpdir(), 'sb-leak-'));
});

afterAll(async () => {
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of [ns, sysNs]) await core.deleteNamespace({ name }).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

describe('leak scan', () => {
  it('finds a planted needle in every form it searches for, and nothing in a clean haystack', () => {
    const planted: Needle = { value: `planted-${randomBytes(6).toString('hex')}\n"quoted"`, source: 'self-check' };
    const forms = needleForms(planted.value);
    expect(forms.length).toBeGreaterThanOrEqual(3);
    const files = forms.map((form, i) => {
      const path = join(work, `planted-${String(i)}.log`);
      writeFileSync(path, `{"level":"debug","message":"before ${form} after"}\n`);
      return path;
    });
    const clean = join(work, 'clean.log');
    writeFileSync(clean, '{"level":"info","message":"nothing to see","key":"app/db"}\n');
    const hits = scanForNeedles([planted, { value: 'short', source: 'below the minimum length' }], [...files, clean], join(work, 'scan-self'));
    expect(hits.map((h) => h.file).sort()).toEqual([...files].sort());
    expect(hits.every((h) => h.needle.source === 'self-check')).toBe(true);
  });

  it('drives one registered value through a controller at debug level, so the scan is never vacuous', async () => {
    const world = currentWorld();
    const bao = world.openbao;
    if (bao === undefined) throw new Error('the world has no OpenBao');
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    for (const name of [ns, sysNs]) await core.createNamespace({ body: { metadata: { name } } });
    // Registered by the harness's writeKvSecret, like every value a suite writes.
    await writeKvSecret(bao, `leak-scan/${suffix}`, { password: `leak-scan-value-${randomBytes(8).toString('hex')}` });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'bao' }, stringData: { token: bao.rootToken } } });
    await custom.createNamespacedCustomObject({
      group, version, plural: plural.backends, namespace: ns,
      body: { apiVersion: `${group}/${version}`, kind: 'SecretBackend', metadata: { name: 'bao' }, spec: { vault: { address: bao.address, mount: bao.kvMount, auth: { token: { secretRef: { name: 'bao', key: 'token' } } } } } },
    });
    for (const [name, key] of [['served', `leak-scan/${suffix}`], ['missing', `leak-scan/${suffix}-missing`]] as const) {
      await custom.createNamespacedCustomObject({
        group, version, plural: plural.bindings, namespace: ns,
        body: { apiVersion: `${group}/${version}`, kind: 'SecretBinding', metadata: { name }, spec: { backendRef: { name: 'bao' }, podSelector: {}, containers: ['app'], files: [{ path: 'password', key, property: 'password' }] } },
      });
    }
    const registry = new Registry();
    const audit = createAuditLog({ destination: { kind: 'stream', stream: new CapturedOutput() } });
    const { operator } = buildInProcessController({
      dir: work, name: 'leak-scan', identity: `leak-${suffix}`, namespace: sysNs, watchNamespaces: [ns], nodePluginServiceAccount: `${sysNs}:node-plugin`,
      kubeConfig: kc, log: { stream: new CapturedOutput(), level: 'info' }, registry, audit,
    });
    const stop = new AbortController();
    const running = operator.manager.run(stop.signal);
    try {
      const reason = async (name: string): Promise<string | undefined> => {
        const b = (await custom.getNamespacedCustomObject({ group, version, plural: plural.bindings, namespace: ns, name })) as { status?: { conditions?: { type: string; reason: string }[] } };
        return b.status?.conditions?.find((c) => c.type === 'Ready')?.reason;
      };
      await eventually('binding served Reconciled', async () => ((await reason('served')) === 'Reconciled' ? true : undefined), 60_000);
      await eventually('binding missing KeyNotFound', async () => ((await reason('missing')) === 'KeyNotFound' ? true : undefined), 60_000);
    } finally {
      stop.abort();
      await running;
      await operator.close();
      await audit.close();
    }
  });

  it('finds no registered secret value or token in any captured log line, Event, status, audit event or metrics scrape', async () => {
    const world = currentWorld();
    const dir = captureDir();
    if (dir === undefined) throw new Error('no leak capture in this world');

    // The live state: every Event and every status of our resources still stored.
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const events = await core.listEventForAllNamespaces();
    const objects = await Promise.all(Object.values(plural).map((p) => custom.listClusterCustomObject({ group, version, plural: p })));
    captureText(`live/state-${suffix}.json`, JSON.stringify({ events: events.items, objects }));

    const needles: Needle[] = [
      ...readNeedles(dir),
      ...(world.openbao === undefined ? [] : [{ value: world.openbao.rootToken, source: 'openbao root token' }]),
      ...(world.moto === undefined ? [] : [{ value: world.moto.secretAccessKey, source: 'moto secret access key' }]),
      ...(world.azureKeyVault?.kind === 'double'
        ? [
            { value: world.azureKeyVault.clientSecret, source: 'key vault double client secret' },
            { value: world.azureKeyVault.deniedClient.clientSecret, source: 'key vault double denied client secret' },
          ]
        : []),
    ];
    const auditLog = apiserverAuditLogPath(world.logDir);
    const haystack = [
      ...filesUnder(join(dir, 'haystack')),
      ...readdirSync(world.logDir).filter((f) => ourProcessLog.test(f)).map((f) => join(world.logDir, f)),
      ...(existsSync(auditLog) ? [auditLog] : []),
    ];
    const bytes = haystack.reduce((sum, f) => sum + statSync(f).size, 0);
    process.stdout.write(`leak scan: ${String(needles.length)} needles, ${String(haystack.length)} files, ${(bytes / 2 ** 20).toFixed(1)} MiB\n`);

    // Not vacuous: this file's own value is a needle, and its debug lines, its metrics and its
    // binding's status write (in the API server's audit log) are in the haystack.
    expect(needles.some((n) => n.value.startsWith('leak-scan-value-'))).toBe(true);
    const captured = (name: string): string => haystack.filter((f) => f.includes(name)).map((f) => readFileSync(f, 'utf8')).join('\n');
    expect(captured(`leak-scan-leak-${suffix}`)).toContain('"level":"debug"');
    expect(captured(`metrics/leak-scan-leak-${suffix}`)).toContain('secretbinder_');
    expect(existsSync(auditLog)).toBe(true);
    expect(readFileSync(auditLog, 'utf8')).toMatch(new RegExp(`"namespace":"${ns}".*"contentHmac"`));

    const hits = scanForNeedles(needles, haystack, join(work, 'scan'));
    // The report names the source and the file, never the value.
    expect(hits.map((h) => `${h.needle.source} in ${h.file}`)).toEqual([]);
  });
});
