/**
 * The controller's composition root: the only reader of process.env and the command line. It
 * parses the configuration once, builds the dependencies and runs the manager until SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { CoreApi } from './kube/kube-clients.ts';
import { ConfigError, parseControllerConfig, type ControllerConfig } from './config/controller.config.ts';
import { buildOperator } from './controllers/operator.ts';
import { createKubeClients } from './kube/kube-clients.ts';
import { loadKubeConnection } from './kube/kube-connection.ts';
import { describeKubeError } from './kube/kube-errors.ts';
import { minContentHmacKeyBytes } from './observability/content-hmac.ts';
import { ContentHmacKeyError, ensureContentHmacKey } from './observability/content-hmac-key.ts';
import { createAuditLog } from './observability/audit.ts';
import { readBuildInfo, registerBuildInfo, versionLine, wantsVersion } from './observability/build-info.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { sanitizeError } from './observability/sanitize.ts';
import { SecretValue } from './observability/secret-value.ts';
import { realClock, sleep } from './runtime/clock.ts';
import { shutdownSignal } from './runtime/manager.ts';
import { heapTrimmer } from './runtime/heap-trim.ts';

async function main(): Promise<number> {
  const buildInfo = readBuildInfo();
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('secret-binder controller', buildInfo));
    return 0;
  }
  let config;
  try {
    config = parseControllerConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`secret-binder: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, component: 'controller' });
  const kubeConfig = await loadKubeConnection(config.kube, process.env);
  const clients = createKubeClients(kubeConfig);
  const shutdown = shutdownSignal();
  const contentKey = await loadContentKey(config.hmacKey, clients.core, config.operatorNamespace, logger, shutdown.signal);
  if (typeof contentKey === 'string') {
    shutdown.dispose();
    return contentKey === 'invalid' ? 2 : 0;
  }

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerBuildInfo(registry, buildInfo);
  const audit = createAuditLog({
    destination: config.auditLog === 'stdout' ? { kind: 'stream', stream: process.stdout } : { kind: 'file', path: config.auditLog },
  });
  const operator = buildOperator({ config, kubeConfig, clients, logger, registry, contentKey, audit });
  // Memory back to the system after bursts (ADR 0209): this process's own, not the operator's (tests build that in-process).
  operator.manager.add(heapTrimmer({ clock: realClock, logger: logger.child({ component: 'heap-trim' }) }));
  logger.info('starting', {
    version: buildInfo.version,
    identity: config.identity,
    namespace: config.operatorNamespace,
    leaderElection: config.leaderElection.enabled,
    watchNamespaces: config.watchNamespaces,
    http: `${config.http.host}:${config.http.port}`,
    broker: config.broker.enabled ? `${config.broker.host}:${config.broker.port}` : 'off',
    webhook: config.webhook.enabled ? `${config.webhook.host}:${config.webhook.port}` : 'off',
  });
  try {
    await operator.manager.run(shutdown.signal);
    logger.info('stopped');
    return 0;
  } catch (error) {
    // A lost lease or a failed runnable: exit so the process restarts with a clean state.
    logger.error('manager stopped on error', { error: sanitizeError(error) });
    return 1;
  } finally {
    shutdown.dispose();
    await operator.close();
    await audit.close();
  }
}

/**
 * The content-HMAC key: from the mounted file, or from the Secret the controller keeps (created if
 * absent, ADR 0155). An API outage at start is waited out (every 3 s) rather than crash-looping; a
 * key that is present but too short is a configuration error.
 */
async function loadContentKey(
  source: ControllerConfig['hmacKey'],
  core: CoreApi,
  namespace: string,
  logger: Logger,
  signal: AbortSignal,
): Promise<SecretValue | 'invalid' | 'stopped'> {
  if (source.kind === 'file') {
    const keyBytes = await readFile(source.path);
    try {
      if (keyBytes.byteLength < minContentHmacKeyBytes) {
        logger.error('content HMAC key too short', { file: source.path, minBytes: minContentHmacKeyBytes });
        return 'invalid';
      }
      return SecretValue.fromBytes(keyBytes);
    } finally {
      keyBytes.fill(0);
    }
  }
  for (;;) {
    try {
      return await ensureContentHmacKey(core, namespace, source.name);
    } catch (error) {
      if (error instanceof ContentHmacKeyError) {
        logger.error('content HMAC key unusable', { error: error.message });
        return 'invalid';
      }
      logger.warn('content HMAC key Secret not available yet; retrying', { secret: source.name, error: describeKubeError(error).message });
    }
    if (!(await sleep(realClock, 3000, signal))) return 'stopped';
  }
}

process.exitCode = await main();
