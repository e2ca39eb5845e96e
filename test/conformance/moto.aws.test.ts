import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { BackendContext, FetchOutcome, SecretBackend, SecretRef } from '../../src/backends/backend.port.ts';
import { awsSecretsManagerProvider } from '../../src/backends/aws/index.ts';
import { requestServiceAccountToken } from '../../src/kube/service-account-tokens.ts';
import { stopProcess, type ProcessRecord } from '../harness/process.ts';
import { currentWorld, type MotoEndpoint } from '../harness/world-state.ts';
import { runTag, testContext } from './conformance.context.ts';
import { backendServer, startOwn } from './conformance.world.ts';

/**
 * What the conformance suite does not cover for AWS: staging labels, ARNs, web identity with a
 * TokenRequest token of the world's apiserver, and the fallback to GetSecretValue when the
 * identity may not call BatchGetSecretValue (a moto of its own with IAM authorization on).
 */

const opts = (): { signal: AbortSignal } => ({ signal: AbortSignal.timeout(15_000) });

function text(outcome: FetchOutcome | undefined): string {
  if (outcome?.ok !== true) throw new Error(`expected a value, got ${outcome?.ok === false ? outcome.error.message : 'nothing'}`);
  return outcome.secret.value.revealText();
}

function admin(endpoint: MotoEndpoint): SecretsManagerClient {
  return new SecretsManagerClient({
    region: endpoint.region,
    endpoint: endpoint.endpoint,
    credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
  });
}

/** moto's IAM API (query protocol). moto routes by the credential scope and checks no signature until auth is on. */
async function iam(endpoint: string, params: Record<string, string>): Promise<string> {
  const response = await fetch(`${endpoint}/`, {
    method: 'POST',
    body: new URLSearchParams({ ...params, Version: '2010-05-08' }).toString(),
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'AWS4-HMAC-SHA256 Credential=AKIASECRETBINDERTEST/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
  });
  const body = await response.text();
  if (!response.ok) throw new Error(`moto IAM ${params.Action ?? ''}: ${response.status} ${body.slice(0, 300)}`);
  return body;
}

describe('AWS Secrets Manager provider against moto', () => {
  const tag = runTag();
  let moto: MotoEndpoint;
  let stop: () => Promise<void> = () => Promise.resolve();
  let client: SecretsManagerClient;
  const backends: SecretBackend[] = [];
  const staticBackend = (endpoint: string, accessKeyId: string, secretAccessKey: string): SecretBackend => {
    const backend = awsSecretsManagerProvider.create(
      awsSecretsManagerProvider.parseConfig({ region: moto.region, endpoint, auth: { staticKeys: { secretRef: { name: 'aws' } } } }),
      testContext({ secrets: { aws: { accessKeyId, secretAccessKey } } }),
    );
    backends.push(backend);
    return backend;
  };

  beforeAll(async () => {
    const server = await backendServer('moto');
    moto = server.endpoint;
    stop = () => server.stop();
    client = admin(moto);
  });

  afterAll(async () => {
    for (const backend of backends) await backend.close();
    client.destroy();
    await stop();
  });

  it('reads staging labels and version ids, and reports the version a label points at', async () => {
    const name = `aws-provider/${tag}/staged`;
    const first = await client.send(new CreateSecretCommand({ Name: name, SecretString: 'one' }));
    const second = await client.send(new PutSecretValueCommand({ SecretId: name, SecretString: 'two' }));
    const backend = staticBackend(moto.endpoint, moto.accessKeyId, moto.secretAccessKey);
    const refs: SecretRef[] = [
      { key: name, version: { kind: 'latest' } },
      { key: name, version: { kind: 'stage', stage: 'AWSPREVIOUS' } },
      { key: name, version: { kind: 'id', id: first.VersionId ?? '' } },
    ];
    const outcomes = await backend.fetch(refs, opts());
    expect(outcomes.map(text)).toEqual(['two', 'one', 'one']);
    const versions = await backend.versions(refs, opts());
    expect(versions.map((v) => (v.ok ? v.version : v.error.message))).toEqual([second.VersionId, first.VersionId, first.VersionId]);
  });

  it('answers references by ARN and by partial ARN (without the random suffix)', async () => {
    const name = `aws-provider/${tag}/by-arn`;
    const created = await client.send(new CreateSecretCommand({ Name: name, SecretString: 'arn-value' }));
    const arn = created.ARN ?? '';
    const partial = arn.slice(0, -7);
    const backend = staticBackend(moto.endpoint, moto.accessKeyId, moto.secretAccessKey);
    const outcomes = await backend.fetch(
      [arn, partial, name].map((key): SecretRef => ({ key, version: { kind: 'latest' } })),
      opts(),
    );
    expect(outcomes.map(text)).toEqual(['arn-value', 'arn-value', 'arn-value']);
    expect(outcomes.map((o) => (o.ok ? o.secret.ref.key : ''))).toEqual([arn, partial, name]);
  });

  it('exchanges a TokenRequest token of the named service account for credentials through STS', async () => {
    const world = currentWorld();
    const config = new KubeConfig();
    config.loadFromFile(world.kube.kubeconfigPath);
    const core = config.makeApiClient(CoreV1Api);
    const namespace = `sb-aws-provider-${tag}`;
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    try {
      await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'aws-reader' } } });
      const requests: Parameters<BackendContext['requestServiceAccountToken']>[0][] = [];
      const context = testContext({
        namespace,
        requestServiceAccountToken: (request) => {
          requests.push(request);
          return requestServiceAccountToken(core, request);
        },
      });
      const name = `aws-provider/${tag}/web-identity`;
      await client.send(new CreateSecretCommand({ Name: name, SecretString: 'via-sts' }));
      const backend = awsSecretsManagerProvider.create(
        awsSecretsManagerProvider.parseConfig({
          region: moto.region,
          endpoint: moto.endpoint,
          stsEndpoint: moto.endpoint,
          auth: { webIdentity: { roleArn: 'arn:aws:iam::123456789012:role/secret-reader', serviceAccountRef: { name: 'aws-reader' } } },
        }),
        context,
      );
      backends.push(backend);
      for (let i = 0; i < 3; i++) expect(text((await backend.fetch([{ key: name, version: { kind: 'latest' } }], opts()))[0])).toBe('via-sts');
      expect(requests).toEqual([{ namespace, serviceAccountName: 'aws-reader', audiences: ['sts.amazonaws.com'], expirationSeconds: 600, recipient: moto.endpoint }]);
      expect(context.logins()).toBe(1);
    } finally {
      await core.deleteNamespace({ name: namespace }).catch(() => undefined);
    }
  });

  it('uses the SDK default chain of the controller process (here: its environment)', async () => {
    const name = `aws-provider/${tag}/default-chain`;
    await client.send(new CreateSecretCommand({ Name: name, SecretString: 'from-the-chain' }));
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = moto.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = moto.secretAccessKey;
    try {
      const backend = awsSecretsManagerProvider.create(
        awsSecretsManagerProvider.parseConfig({ region: moto.region, endpoint: moto.endpoint, auth: { defaultChain: {} } }),
        testContext({}),
      );
      backends.push(backend);
      expect(text((await backend.fetch([{ key: name, version: { kind: 'latest' } }], opts()))[0])).toBe('from-the-chain');
    } finally {
      // Jest reuses worker processes across test files: leave the environment as found.
      if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID;
      else process.env.AWS_ACCESS_KEY_ID = saved.id;
      if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
      else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
  });

  describe('with IAM authorization enforced', () => {
    let strict: { record: ProcessRecord; endpoint: MotoEndpoint } | undefined;
    let reader: { id: string; secret: string };
    const names = [0, 1, 2].map((i) => `aws-provider/${tag}/strict-${i}`);

    beforeAll(async () => {
      strict = await startOwn('moto');
      const endpoint = strict.endpoint.endpoint;
      await iam(endpoint, { Action: 'CreateUser', UserName: 'reader' });
      const key = await iam(endpoint, { Action: 'CreateAccessKey', UserName: 'reader' });
      reader = { id: /<AccessKeyId>(.*?)</.exec(key)?.[1] ?? '', secret: /<SecretAccessKey>(.*?)</.exec(key)?.[1] ?? '' };
      // GetSecretValue and DescribeSecret, but not secretsmanager:BatchGetSecretValue.
      const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: '*' }] };
      await iam(endpoint, { Action: 'PutUserPolicy', UserName: 'reader', PolicyName: 'read-one-by-one', PolicyDocument: JSON.stringify(policy) });
      const setup = admin(strict.endpoint);
      for (const [i, name] of names.entries()) await setup.send(new CreateSecretCommand({ Name: name, SecretString: `strict-${i}` }));
      setup.destroy();
      const reset = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
      if (!reset.ok) throw new Error(`moto reset-auth: ${reset.status}`);
    });

    afterAll(async () => {
      if (strict !== undefined) await stopProcess(strict.record);
    });

    it('falls back to GetSecretValue when BatchGetSecretValue is refused, and keeps using it', async () => {
      const backend = staticBackend(strict?.endpoint.endpoint ?? '', reader.id, reader.secret);
      const refs = names.map((key): SecretRef => ({ key, version: { kind: 'latest' } }));
      expect((await backend.fetch(refs, opts())).map(text)).toEqual(['strict-0', 'strict-1', 'strict-2']);
      expect((await backend.fetch(refs, opts())).map(text)).toEqual(['strict-0', 'strict-1', 'strict-2']);
      const versions = await backend.versions(refs, opts());
      expect(versions.every((v) => v.ok)).toBe(true);
    });
  });
});
