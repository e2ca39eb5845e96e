/**
 * The `helm test` entry point (templates/tests/release-check.yaml, ADR 0162): checks an installed
 * release from inside the cluster, prints one line per check and exits 0 only when every check
 * passes. The only reader of the command line and the environment for the check.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { readBuildInfo, versionLine, wantsVersion } from '../observability/build-info.ts';
import { checkRelease } from './release-check.ts';

async function main(): Promise<number> {
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('secret-binder release check', readBuildInfo()));
    return 0;
  }
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      namespace: { type: 'string' },
      'controller-selector': { type: 'string' },
      'broker-url': { type: 'string' },
      'broker-ca-file': { type: 'string' },
      'webhook-configuration-name': { type: 'string', default: '' },
      'webhook-service': { type: 'string', default: '' },
      'timeout-seconds': { type: 'string', default: '10' },
      version: { type: 'boolean' },
    },
  });
  const required = ['namespace', 'controller-selector', 'broker-url', 'broker-ca-file'] as const;
  const missing = required.filter((flag) => (values[flag] ?? '') === '');
  if (missing.length > 0) {
    process.stderr.write(`release check: --${missing.join(', --')} required\n`);
    return 2;
  }
  const webhook = values['webhook-configuration-name'] === '' ? null : { configurationName: values['webhook-configuration-name'], serviceName: values['webhook-service'] };
  const outcomes = await checkRelease({
    kubeConfig: inCluster(),
    namespace: values.namespace ?? '',
    controllerSelector: values['controller-selector'] ?? '',
    broker: { url: values['broker-url'] ?? '', caPem: await readFile(values['broker-ca-file'] ?? '', 'utf8') },
    webhook,
    timeoutMs: Number(values['timeout-seconds']) * 1000,
  });
  for (const o of outcomes) process.stdout.write(`${o.ok ? 'PASS' : 'FAIL'} ${o.name}: ${o.detail}\n`);
  return outcomes.every((o) => o.ok) ? 0 : 1;
}

process.exitCode = await main();

/** The pod's own service account; this short-lived Job may load the whole client library. */
function inCluster(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromCluster();
  return kc;
}
