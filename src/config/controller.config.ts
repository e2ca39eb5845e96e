import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { eventGridAppId, type EntraTokenCheckOptions } from '../backends/azure/azure.entra-token.options.ts';
import type { AuditListen } from '../backends/vault/vault.audit-source.ts';
import type { BrokerTlsSource } from '../broker/broker-tls.ts';
import type { KubeConfigSource } from '../kube/kube-clients.ts';
import type { AgentSettings } from '../webhook/agent-injection.ts';
import { webhookConfigFrom, type WebhookConfig } from '../webhook/webhook.config.ts';

/** The controller's configuration: parsed once in `main.ts`, then passed down as plain data. */
export interface ControllerConfig {
  readonly kube: KubeConfigSource;
  /** The namespace the operator runs in: its Lease, its credentials Secrets, cluster-scoped Events. */
  readonly operatorNamespace: string;
  /** Unique per process: leader-election holder identity and Event reportingInstance. */
  readonly identity: string;
  /** Namespaces to serve; empty means the whole cluster (namespaced install mode otherwise). */
  readonly watchNamespaces: readonly string[];
  readonly leaderElection:
    | { readonly enabled: false }
    | {
        readonly enabled: true;
        readonly leaseName: string;
        readonly leaseDurationSeconds: number;
        readonly renewDeadlineSeconds: number;
        readonly retryPeriodSeconds: number;
      };
  readonly http: { readonly host: string; readonly port: number };
  readonly logLevel: 'error' | 'warn' | 'info' | 'debug';
  /**
   * The key of content HMACs; stable across restarts so status never churns: a file (mounted from
   * a Secret made outside), or a Secret of the operator namespace the controller creates if absent
   * and never rotates (ADR 0155).
   */
  readonly hmacKey: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'secret'; readonly name: string };
  /** Validity of the certificates the controller manages in Secrets (renewed at 2/3 of it, ADR 0155). */
  readonly managedTlsValiditySeconds: number;
  /** `stdout` or a file path: where the audit channel writes JSON lines. */
  readonly auditLog: string;
  readonly workers: { readonly bindings: number; readonly backends: number };
  /** Rolling restarts of RollingRestart bindings' workloads (ADR 0101). */
  readonly rotation: {
    /** Template rollouts in progress at once, cluster-wide. */
    readonly maxConcurrentRollouts: number;
    /** A rollout that never completes stops counting against the cap after this long. */
    readonly rolloutSlotTimeoutSeconds: number;
  };
  /** The broker's HTTPS server (every replica), off unless `--broker-address` is given (ADR 0080). */
  readonly broker: BrokerConfig;
  /** The admission webhook's HTTPS server (every replica), off unless `--webhook-address` is given. */
  readonly webhook: WebhookConfig;
  /** Agent mode (ADR 0250): what the webhook injects into pods of agent-mode bindings. */
  readonly agent: AgentConfig;
  /** Service-account tokens minted for backend logins (ADR 0150). */
  readonly tokenMinting: TokenMintingConfig;
  /** Event-driven change detection beside polling (ADR 0220). */
  readonly changeNotices: ChangeNoticesConfig;
}

export interface ChangeNoticesConfig {
  /** Notices of one document within this many ms of a check cost at most one more check. */
  readonly windowMs: number;
  /** The OpenBao / Vault audit listener (ADR 0221), off unless a socket or address is given. */
  readonly vaultAudit:
    | undefined
    | {
        readonly listen: AuditListen;
        /** File holding the audit device's `prefix` every line must start with (required on TCP). */
        readonly prefixFile: string | undefined;
        readonly maxLinesPerSecond: number;
      };
  /** Vault Enterprise's events API (ADR 0226), subscribed to with a Vault backend's address and identity. */
  readonly vaultEvents:
    | undefined
    | {
        /** The Vault backend: `ClusterSecretBackend/<name>` or `SecretBackend/<namespace>/<name>`. */
        readonly backend: string;
        /** The event-type pattern (Vault's glob syntax). */
        readonly eventTypes: string;
        readonly maxEventsPerSecond: number;
      };
  /** The SQS queue of Secrets Manager events (ADR 0222), read with a backend's credentials. */
  readonly awsSqs:
    | undefined
    | {
        readonly queueUrl: string;
        /** The backend whose region, endpoint and credentials are used: `ClusterSecretBackend/<name>` or `SecretBackend/<namespace>/<name>`. */
        readonly backend: string;
        readonly waitSeconds: number;
        readonly maxMessagesPerSecond: number;
      };
  /** The Event Grid webhook receiver for Key Vault events (ADR 0223). */
  readonly azureEventGrid:
    | undefined
    | {
        readonly host: string;
        readonly port: number;
        /** The shared secret of `?code=`; absent when only the Entra token is checked. */
        readonly secretFile?: string;
        /** The Entra token check (ADR 0225); absent when only the shared secret is checked. */
        readonly entra?: EntraTokenCheckOptions;
        readonly maxEventsPerSecond: number;
      };
}

export interface TokenMintingConfig {
  /** Development only: a token may go over plain http to a loopback address. */
  readonly allowLoopbackHttp: boolean;
  /** Accounts never minted for, besides the controller's own (learnt by SelfSubjectReview): the node plugin's. */
  readonly reservedAccounts: readonly { readonly namespace: string; readonly name: string }[];
}

/** The development flag that lets a token go over plain http to a loopback address (ADR 0150). */
export const loopbackHttpTokensFlag = '--allow-http-loopback-token-endpoints=true';

export type BrokerConfig =
  | { readonly enabled: false }
  | {
      readonly enabled: true;
      readonly host: string;
      readonly port: number;
      readonly tls: BrokerTlsSource;
      /** The node plugin's service account, the only caller the broker answers. */
      readonly nodePlugin: { readonly namespace: string; readonly name: string };
    };

export interface AgentConfig {
  /** The mode of bindings that name none. */
  readonly defaultMode: 'csi' | 'agent';
  /** Off unless `--agent-image` is given: agent-mode pods are then refused with the reason. */
  readonly injection:
    | undefined
    | (Omit<AgentSettings, 'brokerCaPem'> & {
        /** The broker's CA bundle as a file (e.g. the broker Secret's ca.crt), read at admission. */
        readonly brokerCaFile: string | undefined;
      });
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const durationSeconds = z.coerce.number().int().positive();
const secretName = z.string().regex(/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, 'must be a Secret name (DNS-1123 subdomain)').max(253);

/** A backend named on the command line: `ClusterSecretBackend/<name>` or `SecretBackend/<namespace>/<name>`. */
const backendReference = z
  .string()
  .regex(/^(ClusterSecretBackend\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?|SecretBackend\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/, 'must be ClusterSecretBackend/<name> or SecretBackend/<namespace>/<name>');

const schema = z
  .object({
    kubeconfig: z.string().min(1).optional(),
    context: z.string().min(1).optional(),
    namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label'),
    identity: z.string().min(1),
    'watch-namespaces': z.string().default(''),
    'leader-elect': z.enum(['true', 'false']).default('true'),
    'lease-name': z.string().min(1).default('secret-binder-controller'),
    'lease-duration': durationSeconds.default(15),
    'renew-deadline': durationSeconds.default(10),
    'retry-period': durationSeconds.default(2),
    'http-address': z
      .string()
      .regex(/^[^:]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:8080')
      .default('0.0.0.0:8080'),
    'log-level': z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    'hmac-key-file': z.string().min(1).optional(),
    'hmac-key-secret': secretName.optional(),
    'managed-tls-validity': z.coerce.number().int().min(30).max(10 * 365 * 86_400).default(90 * 86_400),
    'audit-log': z.string().min(1).default('stdout'),
    'binding-workers': z.coerce.number().int().min(1).max(64).default(16),
    'backend-workers': z.coerce.number().int().min(1).max(16).default(2),
    'max-concurrent-rollouts': z.coerce.number().int().min(1).max(1000).default(5),
    'rollout-slot-timeout': durationSeconds.default(600),
    'broker-address': z
      .string()
      .regex(/^[^:]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:8443')
      .optional(),
    'broker-cert-file': z.string().min(1).optional(),
    'broker-key-file': z.string().min(1).optional(),
    'broker-ca-out': z.string().min(1).optional(),
    'broker-dns-names': z.string().optional(),
    'broker-tls-secret': secretName.optional(),
    'node-plugin-service-account': z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, 'must be namespace:name')
      .optional(),
    'webhook-address': z.string().min(1).optional(),
    'webhook-cert-file': z.string().min(1).optional(),
    'webhook-key-file': z.string().min(1).optional(),
    'webhook-ca-file': z.string().min(1).optional(),
    'webhook-dns-names': z.string().optional(),
    'webhook-configuration-name': z.string().min(1).optional(),
    'webhook-tls-secret': secretName.optional(),
    'agent-image': z.string().min(1).optional(),
    'agent-image-pull-policy': z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
    'agent-broker-url': z.url({ protocol: /^https$/ }).optional(),
    'agent-broker-ca-file': z.string().min(1).optional(),
    'agent-default-delivery-mode': z.enum(['csi', 'agent']).default('csi'),
    'agent-metrics-port': z.coerce.number().int().min(1024).max(65_535).default(9097),
    'agent-cpu-request': z.string().regex(/^[0-9]+(\\.[0-9]+)?(m|Ki|Mi|Gi)?$/, 'must be a quantity such as 10m, 48Mi').default('10m'),
    'agent-memory-request': z.string().regex(/^[0-9]+(\\.[0-9]+)?(m|Ki|Mi|Gi)?$/, 'must be a quantity such as 10m, 48Mi').default('48Mi'),
    'agent-memory-limit': z.string().regex(/^[0-9]+(\\.[0-9]+)?(m|Ki|Mi|Gi)?$/, 'must be a quantity such as 10m, 48Mi').default('64Mi'),
    'agent-start-timeout': durationSeconds.default(60),
    'allow-http-loopback-token-endpoints': z.enum(['true', 'false']).default('false'),
    'change-notice-window-ms': z.coerce.number().int().min(0).max(60_000).default(1000),
    'vault-audit-socket': z.string().regex(/^\/./, 'must be an absolute path').optional(),
    'vault-audit-address': z
      .string()
      .regex(/^[^:]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:8200')
      .optional(),
    'vault-audit-prefix-file': z.string().min(1).optional(),
    'vault-audit-max-lines-per-second': z.coerce.number().int().min(1).max(100_000).default(2000),
    'vault-events-backend': backendReference.optional(),
    'vault-events-types': z.string().regex(/^[-a-z0-9*/]{1,128}$/, 'must be an event-type pattern such as kv* or kv-v2/data-*').default('kv*'),
    'vault-events-max-per-second': z.coerce.number().int().min(1).max(10_000).default(100),
    'aws-sqs-queue-url': z.url({ protocol: /^https?$/ }).optional(),
    'aws-sqs-backend': backendReference.optional(),
    'aws-sqs-wait-seconds': z.coerce.number().int().min(1).max(20).default(20),
    'aws-sqs-max-messages-per-second': z.coerce.number().int().min(1).max(10_000).default(100),
    'azure-event-grid-address': z
      .string()
      .regex(/^[^:]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:8090')
      .optional(),
    'azure-event-grid-secret-file': z.string().min(1).optional(),
    'azure-event-grid-max-events-per-second': z.coerce.number().int().min(1).max(10_000).default(100),
    'azure-event-grid-entra-audience': z.string().min(1).optional(),
    'azure-event-grid-entra-issuer': z.url({ protocol: /^https$/ }).optional(),
    'azure-event-grid-entra-jwks-url': z
      .url()
      .refine((u) => u.startsWith('https://') || /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\//.test(u), 'must be https:// (http only to 127.0.0.1 or localhost, for tests)')
      .optional(),
    'azure-event-grid-entra-sender-app-id': z.string().min(1).default(eventGridAppId),
  })
  .refine((c) => c['azure-event-grid-address'] === undefined || c['azure-event-grid-secret-file'] !== undefined || c['azure-event-grid-entra-audience'] !== undefined, {
    message:
      'the Event Grid receiver needs --azure-event-grid-secret-file (the shared secret in the subscription URL, ?code=) or --azure-event-grid-entra-audience (an Entra-protected webhook): that is how it knows its sender',
    path: ['azure-event-grid-secret-file'],
  })
  .refine(
    (c) => [c['azure-event-grid-entra-audience'], c['azure-event-grid-entra-issuer'], c['azure-event-grid-entra-jwks-url']].every((v) => v === undefined) ||
      [c['azure-event-grid-entra-audience'], c['azure-event-grid-entra-issuer'], c['azure-event-grid-entra-jwks-url']].every((v) => v !== undefined),
    { message: 'the Entra token check needs all of --azure-event-grid-entra-audience, --azure-event-grid-entra-issuer and --azure-event-grid-entra-jwks-url', path: ['azure-event-grid-entra-audience'] },
  )
  .refine((c) => (c['aws-sqs-queue-url'] === undefined) === (c['aws-sqs-backend'] === undefined), {
    message: 'give both --aws-sqs-queue-url and --aws-sqs-backend (whose credentials read the queue), or neither',
    path: ['aws-sqs-backend'],
  })
  .refine((c) => c['vault-audit-socket'] === undefined || c['vault-audit-address'] === undefined, {
    message: 'give --vault-audit-socket or --vault-audit-address, not both',
    path: ['vault-audit-socket'],
  })
  .refine((c) => c['vault-audit-address'] === undefined || c['vault-audit-prefix-file'] !== undefined, {
    message: 'a TCP audit listener needs --vault-audit-prefix-file: OpenBao sends audit lines over TCP without TLS, the shared prefix is how the listener knows its sender',
    path: ['vault-audit-prefix-file'],
  })
  .refine((c) => c['broker-tls-secret'] === undefined || c['broker-cert-file'] === undefined, {
    message: 'give --broker-tls-secret or --broker-cert-file/--broker-key-file, not both',
    path: ['broker-tls-secret'],
  })
  .refine((c) => (c['broker-cert-file'] === undefined) === (c['broker-key-file'] === undefined), {
    message: 'give both --broker-cert-file and --broker-key-file, or neither (self-managed certificate)',
    path: ['broker-cert-file'],
  })
  .refine((c) => c['renew-deadline'] < c['lease-duration'], {
    message: 'renew-deadline must be shorter than lease-duration',
    path: ['renew-deadline'],
  });

const options = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string' },
  identity: { type: 'string' },
  'watch-namespaces': { type: 'string' },
  'leader-elect': { type: 'string' },
  'lease-name': { type: 'string' },
  'lease-duration': { type: 'string' },
  'renew-deadline': { type: 'string' },
  'retry-period': { type: 'string' },
  'http-address': { type: 'string' },
  'log-level': { type: 'string' },
  'hmac-key-file': { type: 'string' },
  'hmac-key-secret': { type: 'string' },
  'managed-tls-validity': { type: 'string' },
  'audit-log': { type: 'string' },
  'binding-workers': { type: 'string' },
  'backend-workers': { type: 'string' },
  'max-concurrent-rollouts': { type: 'string' },
  'rollout-slot-timeout': { type: 'string' },
  'broker-address': { type: 'string' },
  'broker-cert-file': { type: 'string' },
  'broker-key-file': { type: 'string' },
  'broker-ca-out': { type: 'string' },
  'broker-dns-names': { type: 'string' },
  'broker-tls-secret': { type: 'string' },
  'node-plugin-service-account': { type: 'string' },
  'webhook-address': { type: 'string' },
  'webhook-cert-file': { type: 'string' },
  'webhook-key-file': { type: 'string' },
  'webhook-ca-file': { type: 'string' },
  'webhook-dns-names': { type: 'string' },
  'webhook-configuration-name': { type: 'string' },
  'webhook-tls-secret': { type: 'string' },
  'agent-image': { type: 'string' },
  'agent-image-pull-policy': { type: 'string' },
  'agent-broker-url': { type: 'string' },
  'agent-broker-ca-file': { type: 'string' },
  'agent-default-delivery-mode': { type: 'string' },
  'agent-metrics-port': { type: 'string' },
  'agent-cpu-request': { type: 'string' },
  'agent-memory-request': { type: 'string' },
  'agent-memory-limit': { type: 'string' },
  'agent-start-timeout': { type: 'string' },
  'allow-http-loopback-token-endpoints': { type: 'string' },
  'change-notice-window-ms': { type: 'string' },
  'vault-audit-socket': { type: 'string' },
  'vault-audit-address': { type: 'string' },
  'vault-audit-prefix-file': { type: 'string' },
  'vault-audit-max-lines-per-second': { type: 'string' },
  'aws-sqs-queue-url': { type: 'string' },
  'aws-sqs-backend': { type: 'string' },
  'vault-events-backend': { type: 'string' },
  'vault-events-types': { type: 'string' },
  'vault-events-max-per-second': { type: 'string' },
  'aws-sqs-wait-seconds': { type: 'string' },
  'aws-sqs-max-messages-per-second': { type: 'string' },
  'azure-event-grid-address': { type: 'string' },
  'azure-event-grid-secret-file': { type: 'string' },
  'azure-event-grid-max-events-per-second': { type: 'string' },
  'azure-event-grid-entra-audience': { type: 'string' },
  'azure-event-grid-entra-issuer': { type: 'string' },
  'azure-event-grid-entra-jwks-url': { type: 'string' },
  'azure-event-grid-entra-sender-app-id': { type: 'string' },
  // Handled by main.ts before any other flag is parsed (prints the version and exits).
  version: { type: 'boolean' },
} as const;

/**
 * Parses command-line flags, falling back to the environment the Deployment sets (`POD_NAMESPACE`,
 * `POD_NAME`, `KUBECONFIG`, `SECRET_BINDER_HMAC_KEY_FILE`). Throws {@link ConfigError} naming every
 * bad flag at once.
 */
export function parseControllerConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ControllerConfig {
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : String(error));
  }
  const input = {
    ...flags,
    kubeconfig: flags.kubeconfig ?? nonEmpty(env.KUBECONFIG),
    namespace: flags.namespace ?? nonEmpty(env.POD_NAMESPACE) ?? 'secret-binder-system',
    identity: flags.identity ?? nonEmpty(env.POD_NAME) ?? `${hostname()}-${randomBytes(4).toString('hex')}`,
    'hmac-key-file': flags['hmac-key-file'] ?? (flags['hmac-key-secret'] === undefined ? nonEmpty(env.SECRET_BINDER_HMAC_KEY_FILE) : undefined),
  };
  const parsed = schema.safeParse(input);
  // Checked beside the schema, so it is reported together with every other bad flag.
  const keySources = [input['hmac-key-file'], flags['hmac-key-secret']].filter((v) => v !== undefined).length;
  const keyProblem = keySources === 1 ? [] : ['--hmac-key-file: is required: give --hmac-key-file (a file holding the content-HMAC key) or --hmac-key-secret (a Secret the controller keeps), not both'];
  if (!parsed.success || keyProblem.length > 0) {
    const problems = [...keyProblem, ...(parsed.error?.issues ?? []).map((issue) => `--${issue.path.join('.')}: ${issue.message}`)];
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  const webhook = webhookConfigFrom(
    {
      address: c['webhook-address'],
      certFile: c['webhook-cert-file'],
      keyFile: c['webhook-key-file'],
      caFile: c['webhook-ca-file'],
      dnsNames: c['webhook-dns-names'],
      configurationName: c['webhook-configuration-name'],
      tlsSecret: c['webhook-tls-secret'],
      managedTlsValiditySeconds: c['managed-tls-validity'],
    },
    c.namespace,
  );
  if (typeof webhook === 'string') throw new ConfigError(`invalid configuration: ${webhook}`);
  const [host, port] = splitHostPort(c['http-address']);
  return {
    kube:
      c.kubeconfig === undefined
        ? { kind: 'in-cluster' }
        : { kind: 'file', path: c.kubeconfig, ...(c.context === undefined ? {} : { context: c.context }) },
    operatorNamespace: c.namespace,
    identity: c.identity,
    watchNamespaces: c['watch-namespaces']
      .split(',')
      .map((n) => n.trim())
      .filter((n) => n !== ''),
    leaderElection:
      c['leader-elect'] === 'false'
        ? { enabled: false }
        : {
            enabled: true,
            leaseName: c['lease-name'],
            leaseDurationSeconds: c['lease-duration'],
            renewDeadlineSeconds: c['renew-deadline'],
            retryPeriodSeconds: c['retry-period'],
          },
    http: { host, port: Number(port) },
    logLevel: c['log-level'],
    hmacKey: c['hmac-key-secret'] !== undefined ? { kind: 'secret', name: c['hmac-key-secret'] } : { kind: 'file', path: c['hmac-key-file'] ?? '' },
    managedTlsValiditySeconds: c['managed-tls-validity'],
    auditLog: c['audit-log'],
    workers: { bindings: c['binding-workers'], backends: c['backend-workers'] },
    rotation: { maxConcurrentRollouts: c['max-concurrent-rollouts'], rolloutSlotTimeoutSeconds: c['rollout-slot-timeout'] },
    broker: brokerConfig(c),
    webhook,
    agent: agentConfig(c),
    tokenMinting: {
      allowLoopbackHttp: c['allow-http-loopback-token-endpoints'] === 'true',
      reservedAccounts: [nodePluginAccount(c)],
    },
    changeNotices: {
      windowMs: c['change-notice-window-ms'],
      vaultAudit: vaultAuditConfig(c),
      vaultEvents:
        c['vault-events-backend'] === undefined
          ? undefined
          : { backend: c['vault-events-backend'], eventTypes: c['vault-events-types'], maxEventsPerSecond: c['vault-events-max-per-second'] },
      awsSqs:
        c['aws-sqs-queue-url'] === undefined || c['aws-sqs-backend'] === undefined
          ? undefined
          : {
              queueUrl: c['aws-sqs-queue-url'],
              backend: c['aws-sqs-backend'],
              waitSeconds: c['aws-sqs-wait-seconds'],
              maxMessagesPerSecond: c['aws-sqs-max-messages-per-second'],
            },
      azureEventGrid: azureEventGridConfig(c),
    },
  };
}

function azureEventGridConfig(c: z.infer<typeof schema>): ChangeNoticesConfig['azureEventGrid'] {
  const address = c['azure-event-grid-address'];
  const secretFile = c['azure-event-grid-secret-file'];
  const audience = c['azure-event-grid-entra-audience'];
  const issuer = c['azure-event-grid-entra-issuer'];
  const jwksUrl = c['azure-event-grid-entra-jwks-url'];
  if (address === undefined) return undefined;
  const [host, port] = splitHostPort(address);
  return {
    host,
    port: Number(port),
    ...(secretFile === undefined ? {} : { secretFile }),
    ...(audience === undefined || issuer === undefined || jwksUrl === undefined ? {} : { entra: { audience, issuer, jwksUrl, senderAppId: c['azure-event-grid-entra-sender-app-id'] } }),
    maxEventsPerSecond: c['azure-event-grid-max-events-per-second'],
  };
}

function vaultAuditConfig(c: z.infer<typeof schema>): ChangeNoticesConfig['vaultAudit'] {
  const socket = c['vault-audit-socket'];
  const address = c['vault-audit-address'];
  let listen: AuditListen;
  if (socket !== undefined) listen = { kind: 'unix', path: socket };
  else if (address !== undefined) {
    const [host, port] = splitHostPort(address);
    listen = { kind: 'tcp', host, port: Number(port) };
  } else return undefined;
  return { listen, prefixFile: c['vault-audit-prefix-file'], maxLinesPerSecond: c['vault-audit-max-lines-per-second'] };
}

/** `--node-plugin-service-account`, default `<namespace>:secret-binder-node`. */
function nodePluginAccount(c: z.infer<typeof schema>): { namespace: string; name: string } {
  const [namespace, name] = (c['node-plugin-service-account'] ?? `${c.namespace}:secret-binder-node`).split(':');
  return { namespace: namespace ?? '', name: name ?? '' };
}

function agentConfig(c: z.infer<typeof schema>): AgentConfig {
  const image = c['agent-image'];
  return {
    defaultMode: c['agent-default-delivery-mode'],
    injection:
      image === undefined
        ? undefined
        : {
            image,
            imagePullPolicy: c['agent-image-pull-policy'],
            brokerUrl: c['agent-broker-url'] ?? `https://secret-binder-broker.${c.namespace}.svc:443`,
            brokerCaFile: c['agent-broker-ca-file'],
            metricsPort: c['agent-metrics-port'],
            resources: { cpuRequest: c['agent-cpu-request'], memoryRequest: c['agent-memory-request'], memoryLimit: c['agent-memory-limit'] },
            startTimeoutSeconds: c['agent-start-timeout'],
          },
  };
}

function brokerConfig(c: z.infer<typeof schema>): BrokerConfig {
  const address = c['broker-address'];
  if (address === undefined) return { enabled: false };
  const [host, port] = splitHostPort(address);
  const certFile = c['broker-cert-file'];
  const keyFile = c['broker-key-file'];
  const tlsSecret = c['broker-tls-secret'];
  const dnsNames = (c['broker-dns-names'] ?? `secret-binder-broker.${c.namespace}.svc,localhost`)
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  return {
    enabled: true,
    host,
    port: Number(port),
    tls:
      certFile !== undefined && keyFile !== undefined
        ? { kind: 'files', certFile, keyFile }
        : tlsSecret !== undefined
          ? { kind: 'secret', secretName: tlsSecret, dnsNames, ipAddresses: ['127.0.0.1'], caOut: c['broker-ca-out'], validitySeconds: c['managed-tls-validity'] }
          : { kind: 'self-managed', dnsNames, ipAddresses: ['127.0.0.1'], caOut: c['broker-ca-out'] },
    nodePlugin: nodePluginAccount(c),
  };
}

function splitHostPort(address: string): [string, string] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), address.slice(at + 1)];
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
