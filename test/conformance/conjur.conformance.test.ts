import { conjurProvider } from '../../src/backends/conjur/index.ts';
import { startConjurDouble, type ConjurDouble } from '../harness/conjur-double.ts';
import { runTag, startHangingServer, testContext, type TestContext } from './conformance.context.ts';
import { describeBackendConformance } from './conformance.suite.ts';

/**
 * The conformance suite against the Conjur API double (ADR 0243): no Conjur server can be obtained
 * here, so the provider is verified only against this double, written from Conjur's published
 * REST API documentation. API-key login (the double checks the key), TLS verified through the
 * backend's caBundle. Conjur stores bytes, so text and binary values are both covered.
 */

const account = 'conformance';
const login = 'host/secret-binder/controller';
const apiKey = `conformance-api-key-${runTag()}-0123456789`;

describeBackendConformance('Conjur (API double, API key)', { text: true, binary: true, rejectsBadCredentials: true, logsIn: true }, async () => {
  const double: ConjurDouble = await startConjurDouble({ account, hosts: { [login]: { apiKey, privileged: true } } });
  const tag = runTag();
  const create = (applianceUrl: string, context: TestContext) =>
    conjurProvider.create(
      conjurProvider.parseConfig({
        applianceUrl,
        account,
        caBundle: Buffer.from(double.caPem).toString('base64'),
        auth: { apiKey: { login, secretRef: { name: 'conjur', key: 'api-key' } } },
      }),
      context,
    );
  const contextWith = (key: string): TestContext => testContext({ secrets: { conjur: { 'api-key': key } } });
  return {
    createBackend() {
      const context = contextWith(apiKey);
      return { backend: create(double.url, context), logins: context.logins };
    },
    newKey: (label) => `conformance/${tag}/${label}`,
    writeJson: (key, document) => {
      double.write(key, JSON.stringify(document));
      return Promise.resolve();
    },
    writeText: (key, text) => {
      double.write(key, text);
      return Promise.resolve();
    },
    writeBinary: (key, bytes) => {
      double.write(key, bytes);
      return Promise.resolve();
    },
    badCredentials: () => {
      const wrong = `conformance-wrong-key-${tag}-0123456789`;
      return Promise.resolve({ backend: create(double.url, contextWith(wrong)), credentials: [wrong], dispose: () => Promise.resolve() });
    },
    async hangingBackend() {
      const hanging = await startHangingServer();
      return { backend: create(`https://127.0.0.1:${String(hanging.port)}`, contextWith(apiKey)), dispose: () => hanging.close() };
    },
    dispose: () => double.stop(),
  };
});
