import type { AnyBackend } from '../../api/v1alpha1/index.ts';
import type { BackendContext } from '../../backends/backend.port.ts';
import type { ChangeNoticeSink, NoticeSourceKind } from '../../backends/change-notice.port.ts';
import type { AwsConfig } from '../../backends/aws/aws.config.ts';
import type { VaultConfig } from '../../backends/vault/vault.config.ts';
import { AzureEventGridSource } from '../../backends/azure/azure.event-grid-source.ts';
import { createNoticeMetrics } from '../../backends/notices/notice.metrics.ts';
import { parseBackendSpec } from '../../backends/registry.ts';
import type { SecretResolver } from '../../backends/resolver/resolver.ts';
import { VaultAuditSource } from '../../backends/vault/vault.audit-source.ts';
import type { Logger } from '../../observability/logger.ts';
import { sleep, type Clock } from '../../runtime/clock.ts';
import type { Runnable } from '../../runtime/runnable.ts';
import type { BackendPool } from '../backend/backend-pool.ts';
import { backendQueueKey } from '../backend/backend.reconciler.ts';
import { defaultBackend } from '../../delivery/files/file-set.ts';
import { namedBackends } from '../binding/binding-backends.ts';
import { NoticeDispatcher } from '../binding/notice-dispatcher.ts';
import type { OperatorContext } from './context.ts';

/** A running notice source, as tests and the composition see it. */
export interface NoticeSourceHandle {
  readonly kind: NoticeSourceKind;
  /** Where it listens, once started (listeners only). */
  address(): string | undefined;
  /** Stops this source alone (polling goes on); resolves when it has closed. */
  stop(): Promise<void>;
}

export interface ChangeNoticesComposition {
  readonly runnables: readonly Runnable[];
  readonly sources: readonly NoticeSourceHandle[];
}

export interface ChangeNoticesDeps {
  readonly pool: BackendPool;
  readonly resolver: SecretResolver;
  readonly enqueueBinding: (key: string) => void;
  readonly contextFor: (backend: AnyBackend) => BackendContext;
}

/**
 * The change-notice sources the configuration enables and the dispatcher they feed (ADR 0220).
 * Leader only: notices queue binding reconciles, which run on the leader. Without a configured
 * source, nothing is built and polling alone detects changes.
 */
export function composeChangeNotices(ctx: OperatorContext, deps: ChangeNoticesDeps): ChangeNoticesComposition {
  const { config, clock, logger, registry, informers } = ctx;
  const { vaultAudit, vaultEvents, awsSqs, azureEventGrid } = config.changeNotices;
  if (vaultAudit === undefined && vaultEvents === undefined && awsSqs === undefined && azureEventGrid === undefined) return { runnables: [], sources: [] };
  const { bindings, clusterBackends, namespacedBackends } = informers;
  const backendByKey = (key: string): AnyBackend | undefined => {
    const [kind, a = '', b] = key.split('/');
    return kind === 'ClusterSecretBackend' ? clusterBackends.get(a) : namespacedBackends.get(`${a}/${b ?? ''}`);
  };
  const dispatcher = new NoticeDispatcher({
    bindings,
    backendOf: (binding, name) => {
      const ref = namedBackends(binding).get(name ?? defaultBackend);
      return ref === undefined ? undefined : backendByKey(ref.queueKey);
    },
    backendIdOf: (backend) => deps.pool.get(backendQueueKey(backend))?.backendId,
    invalidate: (backendId, key) => { deps.resolver.invalidate(backendId, key, 'event'); },
    enqueue: deps.enqueueBinding,
    clock,
    metrics: createNoticeMetrics(registry),
    windowMs: config.changeNotices.windowMs,
  });
  const reindex = { add: () => { dispatcher.invalidateIndex(); }, update: () => { dispatcher.invalidateIndex(); }, delete: () => { dispatcher.invalidateIndex(); } };
  bindings.addHandler(reindex);
  clusterBackends.addHandler(reindex);
  namespacedBackends.addHandler(reindex);

  const log = logger.child({ component: 'change-notices' });
  const built: { runnable: Runnable; handle: NoticeSourceHandle }[] = [];
  if (vaultAudit !== undefined) {
    const source = new VaultAuditSource({
      listen: vaultAudit.listen,
      prefixFile: vaultAudit.prefixFile,
      maxLineBytes: 1024 * 1024,
      maxLinesPerSecond: vaultAudit.maxLinesPerSecond,
      maxConnections: 8,
      clock,
      logger: log,
    });
    built.push(sourceRunnable(source.kind, (sink, signal) => source.start(sink, signal), dispatcher, () => source.address));
  }
  if (vaultEvents !== undefined) {
    const start = async (sink: ChangeNoticeSink, signal: AbortSignal): Promise<void> => {
      const backend = await awaitBackend('vault', () => backendByKey(vaultEvents.backend), vaultEvents.backend, clock, log, signal);
      if (backend === undefined) return;
      const config = backend.config as VaultConfig;
      // The websocket client and the Vault client load only when this source runs (ADR 0200).
      const [{ VaultClient }, { VaultSession }, { VaultEventsSource }, { SecretValue }] = await Promise.all([
        import('../../backends/vault/vault.client.ts'),
        import('../../backends/vault/vault.auth.ts'),
        import('../../backends/vault/vault.events-source.ts'),
        import('../../observability/secret-value.ts'),
      ]);
      const { address, namespace, caPem, auth } = config;
      const client = new VaultClient({ address, namespace, caPem });
      // Its own session (login, renewal), not the backend's: a backend closed and rebuilt on a
      // spec change must not take the subscription's token with it.
      const session = new VaultSession(auth, client, deps.contextFor(backend.object));
      const source = new VaultEventsSource({
        address,
        namespace,
        caPem,
        token: async (s) => (await session.token(s)).revealText(),
        tokenRefused: (token) => { session.invalidate(SecretValue.fromString(token)); },
        eventTypes: vaultEvents.eventTypes,
        maxEventsPerSecond: vaultEvents.maxEventsPerSecond,
        clock,
        logger: log,
      });
      try {
        await source.start(sink, signal);
      } finally {
        await session.close();
        client.close();
      }
    };
    built.push(sourceRunnable('vaultEvents', start, dispatcher, () => vaultEvents.backend));
  }
  if (awsSqs !== undefined) {
    const start = async (sink: ChangeNoticeSink, signal: AbortSignal): Promise<void> => {
      const found = await awaitBackend('awsSecretsManager', () => backendByKey(awsSqs.backend), awsSqs.backend, clock, log, signal);
      const backend = found === undefined ? undefined : { object: found.object, config: found.config as AwsConfig };
      if (backend === undefined) return;
      // The AWS SDK loads only when this source runs, as a backend's SDK does (ADR 0200).
      const [{ awsCredentials }, { AwsSqsSource }] = await Promise.all([import('../../backends/aws/aws.auth.ts'), import('../../backends/aws/aws.sqs-source.ts')]);
      const credentials = awsCredentials(backend.config, deps.contextFor(backend.object));
      const source = new AwsSqsSource({
        queueUrl: awsSqs.queueUrl,
        region: backend.config.region,
        endpoint: backend.config.endpoint,
        credentials: credentials.provider,
        waitSeconds: awsSqs.waitSeconds,
        maxMessagesPerSecond: awsSqs.maxMessagesPerSecond,
        clock,
        logger: log,
      });
      await source.start(sink, signal);
    };
    built.push(sourceRunnable('awsSqs', start, dispatcher, () => awsSqs.queueUrl));
  }
  if (azureEventGrid !== undefined) {
    const source = new AzureEventGridSource({ ...azureEventGrid, clock, logger: log });
    built.push(sourceRunnable(source.kind, (sink, signal) => source.start(sink, signal), dispatcher, () => source.address));
  }
  return { runnables: built.map((b) => b.runnable), sources: built.map((b) => b.handle) };
}

/**
 * The backend whose identity a source uses (the SQS queue's reader, the events subscriber), once the
 * cache has it and it is of the provider. Until then the source waits (checking every 5 s) and says
 * why; polling goes on meanwhile.
 */
async function awaitBackend(
  provider: 'awsSecretsManager' | 'vault',
  lookup: () => AnyBackend | undefined,
  name: string,
  clock: Clock,
  log: Logger,
  signal: AbortSignal,
): Promise<{ object: AnyBackend; config: unknown } | undefined> {
  let complained = '';
  while (!signal.aborted) {
    const object = lookup();
    let problem: string;
    if (object === undefined) problem = `backend ${name} not found`;
    else {
      try {
        const parsed = parseBackendSpec(object.spec as unknown as Record<string, unknown>);
        if (parsed.provider === provider) return { object, config: parsed.config };
        problem = `backend ${name} is not a ${provider} backend`;
      } catch (error) {
        problem = `backend ${name}: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    if (problem !== complained) log.warn('change notices wait for their backend', { problem });
    complained = problem;
    await sleep(clock, 5000, signal);
  }
  return undefined;
}

function sourceRunnable(
  kind: NoticeSourceKind,
  start: (sink: ChangeNoticeSink, signal: AbortSignal) => Promise<void>,
  dispatcher: NoticeDispatcher,
  address: () => string | undefined,
): { runnable: Runnable; handle: NoticeSourceHandle } {
  const own = new AbortController();
  let running: Promise<void> = Promise.resolve();
  const runnable: Runnable = {
    name: `change-notices-${kind}`,
    needLeaderElection: true,
    start: async (signal) => {
      const started = start(dispatcher, AbortSignal.any([signal, own.signal]));
      running = started.catch(() => undefined);
      await started;
      // Stopped alone (a test, an operator's choice): polling goes on until the manager stops.
      if (!signal.aborted) {
        await new Promise<void>((resolve) => {
          signal.addEventListener('abort', () => { resolve(); }, { once: true });
        });
      }
      dispatcher.close();
    },
  };
  const handle: NoticeSourceHandle = {
    kind,
    address,
    stop: async () => {
      own.abort();
      await running;
    },
  };
  return { runnable, handle };
}
