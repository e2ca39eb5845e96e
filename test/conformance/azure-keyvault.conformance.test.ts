import { azureKeyVaultProvider } from '../../src/backends/azure/index.ts';
import { providerAuth, writerClient } from './azure.server.ts';
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
    const serviceVersion = endpoint.kind === 'lowkey' ? { serviceVersion: '7.5' } : {};
    const spec = (vaultUrl: string, auth: unknown = how.auth): unknown => ({
      vaultUrl,
      caBundle,
      ...serviceVersion,
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
      dispose: async () => {
        how.restore();
        await server.stop();
      },
    };
  },
);
