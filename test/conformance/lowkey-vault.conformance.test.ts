import https from 'node:https';
import { rootCertificates } from 'node:tls';
import { SecretClient } from '@azure/keyvault-secrets';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { azureKeyVaultProvider } from '../../src/backends/azure/index.ts';
import type { LowkeyVaultEndpoint } from '../harness/world-state.ts';
import { runTag, startHangingServer, testContext } from './conformance.context.ts';
import { describeBackendConformance } from './conformance.suite.ts';
import { backendServer } from './conformance.world.ts';

/**
 * The conformance suite against Lowkey Vault (Azure Key Vault's REST API), TLS verified against
 * its bundled certificate through the backend's caBundle. The provider authenticates with the
 * managed-identity flow against Lowkey Vault's token endpoint (the App Service variant, which
 * @azure/identity finds through IDENTITY_ENDPOINT / IDENTITY_HEADER). Lowkey Vault accepts any
 * bearer token by design, so no bad-credentials case; the Entra error mapping is unit-tested
 * (src/backends/azure/azure.errors.test.ts). Binary values are base64 under content type
 * application/octet-stream (ADR 0065).
 */
const serviceVersion = '7.5';

describeBackendConformance('Lowkey Vault (Azure Key Vault)', { text: true, binary: true, rejectsBadCredentials: false, logsIn: true }, async () => {
  const server = await backendServer('lowkeyVault');
  const endpoint = server.endpoint;
  if (endpoint.tokenEndpoint === undefined) throw new Error('the world’s Lowkey Vault has no managed-identity token endpoint');
  // Test-process configuration of the managed-identity source, as App Service sets it for a pod.
  process.env.IDENTITY_ENDPOINT = endpoint.tokenEndpoint;
  process.env.IDENTITY_HEADER = 'secret-binder-conformance';
  const writer = writerClient(endpoint);
  const tag = runTag();
  const caBundle = Buffer.from(endpoint.caPem).toString('base64');
  // The newest API version the Lowkey Vault 3.x line serves (the SDK's default is newer).
  const spec = (vaultUrl: string): unknown => ({ vaultUrl, serviceVersion, caBundle, auth: { managedIdentity: {} } });

  return {
    createBackend() {
      const context = testContext({});
      return { backend: azureKeyVaultProvider.create(azureKeyVaultProvider.parseConfig(spec(endpoint.vaultUrl)), context), logins: context.logins };
    },
    // Key Vault names: letters, digits, dashes.
    newKey: (label) => `conformance-${tag}-${label}`.replace(/[^0-9A-Za-z-]/g, '-'),
    writeJson: async (key, document) => {
      await writer.setSecret(key, JSON.stringify(document));
    },
    writeText: async (key, text) => {
      await writer.setSecret(key, text);
    },
    writeBinary: async (key, bytes) => {
      await writer.setSecret(key, Buffer.from(bytes).toString('base64'), { contentType: 'application/octet-stream' });
    },
    async hangingBackend() {
      const hanging = await startHangingServer();
      return {
        backend: azureKeyVaultProvider.create(azureKeyVaultProvider.parseConfig(spec(`https://127.0.0.1:${hanging.port}`)), testContext({})),
        dispose: () => hanging.close(),
      };
    },
    dispose: () => server.stop(),
  };
});

/** A SecretClient for the test's writes: any bearer token (Lowkey Vault ignores it), TLS verified. */
function writerClient(endpoint: LowkeyVaultEndpoint): SecretClient {
  const anyToken: TokenCredential = {
    getToken: (): Promise<AccessToken> => Promise.resolve({ token: 'conformance-writer', expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
  const agent = new https.Agent({ ca: [...rootCertificates, endpoint.caPem] });
  return new SecretClient(endpoint.vaultUrl, anyToken, {
    serviceVersion,
    disableChallengeResourceVerification: true,
    additionalPolicies: [
      {
        position: 'perCall',
        policy: {
          name: 'conformanceCa',
          sendRequest: (request, next) => {
            request.agent = agent;
            return next(request);
          },
        },
      },
    ],
  });
}
