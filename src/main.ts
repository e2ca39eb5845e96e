/**
 * The controller's composition root: the only reader of process.env and the command line. It
 * parses the configuration once, builds the dependencies and runs the manager until SIGTERM.
 */
import { readFile } from 'node:fs/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ConfigError, parseControllerConfig } from './config/controller.config.ts';
import { buildOperator } from './controllers/operator.ts';
import { createKubeClients, loadKubeConfig } from './kube/kube-clients.ts';
import { minContentHmacKeyBytes } from './observability/content-hmac.ts';
import { createAuditLog } from './observability/audit.ts';
import { createLogger } from './observability/logger.ts';
import { sanitizeError } from './observability/sanitize.ts';
import { SecretValue } from './observability/secret-value.ts';
import { shutdownSignal } from './runtime/manager.ts';

async function main(): Promise<number> {
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
  const keyBytes = await readFile(config.hmacKeyFile);
  if (keyBytes.byteLength < minContentHmacKeyBytes) {
    logger.error('content HMAC key too short', { file: config.hmacKeyFile, minBytes: minContentHmacKeyBytes });
    return 2;
  }
  const contentKey = SecretValue.fromBytes(keyBytes);
  keyBytes.fill(0);

  const kubeConfig = loadKubeConfig(config.kube);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const audit = createAuditLog({
    destination: config.auditLog === 'stdout' ? { kind: 'stream', stream: process.stdout } : { kind: 'file', path: config.auditLog },
  });
  const operator = buildOperator({ config, kubeConfig, clients: createKubeClients(kubeConfig), logger, registry, contentKey, audit });
  const shutdown = shutdownSignal();
  logger.info('starting', {
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

process.exitCode = await main();
