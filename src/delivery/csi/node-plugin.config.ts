import { parseArgs } from 'node:util';
import { logLevels, type LogLevel } from '../../observability/logger.ts';

/** The node plugin's configuration, parsed once by `node-plugin.run.ts` (STYLE 10). */
export interface NodePluginConfig {
  /** The node's name (NodeGetInfo's node_id); `--node-name` or `NODE_NAME` (downward API). */
  readonly nodeName: string;
  readonly csiSocket: string;
  /** Kubelet registration socket (in the kubelet's plugins_registry dir); null: no registration. */
  readonly registrationSocket: string | null;
  /** The CSI socket path as the kubelet sees it (host path). */
  readonly kubeletCsiSocket: string;
  readonly brokerUrl: string;
  readonly brokerCaFile: string | null;
  /** The plugin's own projected service-account token (audience secretbinder.dev, ADR 0082). */
  readonly tokenFile: string;
  readonly tmpfsSizeBytes: number;
  readonly changesWaitSeconds: number;
  readonly logLevel: LogLevel;
  /** Where `/healthz` (liveness) and `/readyz` (readiness) are served for the kubelet; null: nowhere. */
  readonly healthAddress: { readonly host: string; readonly port: number } | null;
}

export class NodePluginConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodePluginConfigError';
  }
}

const units: Record<string, number> = { '': 1, k: 1000, Ki: 1024, M: 1000 ** 2, Mi: 1024 ** 2, G: 1000 ** 3, Gi: 1024 ** 3 };

/** A Kubernetes quantity of bytes (`4Mi`, `512Ki`, `1000000`). */
export function parseByteQuantity(text: string): number {
  const match = /^(\d+)(k|Ki|M|Mi|G|Gi)?$/.exec(text);
  const unit = units[match?.[2] ?? ''];
  if (match?.[1] === undefined || unit === undefined) throw new NodePluginConfigError(`not a byte quantity: ${JSON.stringify(text)}`);
  return Number(match[1]) * unit;
}

export function parseNodePluginConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): NodePluginConfig {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        'node-name': { type: 'string' },
        'csi-socket': { type: 'string', default: '/csi/csi.sock' },
        'registration-socket': { type: 'string', default: '/registration/secretbinder.dev-reg.sock' },
        'kubelet-csi-socket': { type: 'string', default: '/var/lib/kubelet/plugins/secretbinder.dev/csi.sock' },
        'broker-url': { type: 'string' },
        'broker-ca-file': { type: 'string' },
        'token-file': { type: 'string', default: '/var/run/secrets/secretbinder.dev/token' },
        'tmpfs-size': { type: 'string', default: '4Mi' },
        'changes-wait-seconds': { type: 'string', default: '30' },
        'log-level': { type: 'string', default: 'info' },
        'health-address': { type: 'string', default: '' },
        // Handled by node-plugin.run.ts before any other flag is parsed (prints the version and exits).
        version: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new NodePluginConfigError(err instanceof Error ? err.message : 'bad arguments');
  }
  const nodeName = values['node-name'] ?? env['NODE_NAME'] ?? '';
  if (nodeName === '') throw new NodePluginConfigError('--node-name (or NODE_NAME) is required');
  const brokerUrl = values['broker-url'] ?? '';
  let url: URL;
  try {
    url = new URL(brokerUrl);
  } catch {
    throw new NodePluginConfigError('--broker-url must be an absolute URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (url.hostname === '127.0.0.1' || url.hostname === 'localhost'))) {
    // Pod tokens and secret values travel on this connection: plain HTTP only to a local broker.
    throw new NodePluginConfigError('--broker-url must be https:// (http:// only for a loopback broker)');
  }
  const tmpfsSizeBytes = parseByteQuantity(values['tmpfs-size']);
  if (tmpfsSizeBytes < 4096 || tmpfsSizeBytes > 1024 ** 3) throw new NodePluginConfigError('--tmpfs-size must be between 4Ki and 1Gi');
  const changesWaitSeconds = Number(values['changes-wait-seconds']);
  if (!Number.isInteger(changesWaitSeconds) || changesWaitSeconds < 1 || changesWaitSeconds > 60) {
    throw new NodePluginConfigError('--changes-wait-seconds must be an integer from 1 to 60');
  }
  const logLevel = values['log-level'];
  if (!(logLevels as readonly string[]).includes(logLevel)) throw new NodePluginConfigError(`--log-level must be one of ${logLevels.join(', ')}`);
  let healthAddress: NodePluginConfig['healthAddress'] = null;
  if (values['health-address'] !== '') {
    const match = /^([^:]+):(\d{1,5})$/.exec(values['health-address']);
    const port = Number(match?.[2]);
    if (match?.[1] === undefined || !(port >= 1 && port <= 65535)) throw new NodePluginConfigError('--health-address must be host:port, e.g. 0.0.0.0:9809');
    healthAddress = { host: match[1], port };
  }
  return {
    nodeName,
    csiSocket: values['csi-socket'],
    registrationSocket: values['registration-socket'] === '' ? null : values['registration-socket'],
    kubeletCsiSocket: values['kubelet-csi-socket'],
    brokerUrl,
    brokerCaFile: values['broker-ca-file'] ?? null,
    tokenFile: values['token-file'],
    tmpfsSizeBytes,
    changesWaitSeconds,
    logLevel: logLevel as LogLevel,
    healthAddress,
  };
}
