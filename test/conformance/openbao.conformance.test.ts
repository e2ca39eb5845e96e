import { vaultProvider } from '../../src/backends/vault/index.ts';
import { openBaoRequest, writeKvSecret, writePolicy } from '../harness/openbao.ts';
import { runTag, startHangingServer, testContext } from './conformance.context.ts';
import { describeBackendConformance } from './conformance.suite.ts';
import { backendServer } from './conformance.world.ts';

/**
 * The conformance suite against OpenBao's KV v2, as a least-privilege token (read on data and
 * metadata of this run's prefix only), read from an operator Secret. Vault KV documents are JSON
 * maps: no text or binary documents (ADR 0065). Auth methods, KV v1 and token lifecycle are in
 * openbao.vault.test.ts.
 */
describeBackendConformance('OpenBao (Vault KV v2)', { text: false, binary: false, rejectsBadCredentials: true, logsIn: true }, async () => {
  const server = await backendServer('openbao');
  const endpoint = server.endpoint;
  const tag = runTag();
  const prefix = `conformance/${tag}`;
  const policy = `conformance-${tag}`;
  await writePolicy(
    endpoint,
    policy,
    `path "${endpoint.kvMount}/data/${prefix}/*" { capabilities = ["read"] }\npath "${endpoint.kvMount}/metadata/${prefix}/*" { capabilities = ["read"] }\n`,
  );
  const created = (await openBaoRequest(endpoint, 'POST', 'auth/token/create', { policies: [policy], ttl: '1h' })) as {
    auth?: { client_token?: string };
  };
  const token = created.auth?.client_token;
  if (token === undefined) throw new Error('openbao: no token created');
  const spec = (address: string): unknown => ({ address, auth: { token: { secretRef: { name: 'vault', key: 'token' } } } });

  return {
    createBackend() {
      const context = testContext({ secrets: { vault: { token } } });
      return { backend: vaultProvider.create(vaultProvider.parseConfig(spec(endpoint.address)), context), logins: context.logins };
    },
    newKey: (label) => `${prefix}/${label}`,
    writeJson: async (key, document) => {
      await writeKvSecret(endpoint, key, document);
    },
    badCredentials() {
      const bad = `hvs.conformanceBad${tag}0123456789abcdef`;
      const context = testContext({ secrets: { vault: { token: bad } } });
      return Promise.resolve({
        backend: vaultProvider.create(vaultProvider.parseConfig(spec(endpoint.address)), context),
        credentials: [bad],
        dispose: () => Promise.resolve(),
      });
    },
    async hangingBackend() {
      const hanging = await startHangingServer();
      const context = testContext({ secrets: { vault: { token } } });
      return {
        backend: vaultProvider.create(vaultProvider.parseConfig(spec(`http://127.0.0.1:${hanging.port}`)), context),
        dispose: () => hanging.close(),
      };
    },
    dispose: () => server.stop(),
  };
});
