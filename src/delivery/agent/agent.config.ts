import { parseArgs } from 'node:util';
import { agentMountPath } from '../../broker/agent.protocol.ts';
import type { AgentBinding } from './agent.ts';

/** The agent's configuration, from its command line (written by the webhook) and one env var. */
export interface AgentConfig {
  readonly brokerUrl: string;
  readonly brokerCaPem: string | undefined;
  readonly tokenFile: string;
  readonly mode: 'once' | 'follow';
  readonly bindings: readonly AgentBinding[];
  readonly gid: number | undefined;
  readonly metricsPort: number | undefined;
  readonly startTimeoutMs: number;
}

export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
}

const bindingArg = /^([a-z0-9]([-.a-z0-9]*[a-z0-9])?)=([a-z0-9-]+(,[a-z0-9-]+)*)(:once)?$/;

/**
 * `--binding <name>=<container>[,<container>…][:once]` (repeated), `--broker-url`, `--token-file`,
 * `--mode once|follow`, `--start-timeout <n>s`, `--metrics-port`, `--gid`; the broker CA bundle in
 * `SECRETBINDER_BROKER_CA` (public certificates). Every problem at once.
 */
export function parseAgentConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): AgentConfig {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'broker-url': { type: 'string' },
        'token-file': { type: 'string' },
        mode: { type: 'string', default: 'once' },
        binding: { type: 'string', multiple: true, default: [] },
        gid: { type: 'string' },
        'metrics-port': { type: 'string' },
        'start-timeout': { type: 'string', default: '60s' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new AgentConfigError(error instanceof Error ? error.message : String(error));
  }
  const problems: string[] = [];
  const brokerUrl = values['broker-url'] ?? '';
  if (!/^https?:\/\/[^/]+/.test(brokerUrl)) problems.push('--broker-url: must be the broker URL, e.g. https://secret-binder-broker.secret-binder-system.svc:443');
  const tokenFile = values['token-file'] ?? '';
  if (tokenFile === '') problems.push('--token-file: is required (the projected secretbinder.dev token)');
  const mode = values.mode;
  if (mode !== 'once' && mode !== 'follow') problems.push('--mode: must be once or follow');
  const bindings: AgentBinding[] = [];
  for (const raw of values.binding) {
    const match = bindingArg.exec(raw);
    if (match?.[1] === undefined || match[3] === undefined) {
      problems.push(`--binding: "${raw}" must be <binding>=<container>[,<container>…][:once]`);
      continue;
    }
    bindings.push({ name: match[1], containers: match[3].split(','), dir: agentMountPath(match[1]), follow: match[5] === undefined && mode === 'follow' });
  }
  if (bindings.length === 0) problems.push('--binding: at least one is required');
  const gid = values.gid === undefined ? undefined : Number(values.gid);
  if (gid !== undefined && (!Number.isInteger(gid) || gid < 0)) problems.push('--gid: must be a group id');
  const metricsPort = values['metrics-port'] === undefined ? undefined : Number(values['metrics-port']);
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort < 1 || metricsPort > 65_535)) problems.push('--metrics-port: must be a port number');
  const timeout = /^(\d+)s$/.exec(values['start-timeout']);
  if (timeout?.[1] === undefined) problems.push('--start-timeout: must be seconds, e.g. 60s');
  if (problems.length > 0) throw new AgentConfigError(problems.join('; '));
  const ca = env['SECRETBINDER_BROKER_CA'];
  return {
    brokerUrl,
    brokerCaPem: ca === undefined || ca.trim() === '' ? undefined : ca,
    tokenFile,
    mode: mode === 'follow' ? 'follow' : 'once',
    bindings,
    gid,
    metricsPort,
    startTimeoutMs: Number(timeout?.[1] ?? '60') * 1000,
  };
}
