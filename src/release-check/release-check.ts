import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { checkServerIdentity } from 'node:tls';
import type { KubeTransport } from '../runtime/kube-request.ts';
import { group, resources, version } from '../api/v1alpha1/index.ts';
import { requestJson } from '../runtime/kube-request.ts';

/**
 * What `helm test` proves about an installed release (ADR 0162): the CRDs are served, the broker
 * answers over TLS that its CA verifies (and refuses an anonymous caller), and every ready
 * controller replica's webhook answers an AdmissionReview over TLS that the webhook
 * configuration's caBundle verifies. Each check returns a line for the test pod's log; nothing in
 * them is secret.
 */

export interface ReleaseCheckOptions {
  /** The test pod's in-cluster identity. */
  readonly kubeConfig: KubeTransport;
  /** The release namespace (controller pods, Services). */
  readonly namespace: string;
  /** Label selector of the controller pods. */
  readonly controllerSelector: string;
  /** The broker as the node plugins reach it, and the CA that signs its certificate. */
  readonly broker: { readonly url: string; readonly caPem: string };
  /** The webhook's configuration and Service names; null when the release has no webhook. */
  readonly webhook: { readonly configurationName: string; readonly serviceName: string } | null;
  readonly timeoutMs: number;
}

export interface CheckOutcome {
  readonly name: 'crds' | 'broker' | 'webhook';
  readonly ok: boolean;
  readonly detail: string;
}

/** Runs every check (the webhook's only when the release has one); a check that throws fails with its message. */
export async function checkRelease(options: ReleaseCheckOptions): Promise<CheckOutcome[]> {
  const guarded = (name: CheckOutcome['name'], check: () => Promise<CheckOutcome>): Promise<CheckOutcome> =>
    check().catch((error: unknown) => ({ name, ok: false, detail: messageOf(error) }));
  const { webhook } = options;
  return Promise.all([
    guarded('crds', () => checkCrds(options)),
    guarded('broker', () => checkBroker(options)),
    ...(webhook === null ? [] : [guarded('webhook', () => checkWebhook(options, webhook))]),
  ]);
}

/** Discovery lists every kind of ours (what `kubectl get secretbindings` needs first). */
async function checkCrds(options: ReleaseCheckOptions): Promise<CheckOutcome> {
  const list = (await requestJson(options.kubeConfig, { method: 'GET', path: `/apis/${group}/${version}`, signal: AbortSignal.timeout(options.timeoutMs) })) as {
    resources?: { name?: string }[];
  };
  const served = new Set((list.resources ?? []).map((r) => r.name));
  const missing = Object.values(resources)
    .map((r) => r.plural)
    .filter((plural) => !served.has(plural));
  return missing.length === 0
    ? { name: 'crds', ok: true, detail: `${group}/${version} serves ${Object.values(resources).map((r) => r.plural).join(', ')}` }
    : { name: 'crds', ok: false, detail: `${group}/${version} does not serve ${missing.join(', ')}` };
}

/** The broker answers the change stream, and refuses a caller without a token. */
async function checkBroker(options: ReleaseCheckOptions): Promise<CheckOutcome> {
  const url = new URL('/v1/changes', options.broker.url);
  const answer = await postJson(url, { ca: options.broker.caPem, servername: url.hostname }, { node: 'release-check', volumes: [], waitSeconds: 1 }, options.timeoutMs);
  const reason = (answer.body as { reason?: unknown } | undefined)?.reason;
  const refused = (answer.status === 401 || answer.status === 403) && typeof reason === 'string';
  return refused
    ? { name: 'broker', ok: true, detail: `broker ${url.host} answered over TLS and refused an anonymous caller (${String(answer.status)} ${reason})` }
    : { name: 'broker', ok: false, detail: `broker ${url.host} answered ${String(answer.status)} to an anonymous caller; expected 401 or 403 with a reason` };
}

interface PodView {
  metadata?: { name?: string };
  spec?: { containers?: { ports?: { name?: string; containerPort?: number }[] }[] };
  status?: { podIP?: string; conditions?: { type?: string; status?: string }[] };
}

/**
 * Every ready controller replica answers an AdmissionReview of a pod that uses nothing of ours
 * with `allowed`, over TLS for the webhook Service's name, verified by the configuration's caBundle
 * (what the API server trusts). Replicas are called at their pod addresses, so one that does not
 * serve is named, and no Service routing is needed.
 */
async function checkWebhook(options: ReleaseCheckOptions, webhook: NonNullable<ReleaseCheckOptions['webhook']>): Promise<CheckOutcome> {
  const signal = (): AbortSignal => AbortSignal.timeout(options.timeoutMs);
  const configuration = (await requestJson(options.kubeConfig, {
    method: 'GET',
    path: `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${webhook.configurationName}`,
    signal: signal(),
  })) as { webhooks?: { clientConfig?: { caBundle?: string } }[] };
  const caBundle = Buffer.from(configuration.webhooks?.[0]?.clientConfig?.caBundle ?? '', 'base64').toString('utf8');
  if (caBundle === '') return { name: 'webhook', ok: false, detail: `ValidatingWebhookConfiguration ${webhook.configurationName} has no caBundle yet` };
  const pods = (await requestJson(options.kubeConfig, {
    method: 'GET',
    path: `/api/v1/namespaces/${options.namespace}/pods`,
    query: { labelSelector: options.controllerSelector },
    signal: signal(),
  })) as { items?: PodView[] };
  const ready = (pods.items ?? []).filter((p) => p.status?.podIP !== undefined && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);
  if (ready.length === 0) return { name: 'webhook', ok: false, detail: `no ready controller pod (${options.controllerSelector}) in ${options.namespace}` };
  const servername = `${webhook.serviceName}.${options.namespace}.svc`;
  const problems: string[] = [];
  for (const pod of ready) {
    const name = pod.metadata?.name ?? '?';
    const port = pod.spec?.containers?.flatMap((c) => c.ports ?? []).find((p) => p.name === 'webhook')?.containerPort;
    if (port === undefined) {
      problems.push(`pod ${name} declares no webhook port`);
      continue;
    }
    const uid = randomUUID();
    const host = (pod.status?.podIP ?? '').includes(':') ? `[${pod.status?.podIP ?? ''}]` : (pod.status?.podIP ?? '');
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: options.namespace,
        name: 'release-check',
        operation: 'CREATE',
        dryRun: true,
        object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'release-check', namespace: options.namespace }, spec: { containers: [{ name: 'app', image: 'release-check' }] } },
      },
    };
    const answer = await postJson(new URL(`https://${host}:${String(port)}/validate`), { ca: caBundle, servername }, review, options.timeoutMs).catch((error: unknown) => ({
      status: 0,
      body: messageOf(error),
    }));
    const response = (answer.body as { response?: { uid?: string; allowed?: boolean; status?: { message?: string } } } | undefined)?.response;
    if (answer.status !== 200 || response?.uid !== uid || response.allowed !== true) {
      problems.push(`pod ${name} (${host}:${String(port)}): ${answer.status === 0 ? String(answer.body) : `HTTP ${String(answer.status)} ${response?.status?.message ?? ''}`.trim()}`);
    }
  }
  return problems.length === 0
    ? { name: 'webhook', ok: true, detail: `${String(ready.length)} controller replica(s) answered /validate over TLS for ${servername}` }
    : { name: 'webhook', ok: false, detail: problems.join('; ') };
}

function postJson(url: URL, tls: { ca: string; servername: string }, body: unknown, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: 'POST',
        ca: tls.ca,
        // An IP address is no valid SNI name; the certificate is checked against `servername` anyway.
        servername: tls.servername,
        checkServerIdentity: (_host, cert) => checkServerIdentity(tls.servername, cert),
        headers: { 'content-type': 'application/json', 'content-length': payload.byteLength },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
