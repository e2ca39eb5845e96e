import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  type CreateSecretCommandInput,
} from '@aws-sdk/client-secrets-manager';
import { awsSecretsManagerProvider } from '../../src/backends/aws/index.ts';
import type { MotoEndpoint } from '../harness/world-state.ts';
import { stopProcess } from '../harness/process.ts';
import { runTag, startHangingServer, testContext } from './conformance.context.ts';
import { describeBackendConformance } from './conformance.suite.ts';
import { backendServer, startOwn } from './conformance.world.ts';

/**
 * The conformance suite against moto's Secrets Manager, with static keys read from an operator
 * Secret. moto authenticates nobody unless told to: the bad-credentials case runs against a moto
 * of its own with IAM authentication switched on (`/moto-api/reset-auth`), so the shared world's
 * moto keeps accepting every caller.
 */
describeBackendConformance('moto (AWS Secrets Manager)', { text: true, binary: true, rejectsBadCredentials: true, logsIn: true }, async () => {
  const server = await backendServer('moto');
  const endpoint = server.endpoint;
  const admin = adminClient(endpoint);
  const tag = runTag();
  const created = new Set<string>();
  const write = async (key: string, value: Pick<CreateSecretCommandInput, 'SecretString' | 'SecretBinary'>): Promise<void> => {
    if (created.has(key)) {
      await admin.send(new PutSecretValueCommand({ SecretId: key, ...value }));
    } else {
      await admin.send(new CreateSecretCommand({ Name: key, ...value }));
      created.add(key);
    }
  };
  const spec = (url: string): unknown => ({ region: endpoint.region, endpoint: url, auth: { staticKeys: { secretRef: { name: 'aws' } } } });
  const keys = (accessKeyId: string, secretAccessKey: string): Record<string, Record<string, string>> => ({
    aws: { accessKeyId, secretAccessKey },
  });

  return {
    createBackend() {
      const context = testContext({ secrets: keys(endpoint.accessKeyId, endpoint.secretAccessKey) });
      return { backend: awsSecretsManagerProvider.create(awsSecretsManagerProvider.parseConfig(spec(endpoint.endpoint)), context), logins: context.logins };
    },
    newKey: (label) => `conformance/${tag}/${label}`,
    writeJson: (key, document) => write(key, { SecretString: JSON.stringify(document) }),
    writeText: (key, text) => write(key, { SecretString: text }),
    writeBinary: (key, bytes) => write(key, { SecretBinary: bytes }),
    async badCredentials() {
      const strict = await startOwn('moto');
      const reset = await fetch(`${strict.endpoint.endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
      if (!reset.ok) throw new Error(`moto reset-auth answered ${reset.status}`);
      const badId = `AKIA${tag.toUpperCase().padEnd(16, 'Q')}`;
      const badSecret = `conformance-bad-secret-${tag}-0123456789`;
      const context = testContext({ secrets: keys(badId, badSecret) });
      return {
        backend: awsSecretsManagerProvider.create(awsSecretsManagerProvider.parseConfig(spec(strict.endpoint.endpoint)), context),
        credentials: [badId, badSecret],
        dispose: () => stopProcess(strict.record),
      };
    },
    async hangingBackend() {
      const hanging = await startHangingServer();
      const context = testContext({ secrets: keys(endpoint.accessKeyId, endpoint.secretAccessKey) });
      return {
        backend: awsSecretsManagerProvider.create(awsSecretsManagerProvider.parseConfig(spec(`http://127.0.0.1:${hanging.port}`)), context),
        dispose: () => hanging.close(),
      };
    },
    dispose: async () => {
      admin.destroy();
      await server.stop();
    },
  };
});

function adminClient(endpoint: MotoEndpoint): SecretsManagerClient {
  return new SecretsManagerClient({
    region: endpoint.region,
    endpoint: endpoint.endpoint,
    credentials: { accessKeyId: endpoint.accessKeyId, secretAccessKey: endpoint.secretAccessKey },
  });
}
