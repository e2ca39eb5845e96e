/**
 * The node plugin's composition root (DaemonSet `secretbinder.dev` CSI driver): the only reader of
 * process.env and the command line for the plugin. Serves CSI on a unix socket, registers with the
 * kubelet, follows the broker's change stream, and stops cleanly on SIGTERM (volumes stay mounted:
 * the pods keep their files while the plugin restarts). Loaded by node-plugin.main.ts once V8's
 * flags are set.
 */
import { Registry } from '../observability/prom-client-core.ts';
import { BrokerHttpClient } from './csi/broker-http.client.ts';
import { CsiServer } from './csi/csi.server.ts';
import { NodePlugin } from './csi/node-plugin.ts';
import { NodePluginConfigError, parseNodePluginConfig } from './csi/node-plugin.config.ts';
import { BrokerReachability, socketAccepts } from './csi/node-plugin.health.ts';
import { SystemMounter } from './csi/tmpfs.mounter.ts';
import { HealthServer } from '../runtime/health-server.ts';
import { readBuildInfo, registerBuildInfo, versionLine, wantsVersion } from '../observability/build-info.ts';
import { createLogger } from '../observability/logger.ts';
import { sanitizeError } from '../observability/sanitize.ts';

async function main(): Promise<number> {
  const buildInfo = readBuildInfo();
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('secret-binder node plugin', buildInfo));
    return 0;
  }
  let config;
  try {
    config = parseNodePluginConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof NodePluginConfigError) {
      process.stderr.write(`secret-binder node plugin: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, component: 'csi' });
  // The CA file is read on use and again whenever the kubelet updates it (a renewed broker CA).
  const broker = new BrokerHttpClient({ url: config.brokerUrl, tokenFile: config.tokenFile, timeoutMs: 10_000, ...(config.brokerCaFile === null ? {} : { caFile: config.brokerCaFile }) });
  const plugin = new NodePlugin({
    broker,
    mounter: new SystemMounter(),
    logger,
    tmpfsSizeBytes: config.tmpfsSizeBytes,
    changesWaitSeconds: config.changesWaitSeconds,
    backoff: { minMs: 500, maxMs: 30_000 },
  });
  // Registration is confirmed by the kubelet's NotifyRegistrationStatus call (readiness).
  let registered = config.registrationSocket === null;
  const server = new CsiServer({
    plugin,
    logger,
    nodeName: config.nodeName,
    version: buildInfo.version,
    csiSocket: config.csiSocket,
    ...(config.registrationSocket === null ? {} : { registration: { socket: config.registrationSocket, kubeletCsiSocket: config.kubeletCsiSocket } }),
    onRegistrationStatus: (ok) => {
      registered = ok;
    },
  });
  try {
    await server.start();
  } catch (error) {
    logger.error('cannot serve the CSI sockets', { error: sanitizeError(error) });
    return 1;
  }
  let health: HealthServer | undefined;
  if (config.healthAddress !== null) {
    const registry = new Registry();
    registerBuildInfo(registry, buildInfo);
    health = new HealthServer({ host: config.healthAddress.host, port: config.healthAddress.port, registry, logger });
    const csiSocket = config.csiSocket;
    health.addLivenessCheck('csi-socket', () => socketAccepts(csiSocket, 2_000));
    health.addReadinessCheck('kubelet-registration', () => (registered ? { ok: true } : { ok: false, message: 'the kubelet has not confirmed the registration' }));
    const brokerReachable = new BrokerReachability({ url: config.brokerUrl, ca: () => broker.caBundle(), timeoutMs: 3_000, cacheMs: 20_000 });
    health.addReadinessCheck('broker', () => brokerReachable.check());
    try {
      await health.listen();
    } catch (error) {
      logger.error('cannot serve the health endpoints', { error: sanitizeError(error) });
      await server.stop();
      return 1;
    }
  }
  plugin.start();
  logger.info('node plugin started', { node: config.nodeName, csiSocket: config.csiSocket, registration: config.registrationSocket ?? 'off' });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info('stopping');
  await plugin.stop();
  await server.stop();
  await health?.close();
  return 0;
}

process.exitCode = await main();
