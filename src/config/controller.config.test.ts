import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseControllerConfig } from './controller.config.ts';

describe('controller configuration', () => {
  it('fills defaults from the Deployment environment', () => {
    const config = parseControllerConfig([], { POD_NAMESPACE: 'ops', POD_NAME: 'ctl-0', SECRET_BINDER_HMAC_KEY_FILE: '/keys/hmac' });
    expect(config.operatorNamespace).toBe('ops');
    expect(config.identity).toBe('ctl-0');
    expect(config.kube).toEqual({ kind: 'in-cluster' });
    expect(config.leaderElection).toMatchObject({ enabled: true, leaseDurationSeconds: 15 });
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.watchNamespaces).toEqual([]);
  });

  it('reads flags over the environment', () => {
    const config = parseControllerConfig(
      ['--kubeconfig', '/tmp/kc', '--namespace', 'sb', '--hmac-key-file', '/k', '--leader-elect', 'false', '--http-address', '127.0.0.1:0', '--watch-namespaces', 'a, b'],
      { KUBECONFIG: '/other' },
    );
    expect(config.kube).toEqual({ kind: 'file', path: '/tmp/kc' });
    expect(config.leaderElection).toEqual({ enabled: false });
    expect(config.http).toEqual({ host: '127.0.0.1', port: 0 });
    expect(config.watchNamespaces).toEqual(['a', 'b']);
  });

  it('enables the OpenBao audit listener on a socket, or on TCP only with a shared prefix (ADR 0221)', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    expect(parseControllerConfig([], env).changeNotices).toEqual({ windowMs: 1000, vaultAudit: undefined, awsSqs: undefined, azureEventGrid: undefined });
    expect(parseControllerConfig(['--vault-audit-socket', '/run/sb/audit/audit.sock', '--change-notice-window-ms', '500'], env).changeNotices).toEqual({
      windowMs: 500,
      awsSqs: undefined,
      azureEventGrid: undefined,
      vaultAudit: { listen: { kind: 'unix', path: '/run/sb/audit/audit.sock' }, prefixFile: undefined, maxLinesPerSecond: 2000 },
    });
    expect(parseControllerConfig(['--vault-audit-address', '0.0.0.0:8200', '--vault-audit-prefix-file', '/p'], env).changeNotices.vaultAudit).toEqual({
      listen: { kind: 'tcp', host: '0.0.0.0', port: 8200 },
      prefixFile: '/p',
      maxLinesPerSecond: 2000,
    });
    expect(() => parseControllerConfig(['--vault-audit-address', '0.0.0.0:8200'], env)).toThrow(/--vault-audit-prefix-file: a TCP audit listener needs/);
    expect(() => parseControllerConfig(['--vault-audit-socket', 'relative.sock'], env)).toThrow(/--vault-audit-socket: must be an absolute path/);
    expect(() => parseControllerConfig(['--vault-audit-socket', '/a', '--vault-audit-address', '0.0.0.0:1', '--vault-audit-prefix-file', '/p'], env)).toThrow(/not both/);
  });

  it('reads an SQS queue of Secrets Manager events with a named backend\'s credentials (ADR 0222)', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    const queueUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/secret-changes';
    expect(parseControllerConfig(['--aws-sqs-queue-url', queueUrl, '--aws-sqs-backend', 'ClusterSecretBackend/aws'], env).changeNotices.awsSqs).toEqual({
      queueUrl,
      backend: 'ClusterSecretBackend/aws',
      waitSeconds: 20,
      maxMessagesPerSecond: 100,
    });
    expect(() => parseControllerConfig(['--aws-sqs-queue-url', queueUrl], env)).toThrow(/--aws-sqs-backend: give both/);
    expect(() => parseControllerConfig(['--aws-sqs-queue-url', queueUrl, '--aws-sqs-backend', 'aws'], env)).toThrow(/must be ClusterSecretBackend/);
    expect(() => parseControllerConfig(['--aws-sqs-queue-url', 'ftp://x', '--aws-sqs-backend', 'ClusterSecretBackend/aws'], env)).toThrow(/--aws-sqs-queue-url/);
  });

  it('subscribes to the Vault events API with a named backend (ADR 0226)', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    expect(parseControllerConfig([], env).changeNotices.vaultEvents).toBeUndefined();
    expect(parseControllerConfig(['--vault-events-backend', 'ClusterSecretBackend/vault-ent'], env).changeNotices.vaultEvents).toEqual({
      backend: 'ClusterSecretBackend/vault-ent',
      eventTypes: 'kv*',
      maxEventsPerSecond: 100,
    });
    expect(parseControllerConfig(['--vault-events-backend', 'SecretBackend/team/vault', '--vault-events-types', 'kv-v2/*'], env).changeNotices.vaultEvents?.eventTypes).toBe('kv-v2/*');
    expect(() => parseControllerConfig(['--vault-events-backend', 'vault'], env)).toThrow(/--vault-events-backend: must be ClusterSecretBackend/);
    expect(() => parseControllerConfig(['--vault-events-backend', 'ClusterSecretBackend/v', '--vault-events-types', 'kv?x'], env)).toThrow(/--vault-events-types/);
  });

  it('receives Event Grid webhooks with a shared secret (ADR 0223)', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    expect(parseControllerConfig(['--azure-event-grid-address', '0.0.0.0:8090', '--azure-event-grid-secret-file', '/s'], env).changeNotices.azureEventGrid).toEqual({
      host: '0.0.0.0',
      port: 8090,
      secretFile: '/s',
      maxEventsPerSecond: 100,
    });
    expect(() => parseControllerConfig(['--azure-event-grid-address', '0.0.0.0:8090'], env)).toThrow(/--azure-event-grid-secret-file: the Event Grid receiver needs/);
  });

  it('checks Entra tokens of Event Grid webhooks when given audience, issuer and keys, with or without the shared secret (ADR 0225)', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    const entra = [
      '--azure-event-grid-entra-audience', 'api://sb',
      '--azure-event-grid-entra-issuer', 'https://sts.windows.net/t/',
      '--azure-event-grid-entra-jwks-url', 'https://login.microsoftonline.com/t/discovery/v2.0/keys',
    ];
    expect(parseControllerConfig(['--azure-event-grid-address', '0.0.0.0:8090', ...entra], env).changeNotices.azureEventGrid).toEqual({
      host: '0.0.0.0',
      port: 8090,
      entra: { audience: 'api://sb', issuer: 'https://sts.windows.net/t/', jwksUrl: 'https://login.microsoftonline.com/t/discovery/v2.0/keys', senderAppId: '4962773b-9cdb-44cf-a8bf-237846a00ab7' },
      maxEventsPerSecond: 100,
    });
    expect(parseControllerConfig(['--azure-event-grid-address', '0.0.0.0:8090', '--azure-event-grid-secret-file', '/s', ...entra], env).changeNotices.azureEventGrid?.secretFile).toBe('/s');
    expect(() => parseControllerConfig(['--azure-event-grid-address', '0.0.0.0:8090', '--azure-event-grid-entra-audience', 'api://sb'], env)).toThrow(/needs all of --azure-event-grid-entra-audience/);
    const plainKeys = ['--azure-event-grid-address', '0.0.0.0:8090', ...entra.slice(0, 5), 'http://keys.example.com/keys'];
    expect(() => parseControllerConfig(plainKeys, env)).toThrow(/--azure-event-grid-entra-jwks-url: must be https/);
  });

  it('bounds rolling restarts: 5 rollouts in progress and a 600 s slot by default, flags override, nonsense refused', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    expect(parseControllerConfig([], env).rotation).toEqual({ maxConcurrentRollouts: 5, rolloutSlotTimeoutSeconds: 600 });
    expect(parseControllerConfig(['--max-concurrent-rollouts', '2', '--rollout-slot-timeout', '90'], env).rotation).toEqual({
      maxConcurrentRollouts: 2,
      rolloutSlotTimeoutSeconds: 90,
    });
    expect(() => parseControllerConfig(['--max-concurrent-rollouts', '0'], env)).toThrow(/--max-concurrent-rollouts/);
    expect(() => parseControllerConfig(['--rollout-slot-timeout', 'soon'], env)).toThrow(/--rollout-slot-timeout/);
  });

  it('refuses tokens over plain http unless the development flag is given, and reserves the node plugin\'s account (ADR 0150)', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k', POD_NAMESPACE: 'sb' };
    expect(parseControllerConfig([], env).tokenMinting).toEqual({ allowLoopbackHttp: false, reservedAccounts: [{ namespace: 'sb', name: 'secret-binder-node' }] });
    expect(parseControllerConfig(['--allow-http-loopback-token-endpoints=true', '--node-plugin-service-account', 'ops:sb-node'], env).tokenMinting).toEqual({
      allowLoopbackHttp: true,
      reservedAccounts: [{ namespace: 'ops', name: 'sb-node' }],
    });
    expect(() => parseControllerConfig(['--allow-http-loopback-token-endpoints=yes'], env)).toThrow(/--allow-http-loopback-token-endpoints/);
  });

  it('names every bad flag in one error', () => {
    const parse = (): unknown =>
      parseControllerConfig(['--namespace', 'Bad_NS', '--lease-duration', '5', '--renew-deadline', '9', '--log-level', 'loud'], {});
    expect(parse).toThrow(ConfigError);
    expect(parse).toThrow(/--namespace: must be a DNS-1123 label/);
    expect(parse).toThrow(/--log-level/);
    expect(parse).toThrow(/--hmac-key-file: is required/);
  });

  it('takes the content-HMAC key from a file or from a Secret it keeps, never both', () => {
    expect(parseControllerConfig(['--hmac-key-secret', 'sb-content-hmac'], {}).hmacKey).toEqual({ kind: 'secret', name: 'sb-content-hmac' });
    // The environment's file is the Deployment's default; a Secret flag replaces it.
    expect(parseControllerConfig(['--hmac-key-secret', 'sb-content-hmac'], { SECRET_BINDER_HMAC_KEY_FILE: '/k' }).hmacKey).toEqual({ kind: 'secret', name: 'sb-content-hmac' });
    expect(parseControllerConfig([], { SECRET_BINDER_HMAC_KEY_FILE: '/k' }).hmacKey).toEqual({ kind: 'file', path: '/k' });
    expect(() => parseControllerConfig(['--hmac-key-secret', 'a', '--hmac-key-file', '/k'], {})).toThrow(/not both/);
    expect(() => parseControllerConfig(['--hmac-key-secret', 'Not_A_Name'], {})).toThrow(/--hmac-key-secret: must be a Secret name/);
  });

  it('bounds the validity of managed certificates: 90 days by default, at least 30 s', () => {
    const env = { SECRET_BINDER_HMAC_KEY_FILE: '/k' };
    expect(parseControllerConfig([], env).managedTlsValiditySeconds).toBe(7_776_000);
    expect(parseControllerConfig(['--managed-tls-validity', '45'], env).managedTlsValiditySeconds).toBe(45);
    expect(() => parseControllerConfig(['--managed-tls-validity', '5'], env)).toThrow(/--managed-tls-validity/);
  });

  it('refuses unknown flags', () => {
    expect(() => parseControllerConfig(['--nope'], {})).toThrow(ConfigError);
  });
});
