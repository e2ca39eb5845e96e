import { ClientSecretCredential, type AccessToken, type TokenCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { rootCertificates } from 'node:tls';
import { registerNeedlesIn } from '../harness/leak-capture.ts';
import type { AzureKeyVaultEndpoint, KeyVaultDoubleEndpoint } from '../harness/world-state.ts';
import { testContext, type TestContext } from './conformance.context.ts';

/**
 * The world's Azure Key Vault server as the Azure tests use it: how the provider under test logs
 * in (client secret at the double's Entra-like authority; managed identity at Lowkey Vault's
 * token endpoint) and a SecretClient for the tests' own writes.
 */

/** How a provider under test authenticates to this server. */
export function providerAuth(endpoint: AzureKeyVaultEndpoint): { auth: unknown; context: () => TestContext; restore(): void } {
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
      restore: () => undefined,
    };
  }
  if (endpoint.tokenEndpoint === undefined) throw new Error('the world’s Lowkey Vault has no managed-identity token endpoint');
  // Test-process configuration of the managed-identity source, as App Service sets it.
  process.env.IDENTITY_ENDPOINT = endpoint.tokenEndpoint;
  process.env.IDENTITY_HEADER = 'secret-binder-conformance';
  return {
    auth: { managedIdentity: {} },
    context: () => testContext({}),
    // Jest reuses worker processes across test files: leave the environment as found.
    restore: () => {
      delete process.env.IDENTITY_ENDPOINT;
      delete process.env.IDENTITY_HEADER;
    },
  };
}

/** A SecretClient for a test's own writes, TLS verified against the server's CA. */
export function writerClient(endpoint: AzureKeyVaultEndpoint): SecretClient {
  const tlsOptions = { ca: [...rootCertificates, endpoint.caPem] };
  const credential: TokenCredential =
    endpoint.kind === 'double'
      ? writerCredential(endpoint, tlsOptions)
      : { getToken: (): Promise<AccessToken> => Promise.resolve({ token: 'conformance-writer', expiresOnTimestamp: Date.now() + 3_600_000 }) };
  return new SecretClient(endpoint.vaultUrl, credential, {
    // Lowkey Vault 3.x serves API versions up to 7.5/7.6; the SDK's default is newer.
    ...(endpoint.kind === 'lowkey' ? { serviceVersion: '7.5' as const } : {}),
    disableChallengeResourceVerification: true,
    tlsOptions,
    // Every value written through this client is a needle of the leak scan (ADR 0177).
    additionalPolicies: [
      {
        position: 'perCall',
        policy: {
          name: 'registerLeakNeedles',
          sendRequest: (request, next) => {
            if (request.method === 'PUT' && typeof request.body === 'string') {
              try {
                const body = JSON.parse(request.body) as { value?: unknown };
                registerNeedlesIn(body.value, `keyvault:${new URL(request.url).pathname}`);
              } catch {
                // Not JSON: nothing a secret write sends.
              }
            }
            return next(request);
          },
        },
      },
    ],
  });
}

function writerCredential(endpoint: KeyVaultDoubleEndpoint, tlsOptions: { ca: string[] }): TokenCredential {
  return new ClientSecretCredential(endpoint.tenantId, endpoint.clientId, endpoint.clientSecret, {
    authorityHost: endpoint.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions,
  });
}
