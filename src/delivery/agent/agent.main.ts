/**
 * The agent's composition root (ADR 0250): the only reader of process.env and the command line for
 * the agent. Loads no Kubernetes client, no backend SDK, no winston and no prom-client, so the
 * sidecar every agent pod pays for stays near a bare Node process. Exit codes: 0 written (once) or
 * stopped (follow), 1 refused or the broker unreachable for the start timeout (the cause is the
 * container's termination message), 2 bad configuration.
 */
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { startStatusServer } from './agent-status.server.ts';
import { AgentBrokerClient } from './agent-broker.client.ts';
import { AgentConfigError, parseAgentConfig } from './agent.config.ts';
import { Agent, agentMetricsText, AgentDenied, AgentStartFailed } from './agent.ts';

const terminationLog = '/dev/termination-log';

function log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, string | number | boolean> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, component: 'agent', message, ...fields })}\n`);
}

/** The kubelet shows this file's content in the pod's status (terminationMessagePath). */
function terminationMessage(text: string): void {
  try {
    writeFileSync(terminationLog, text);
  } catch {
    // Not in a container (a test run): the log line carries it.
  }
}

/** /readyz (the sidecar's startup probe), /healthz and /metrics on the pod IP. */
function statusServer(agent: Agent, port: number): Server {
  return startStatusServer(port, {
    '/readyz': () => (agent.status.ready ? { status: 200, contentType: 'text/plain', body: 'ok\n' } : { status: 503, contentType: 'text/plain', body: 'files not written yet\n' }),
    '/healthz': () => ({ status: 200, contentType: 'text/plain', body: 'ok\n' }),
    '/metrics': () => ({ status: 200, contentType: 'text/plain; version=0.0.4', body: agentMetricsText(agent.status) }),
  });
}

async function main(): Promise<number> {
  let config;
  try {
    config = parseAgentConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof AgentConfigError)) throw error;
    const text = `secret-binder agent: ${error.message}`;
    terminationMessage(text);
    process.stderr.write(`${text}\n`);
    return 2;
  }
  const broker = new AgentBrokerClient({ url: config.brokerUrl, tokenFile: config.tokenFile, timeoutMs: 10_000, ...(config.brokerCaPem === undefined ? {} : { caPem: config.brokerCaPem }) });
  const agent = new Agent({
    broker,
    bindings: config.bindings,
    mode: config.mode,
    ...(config.gid === undefined ? {} : { gid: config.gid }),
    startTimeoutMs: config.startTimeoutMs,
    backoff: { minMs: 500, maxMs: 15_000 },
    changesWaitSeconds: 55,
    log,
  });
  const stop = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { stop.abort(); });
  const server = config.metricsPort === undefined ? undefined : statusServer(agent, config.metricsPort);
  try {
    await agent.run(stop.signal);
    return 0;
  } catch (error) {
    if (error instanceof AgentDenied || error instanceof AgentStartFailed) {
      terminationMessage(error.message);
      log('error', error.message);
      return 1;
    }
    throw error;
  } finally {
    server?.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const text = `secret-binder agent failed: ${error instanceof Error ? error.message : String(error)}`;
    terminationMessage(text);
    process.stderr.write(`${text}\n`);
    process.exitCode = 1;
  },
);
