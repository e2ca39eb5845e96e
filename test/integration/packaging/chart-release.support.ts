import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentWorld } from '../../harness/world-state.ts';
import { chartDir, helm, valuesFile } from './helm.support.ts';

/**
 * A release of the chart in the world's API server, and what a controller process needs to run as
 * that release's controller pod would: the names the chart gives the service account and the
 * Lease, and the broker flags with the chart-made certificate.
 */
export interface ChartRelease {
  readonly release: string;
  readonly namespace: string;
  /** The base name of the objects (`fullnameOverride`, default `secret-binder`). */
  readonly fullname: string;
  readonly controllerServiceAccount: string;
  readonly nodeServiceAccount: string;
  /** The only Lease the chart's Role lets the controller get and update. */
  readonly leaseName: string;
  readonly webhookConfigurationName: string;
}

export function chartRelease(release: string, namespace: string, fullname = 'secret-binder'): ChartRelease {
  return {
    release,
    namespace,
    fullname,
    controllerServiceAccount: `${fullname}-controller`,
    nodeServiceAccount: `${fullname}-node`,
    leaseName: `${fullname}-controller`,
    webhookConfigurationName: `${fullname}-webhook`,
  };
}

const kubeconfigArgs = (): string[] => ['--kubeconfig', currentWorld().kube.kubeconfigPath];

/** `helm install` (namespace created); throws with Helm's error text when it fails. */
export async function installChart(release: ChartRelease, values: unknown): Promise<void> {
  const installed = await helm(['install', release.release, chartDir, '--namespace', release.namespace, '--create-namespace', ...kubeconfigArgs(), '-f', valuesFile(values)]);
  if (installed.code !== 0) throw new Error(`helm install failed: ${installed.stderr}`);
}

/** `helm uninstall`; an absent release is not an error (cleanup after a failed install). */
export async function uninstallChart(release: ChartRelease): Promise<void> {
  await helm(['uninstall', release.release, '--namespace', release.namespace, '--ignore-not-found', ...kubeconfigArgs()]);
}

/**
 * The controller's broker flags as the chart's Deployment sets them, on a loopback port: the
 * certificate the controller keeps in the Secret `<fullname>-broker-tls` (ADR 0155), for the broker
 * Service's names, and the node plugin's service account. The trust bundle (`ca.crt` of that
 * Secret) is also written to `caPath`, where a test reads it as the node plugin's mount would.
 */
export function chartBrokerFlags(release: ChartRelease): { flags: string[]; caPath: string } {
  const caPath = join(mkdtempSync(join(tmpdir(), 'sb-broker-ca-')), 'ca.crt');
  const service = `${release.fullname}-broker.${release.namespace}`;
  return {
    caPath,
    flags: [
      '--broker-address=127.0.0.1:0',
      `--broker-tls-secret=${release.fullname}-broker-tls`,
      `--broker-dns-names=${service}.svc,${service}.svc.cluster.local`,
      `--broker-ca-out=${caPath}`,
      `--node-plugin-service-account=${release.namespace}:${release.nodeServiceAccount}`,
    ],
  };
}

/**
 * A request of the controller the API server refused, as its log shows it (an RBAC gap): the
 * server's "... is forbidden: ..." message, its Forbidden reason, or the bare code. (Not any "403":
 * a retry delay of 403 ms is no refusal.)
 */
export const refusedRequest = /forbidden|"code":403\b|HTTP 403\b/i;
