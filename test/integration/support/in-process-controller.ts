import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { KubeTransport } from '../../../src/runtime/kube-request.ts';
import type { Registry } from 'prom-client';
import { parseControllerConfig } from '../../../src/config/controller.config.ts';
import { buildOperator, type Operator } from '../../../src/controllers/operator.ts';
import { createKubeClients } from '../../../src/kube/kube-clients.ts';
import type { AuditLog } from '../../../src/observability/audit.ts';
import { createLogger, type LogLevel } from '../../../src/observability/logger.ts';
import { SecretValue } from '../../../src/observability/secret-value.ts';
import { captureText, teeLogToCapture } from '../../harness/leak-capture.ts';
import { currentWorld } from '../../harness/world-state.ts';

/**
 * A controller replica in this process, built from command-line flags as main.ts builds it, with
 * its broker on a loopback port and a self-managed certificate whose CA it writes to `caPath`.
 */
export interface InProcessControllerOptions {
  /** Where the broker's CA (`broker-ca-<name>.pem`) and, unless given, the HMAC key are written. */
  readonly dir: string;
  readonly name: string;
  readonly identity: string;
  /** The operator namespace. */
  readonly namespace: string;
  readonly watchNamespaces: readonly string[];
  /** `namespace:name` of the node plugin's service account. */
  readonly nodePluginServiceAccount: string;
  /** Leader election on this Lease; without it, no election. */
  readonly lease?: string;
  /** The content HMAC key file, shared by replicas; default `<dir>/hmac.key`, created if missing. */
  readonly hmacKeyPath?: string;
  readonly kubeConfig: KubeTransport;
  /**
   * Where the log lines at `level` and above go. Every line down to debug also goes to the run's
   * leak capture (test/harness/leak-capture.ts), whatever `level` says.
   */
  readonly log: { readonly stream: Writable; readonly level: LogLevel };
  /**
   * The level of the leak capture; default debug. Only suites whose acceptance bounds a debug log
   * would push over on a 2-core machine (the rotation suites, 200 volumes) capture at their own level.
   */
  readonly captureLevel?: LogLevel;
  readonly registry: Registry;
  readonly audit: AuditLog;
  /** Further flags (e.g. a managed certificate instead of the self-managed one). */
  readonly extraArgs?: readonly string[];
}

export function buildInProcessController(options: InProcessControllerOptions): { readonly operator: Operator; readonly caPath: string } {
  const hmacKey = options.hmacKeyPath ?? join(options.dir, 'hmac.key');
  if (!existsSync(hmacKey)) writeFileSync(hmacKey, randomBytes(32), { mode: 0o600 });
  const caPath = join(options.dir, `broker-ca-${options.name}.pem`);
  const config = parseControllerConfig(
    [
      '--kubeconfig', currentWorld().kube.kubeconfigPath,
      '--namespace', options.namespace,
      '--identity', options.identity,
      '--watch-namespaces', options.watchNamespaces.join(','),
      ...(options.lease === undefined ? ['--leader-elect', 'false'] : ['--leader-elect', 'true', '--lease-name', options.lease]),
      '--http-address', '127.0.0.1:0',
      '--hmac-key-file', hmacKey,
      '--broker-address', '127.0.0.1:0',
      '--broker-ca-out', caPath,
      '--node-plugin-service-account', options.nodePluginServiceAccount,
      ...(options.extraArgs ?? []),
    ],
    {},
  );
  // The leak capture: debug lines, audit events and a metrics scrape at close (ADR 0177).
  const captureName = `${options.name}-${options.identity}-${String(process.pid)}`;
  const tee =
    <E extends object>(event: string, forward: (e: E) => void) =>
    (e: E): void => {
      captureText(`audit/${captureName}.jsonl`, JSON.stringify({ event, ...e }));
      forward(e);
    };
  const sink = options.audit;
  const audit: AuditLog = {
    delivered: tee('delivered', (e) => { sink.delivered(e); }),
    denied: tee('denied', (e) => { sink.denied(e); }),
    revoked: tee('revoked', (e) => { sink.revoked(e); }),
    minted: tee('minted', (e) => { sink.minted(e); }),
    mintRefused: tee('mintRefused', (e) => { sink.mintRefused(e); }),
    close: () => sink.close(),
  };
  const built = buildOperator({
    config,
    kubeConfig: options.kubeConfig,
    clients: createKubeClients(options.kubeConfig),
    logger: createLogger({ level: options.captureLevel ?? 'debug', component: 'controller', stream: teeLogToCapture(captureName, options.log.stream, options.log.level) }),
    registry: options.registry,
    contentKey: SecretValue.fromBytes(readFileSync(hmacKey)),
    audit,
  });
  const operator: Operator = {
    ...built,
    close: async () => {
      captureText(`metrics/${captureName}.txt`, await options.registry.metrics());
      await built.close();
    },
  };
  return { operator, caPath };
}
