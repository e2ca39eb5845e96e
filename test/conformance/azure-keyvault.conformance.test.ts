import { ClientSecretCredential, type AccessToken, type TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { rootCertificates } from 'node:tls';
import { azureKeyVaultProvider } from '../../src/backends/azure/index.ts';
import type { AzureKeyVaultEndpoint, KeyVaultDoubleEndpoint } from '../harness/world-state.ts';
import { runTag, startHangingServer, testContext, type TestContext } from './conformance.context.ts';
import { describeBackendConformance } from './conformance.suite.ts';
import { azureKeyVaultKind, backendServer } from './conformance.world.ts';

/**
 * The conformance suite against the world's Azure Key Vault server, TLS verified through the
 * backend's caBundle:
 * - the harness's Key Vault protocol double (ADR 0070), where the provider logs in to its
 *   Entra-like authority with a client secret — and a wrong secret is refused;
 * - or Lowkey Vault where installed, through the managed-identity flow against its token endpoint
 *   (App Service variant, found through IDENTITY_ENDPOINT / IDENTITY_HEADER). Lowkey Vault accepts
 *   any bearer token by design, so it has no bad-credentials case.
 * Binary values are base64 under content type application/octet-stream (ADR 0065).
 */

const kind = await azureKeyVaultKind();

describeBackendConformance(
  `Azure Key Vault (${kind === 'double' ? 'Key Vault double, client secret' : 'Lowkey Vault, managed identity'})`,
  { text: true, binary: true, rejectsBadCredentials: kind === 'double', logsIn: true },
  async () => {
    const server = await backendServer('azureKeyVault');
    const endpoint = server.endpoint;
    const tag = runTag();
    const caBundle = Buffer.from(endpoint.caPem).toString('base64');
    const writer = writerClient(endpoint);
    const how = providerAuth(endpoint);
    const spec = (vaultUrl: string, auth: unknown = how.auth): unknown => ({
      vaultUrl,
      caBundle,
      // Lowkey Vault 3.x serves API versions up to 7.5/7.6; the SDK's default is newer.
      ...(endpoint.kind === 'lowkey' ? { serviceVersion: '7.5' } : {}),
      auth,
    });
    const create = (vaultUrl: string, context: TestContext, auth?: unknown) =>
      azureKeyVaultProvider.create(azureKeyVaultProvider.parseConfig(spec(vaultUrl, auth)), context);

    return {
      createBackend() {
        const context = how.context();
        return { backend: create(endpoint.vaultUrl, context), logins: context.logins };
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
      ...(endpoint.kind === 'double'
        ? {
            badCredentials: () => {
              const wrong = `conformance-wrong-secret-${tag}-0123456789`;
              const context = testContext({ secrets: { azure: { 'client-secret': wrong } } });
              return Promise.resolve({ backend: create(endpoint.vaultUrl, context), credentials: [wrong], dispose: () => Promise.resolve() });
            },
          }
        : {}),
      async hangingBackend() {
        const hanging = await startHangingServer();
        return { backend: create(`https://127.0.0.1:${hanging.port}`, how.context()), dispose: () => hanging.close() };
      },
      dispose: () => server.stop(),
    };
  },
);

/** How the provider under test authenticates to this server. */
function providerAuth(endpoint: AzureKeyVaultEndpoint): { auth: unknown; context: () => TestContext } {
  if (endpoint.kind === 'double') {
    return {
      auth: {
        clientSecret: {
          tenantId: endpoint.tenantId,
          clientId: endpoint.clientId,
          secretRef: { name: 'azure', key: 'client-secret' },
          authorityHost: endpoint.authorityHost,
        },
      },
      context: () => testContext({ secrets: { azure: { 'client-secret': endpoint.clientSecret } } }),
    };
  }
  if (endpoint.tokenEndpoint === undefined) throw new Error('the world’s Lowkey Vault has no managed-identity token endpoint');
  // Test-process configuration of the managed-identity source, as App Service sets it.
  process.env.IDENTITY_ENDPOINT = endpoint.tokenEndpoint;
  process.env.IDENTITY_HEADER = 'secret-binder-conformance';
  return { auth: { managedIdentity: {} }, context: () => testContext({}) };
}

/** A SecretClient for the test's own writes, TLS verified against the server's CA. */
function writerClient(endpoint: AzureKeyVaultEndpoint): SecretClient {
  const tlsOptions = { ca: [...rootCertificates, endpoint.caPem] };
  const credential: TokenCredential =
    endpoint.kind === 'double'
      ? writerCredential(endpoint, tlsOptions)
      : { getToken: (): Promise<AccessToken> => Promise.resolve({ token: 'conformance-writer', expiresOnTimestamp: Date.now() + 3_600_000 }) };
  return new SecretClient(endpoint.vaultUrl, credential, {
    ...(endpoint.kind === 'lowkey' ? { serviceVersion: '7.5' as const } : {}),
    disableChallengeResourceVerification: true,
    tlsOptions,
  });
}

function writerCredential(endpoint: KeyVaultDoubleEndpoint, tlsOptions: { ca: string[] }): TokenCredential {
  return new ClientSecretCredential(endpoint.tenantId, endpoint.clientId, endpoint.clientSecret, {
    authorityHost: endpoint.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions,
  });
}
