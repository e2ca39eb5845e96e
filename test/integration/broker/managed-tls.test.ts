import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { brokerAudience } from '../../../src/broker/broker.protocol.ts';
import type { Operator } from '../../../src/controllers/operator.ts';
import { BrokerHttpClient } from '../../../src/delivery/csi/broker-http.client.ts';
import { createAuditLog, type AuditLog } from '../../../src/observability/audit.ts';
import { CapturedOutput } from '../../../src/observability/captured-output.ts';
import { ContentHmacKeyError, ensureContentHmacKey } from '../../../src/observability/content-hmac-key.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { ManagedTlsSecret, splitCertificates } from '../../../src/tls/managed-tls.ts';
import { webhookConfigurations } from '../../../src/webhook/webhook-configurations.ts';
import { freePorts } from '../../harness/backend-tools.ts';
import { adminKubeConfig, eventually, installCrds } from '../support/cluster.ts';
import { buildInProcessController } from '../support/in-process-controller.ts';

/**
 * Controller-managed certificates renewed under a running controller (ADR 0155), with a validity
 * of 45 s: a renewal stages a new CA at 30 s and serves its certificate at 37.5 s. Checked against
 * the world: what the broker and the webhook serve on their sockets, the Secrets, the caBundle the
 * API server uses to call the webhook (a dry-run pod create through a fail-closed webhook), and the
 * node plugin's broker client, reading the CA file as the kubelet would project it, answered on
 * every call across the renewal.
 */

const suffix = randomBytes(3).toString('hex');
const systemNs = `mtls-sys-${suffix}`;
const appNs = `mtls-app-${suffix}`;
const node = `mtls-node-${suffix}`;
const configurationName = `mtls-${suffix}`;
const brokerSecret = 'mtls-broker-tls';
const webhookSecret = 'mtls-webhook-tls';
const validitySeconds = 45;

let kc: KubeConfig;
let core: CoreV1Api;
let operator: Operator;
let audit: AuditLog;
let running: Promise<void> | undefined;
const stop = new AbortController();
let tmp: string;
let caPath: string;
let brokerPort: number;
let webhookPort: number;
let client: BrokerHttpClient;
const controllerLog = new CapturedOutput();

/** The certificate a TLS server presents on 127.0.0.1:port (not verified: the test compares it). */
function servedCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert === undefined) reject(new Error('no peer certificate'));
      else resolve(cert);
    });
    socket.once('error', reject);
  });
}

async function secretData(name: string): Promise<Record<string, string>> {
  const secret = await core.readNamespacedSecret({ namespace: systemNs, name });
  return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

async function caBundles(): Promise<string[]> {
  const admission = kc.makeApiClient(AdmissionregistrationV1Api);
  const webhooks = [
    ...((await admission.readMutatingWebhookConfiguration({ name: configurationName })).webhooks ?? []),
    ...((await admission.readValidatingWebhookConfiguration({ name: configurationName })).webhooks ?? []),
  ];
  return webhooks.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'));
}

/** A pod create the API server sends through the fail-closed validating webhook (dry run: nothing is stored). */
async function admitThroughWebhook(): Promise<void> {
  await core.createNamespacedPod({
    namespace: appNs,
    dryRun: 'All',
    body: { metadata: { name: 'probe' }, spec: { containers: [{ name: 'app', image: 'busybox' }] } },
  });
}

/** Whether `cert` verifies against one of the CAs of a PEM bundle. */
function trusted(cert: X509Certificate, bundle: string): boolean {
  return splitCertificates(bundle).some((ca) => cert.checkIssued(new X509Certificate(ca)) && cert.verify(new X509Certificate(ca).publicKey));
}

describe('controller-managed certificates (short validity)', () => {
  beforeAll(async () => {
    kc = adminKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await installCrds(kc);
    tmp = mkdtempSync('/tmp/sb-mtls-it-');
    for (const name of [systemNs, appNs]) await core.createNamespace({ body: { metadata: { name } } });
    await core.createNode({ body: { metadata: { name: node } } });
    await core.createNamespacedServiceAccount({ namespace: systemNs, body: { metadata: { name: 'node-plugin' } } });

    webhookPort = await freePorts(1);
    const configurations = webhookConfigurations({
      names: { mutating: configurationName, validating: configurationName },
      clientConfig: (path) => ({ url: `https://127.0.0.1:${String(webhookPort)}${path}` }),
      excludedNamespaces: ['kube-system', systemNs],
      namespaceMatchLabels: { 'kubernetes.io/metadata.name': appNs },
    });
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.createMutatingWebhookConfiguration({ body: configurations.mutating });
    await admission.createValidatingWebhookConfiguration({ body: configurations.validating });

    audit = createAuditLog({ destination: { kind: 'stream', stream: new CapturedOutput() } });
    ({ operator, caPath } = buildInProcessController({
      dir: tmp,
      name: 'managed',
      identity: `mtls-${suffix}`,
      namespace: systemNs,
      watchNamespaces: [appNs],
      nodePluginServiceAccount: `${systemNs}:node-plugin`,
      kubeConfig: kc,
      log: { stream: controllerLog, level: 'info' },
      registry: new Registry(),
      audit,
      extraArgs: [
        '--broker-tls-secret', brokerSecret,
        '--broker-dns-names', 'localhost',
        '--webhook-address', `127.0.0.1:${String(webhookPort)}`,
        '--webhook-tls-secret', webhookSecret,
        '--webhook-dns-names', 'localhost,127.0.0.1',
        '--webhook-configuration-name', configurationName,
        '--managed-tls-validity', String(validitySeconds),
      ],
    }));
    running = operator.manager.run(stop.signal);
    if (operator.broker === undefined) throw new Error('the broker is not enabled');
    brokerPort = (await operator.broker.address()).port;

    // The node plugin: its own token, bound to its pod on the node (as the DaemonSet's projected
    // volume holds it), and the broker's CA from the file a kubelet would project from the Secret.
    const pluginPod = await core.createNamespacedPod({
      namespace: systemNs,
      body: { metadata: { name: 'node-plugin' }, spec: { nodeName: node, serviceAccountName: 'node-plugin', automountServiceAccountToken: false, containers: [{ name: 'plugin', image: 'busybox' }] } },
    });
    const token = await core.createNamespacedServiceAccountToken({
      namespace: systemNs,
      name: 'node-plugin',
      body: { spec: { audiences: [brokerAudience], expirationSeconds: 600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'node-plugin', uid: pluginPod.metadata?.uid ?? '' } } },
    });
    writeFileSync(join(tmp, 'plugin-token'), token.status?.token ?? '', { mode: 0o600 });
    client = new BrokerHttpClient({ url: `https://127.0.0.1:${String(brokerPort)}`, caFile: caPath, tokenFile: join(tmp, 'plugin-token'), timeoutMs: 10_000 });
  }, 90_000);

  afterAll(async () => {
    stop.abort();
    await running;
    await operator.close();
    await audit.close();
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    await admission.deleteMutatingWebhookConfiguration({ name: configurationName }).catch(() => undefined);
    await admission.deleteValidatingWebhookConfiguration({ name: configurationName }).catch(() => undefined);
    for (const name of [appNs, systemNs]) await core.deleteNamespace({ name }).catch(() => undefined);
    await core.deleteNode({ name: node }).catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }, 60_000);

  it('serves the certificates it created in Secrets, publishes their CA to the node plugin and the caBundle', async () => {
    const broker = await secretData(brokerSecret);
    expect(Object.keys(broker).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect((await servedCertificate(brokerPort)).raw).toEqual(new X509Certificate(broker['tls.crt'] ?? '').raw);
    expect(readFileSync(caPath, 'utf8')).toBe(broker['ca.crt']);
    expect(await client.changes({ volumes: [], waitSeconds: 0 }, new AbortController().signal)).toEqual({ changed: [] });

    const webhook = await eventually('webhook serving its managed certificate', async () => {
      const data = await secretData(webhookSecret).catch(() => undefined);
      const served = await servedCertificate(webhookPort).catch(() => undefined);
      return data !== undefined && served?.raw.equals(new X509Certificate(data['tls.crt'] ?? '').raw) === true ? data : undefined;
    });
    await eventually('caBundle = the webhook Secret ca.crt', async () => ((await caBundles()).every((b) => b === webhook['ca.crt']) ? true : undefined));
    await admitThroughWebhook();
  }, 60_000);

  it('renews both before expiry: the new CA is published first, the running servers switch without a restart, nothing fails', async () => {
    const firstBroker = await servedCertificate(brokerPort);
    const firstWebhook = await servedCertificate(webhookPort);
    const failures: string[] = [];
    let stagedSeen = false;
    // The node plugin's calls go on through the renewal; each must be answered.
    const renewed = await eventually(
      'both servers present a renewed certificate',
      async () => {
        try {
          await client.changes({ volumes: [], waitSeconds: 0 }, new AbortController().signal);
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error));
        }
        const data = await secretData(brokerSecret);
        if (data['next.crt'] !== undefined && splitCertificates(data['ca.crt'] ?? '').length === 2) stagedSeen = true;
        const [broker, webhook] = await Promise.all([servedCertificate(brokerPort), servedCertificate(webhookPort)]);
        return broker.fingerprint256 !== firstBroker.fingerprint256 && webhook.fingerprint256 !== firstWebhook.fingerprint256 ? { broker, webhook } : undefined;
      },
      120_000,
    );
    expect(failures).toEqual([]);
    // Staged first: a new CA in ca.crt beside the old one while the old pair was still served.
    expect(stagedSeen).toBe(true);
    expect(new Date(renewed.broker.validFrom).getTime()).toBeGreaterThan(new Date(firstBroker.validFrom).getTime());

    // The node plugin's CA file trusts the new certificate, and the old one still (overlap).
    const bundle = readFileSync(caPath, 'utf8');
    expect(trusted(renewed.broker, bundle)).toBe(true);
    expect(trusted(firstBroker, bundle)).toBe(true);
    expect(await client.changes({ volumes: [], waitSeconds: 0 }, new AbortController().signal)).toEqual({ changed: [] });

    // The webhook configurations follow the webhook Secret; the API server calls the renewed server.
    const webhook = await secretData(webhookSecret);
    expect(new X509Certificate(webhook['tls.crt'] ?? '').raw).toEqual(renewed.webhook.raw);
    await eventually('caBundle = the renewed webhook Secret ca.crt', async () => ((await caBundles()).every((b) => b === webhook['ca.crt']) ? true : undefined));
    expect(trusted(renewed.webhook, (await caBundles())[0] ?? '')).toBe(true);
    await admitThroughWebhook();
    expect(await controllerLog.text()).toMatch(/"message":"webhook serving certificate reloaded"/);
    expect(await controllerLog.text()).toMatch(/"message":"broker certificate reloaded"/);
  }, 150_000);

  it('two replicas starting at once end with one HMAC key and one certificate; a restart reads the same; a bad key is never overwritten', async () => {
    const keyName = `mtls-race-hmac`;
    const [a, b] = await Promise.all([ensureContentHmacKey(core, systemNs, keyName), ensureContentHmacKey(core, systemNs, keyName)]);
    expect(a.equals(b)).toBe(true);
    expect(a.byteLength).toBe(32);
    expect((await ensureContentHmacKey(core, systemNs, keyName)).equals(a)).toBe(true);

    const replica = (): ManagedTlsSecret =>
      new ManagedTlsSecret({
        core,
        namespace: systemNs,
        name: 'mtls-race-tls',
        caName: 'race-ca',
        wanted: { dnsNames: ['localhost'], ipAddresses: [], validityMs: 3_600_000 },
        logger: createLogger({ level: 'error', component: 'test', stream: new CapturedOutput() }),
      });
    const [first, second] = await Promise.all([replica().ensure(), replica().ensure()]);
    expect(second).toEqual(first);
    expect((await secretData('mtls-race-tls'))['tls.crt']).toBe(first.certPem);

    await core.createNamespacedSecret({ namespace: systemNs, body: { metadata: { name: 'mtls-short-hmac' }, data: { key: Buffer.from('short').toString('base64') } } });
    await expect(ensureContentHmacKey(core, systemNs, 'mtls-short-hmac')).rejects.toThrow(ContentHmacKeyError);
    expect((await secretData('mtls-short-hmac'))['key']).toBe('short');
  }, 30_000);
});
