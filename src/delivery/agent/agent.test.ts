import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentChangesRequest, AgentPublishRequest } from '../../broker/agent.protocol.ts';
import type { ChangesAnswer, PublishAnswer } from '../../broker/broker.protocol.ts';
import { BrokerRefusal, BrokerUnreachable } from '../csi/broker.port.ts';
import type { AgentBrokerPort } from './agent-broker.client.ts';
import { parseAgentConfig } from './agent.config.ts';
import { Agent, agentMetricsText, AgentDenied, AgentStartFailed, type AgentBinding } from './agent.ts';

/** The agent against an in-process broker of our own port, writing into temporary directories. */

class Broker implements AgentBrokerPort {
  content = 'v1';
  hash = 'h1';
  refuse: BrokerRefusal | undefined;
  down = false;
  revoked = false;
  /** Change-stream answers handed out one per call; then the agent's signal is aborted. */
  readonly changesQueue: (() => ChangesAnswer)[] = [];
  onDrained: (() => void) | undefined;

  publish(request: AgentPublishRequest): Promise<PublishAnswer> {
    if (this.down) return Promise.reject(new BrokerUnreachable('broker unreachable: connect ECONNREFUSED'));
    if (this.refuse !== undefined) return Promise.reject(this.refuse);
    return Promise.resolve({ volumeId: request.binding, contentHash: this.hash, files: [{ path: 'db/password', mode: 0o440, contentBase64: Buffer.from(this.content).toString('base64') }] });
  }

  changes(_request: AgentChangesRequest, signal: AbortSignal): Promise<ChangesAnswer> {
    const next = this.changesQueue.shift();
    if (next === undefined) {
      this.onDrained?.();
      return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    }
    try {
      return Promise.resolve(next());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }
}

function binding(follow: boolean): AgentBinding {
  return { name: 'db', containers: ['app'], dir: mkdtempSync(join(tmpdir(), 'agent-test-')), follow };
}

function agent(broker: Broker, bindings: AgentBinding[], mode: 'once' | 'follow', lines: string[] = [], stop?: AbortController): Agent {
  let now = 0;
  return new Agent({
    broker,
    bindings,
    mode,
    startTimeoutMs: 10_000,
    backoff: { minMs: 1000, maxMs: 4000 },
    changesWaitSeconds: 1,
    log: (level, message, fields) => lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    now: () => now,
    // Simulated time: a sleep moves the clock and returns at once.
    sleep: (ms, signal) => {
      now += ms;
      // A follow run ends after a simulated minute.
      if (now > 60_000) stop?.abort();
      return Promise.resolve(!signal.aborted);
    },
  });
}

const read = (b: AgentBinding): string => readFileSync(join(b.dir, 'db', 'password'), 'utf8');

describe('agent', () => {
  it('once: writes the file set atomically with its mode and returns', async () => {
    const broker = new Broker();
    const b = binding(false);
    const a = agent(broker, [b], 'once');
    await a.run(new AbortController().signal);
    expect(read(b)).toBe('v1');
    expect(statSync(join(b.dir, 'db', 'password')).mode & 0o777).toBe(0o440);
    expect(readdirSync(b.dir)).toContain('..data');
    expect(a.status).toMatchObject({ ready: true, brokerReachable: true, fileSetWrites: 1 });
  });

  it('once: retries an unreachable broker with backoff, then gives up naming the binding, the container and the cause', async () => {
    const broker = new Broker();
    broker.down = true;
    const lines: string[] = [];
    const b = binding(false);
    const failure = agent(broker, [b], 'once', lines).run(new AbortController().signal);
    await expect(failure).rejects.toThrow(AgentStartFailed);
    await expect(failure).rejects.toThrow(/binding db \(for container app\) not fetched within 10 s: broker unreachable: connect ECONNREFUSED/);
    // 1 s, 2 s, 4 s, 4 s… within 10 s: several tries, each logged with its delay.
    expect(lines.filter((l) => l.includes('retrying')).map((l) => JSON.parse(l.slice(l.indexOf('{'))) as { retryInMs: number }).map((f) => f.retryInMs)).toEqual([1000, 2000, 4000]);
  });

  it('once: fails fast on a refusal, naming the binding and the container', async () => {
    const broker = new Broker();
    broker.refuse = new BrokerRefusal(403, 'NotEntitled', 'container(s) debug mount the volume but are not listed by the binding');
    const run = agent(broker, [binding(false)], 'once').run(new AbortController().signal);
    await expect(run).rejects.toThrow(AgentDenied);
    await expect(run).rejects.toThrow('binding db (for container app) was refused: broker refused (403 NotEntitled): container(s) debug mount the volume');
  });

  it('follow: swaps in new content, keeps the files while the broker is unreachable, empties them when revoked', async () => {
    const broker = new Broker();
    const lines: string[] = [];
    const b = binding(true);
    const stop = new AbortController();
    const a = agent(broker, [b], 'follow', lines, stop);
    const seen: string[] = [];
    broker.changesQueue.push(
      () => {
        broker.content = 'v2';
        broker.hash = 'h2';
        return { changed: [{ volumeId: 'db', contentHash: 'h2', revoked: false }] };
      },
      () => {
        seen.push(read(b));
        throw new BrokerUnreachable('broker unreachable: connect ECONNREFUSED');
      },
      () => {
        seen.push(`${read(b)} reachable=${String(a.status.brokerReachable)}`);
        // Unbound: asked again later (a binding created anew), the broker refuses.
        broker.refuse = new BrokerRefusal(404, 'NotEntitled', 'binding db not found');
        return { changed: [{ volumeId: 'db', contentHash: null, revoked: true }] };
      },
    );
    broker.onDrained = () => { stop.abort(); };
    await a.run(stop.signal);
    expect(seen).toEqual(['v2', 'v2 reachable=false']);
    expect(lines.some((l) => l.startsWith('warn broker unreachable; keeping the last files'))).toBe(true);
    expect(readdirSync(b.dir)).toEqual([]);
    expect(a.status).toMatchObject({ revocations: 1, fileSetWrites: 2 });
    expect(agentMetricsText(a.status)).toContain('secretbinder_agent_broker_failures_total 1\n');
  });
});

describe('agent configuration', () => {
  it('reads the webhook-written command line', () => {
    const config = parseAgentConfig(
      ['--broker-url', 'https://b.svc:443', '--token-file', '/t/token', '--mode', 'follow', '--binding', 'db=app,worker', '--binding', 'tls.certs=app:once', '--start-timeout', '30s', '--gid', '2000'],
      { SECRETBINDER_BROKER_CA: 'PEM' },
    );
    expect(config.bindings).toEqual([
      { name: 'db', containers: ['app', 'worker'], dir: '/var/run/secretbinder-agent/db', follow: true },
      { name: 'tls.certs', containers: ['app'], dir: '/var/run/secretbinder-agent/tls.certs', follow: false },
    ]);
    expect(config).toMatchObject({ brokerCaPem: 'PEM', gid: 2000, startTimeoutMs: 30_000, mode: 'follow' });
  });

  it('reports every problem at once', () => {
    expect(() => parseAgentConfig(['--mode', 'sometimes', '--binding', 'Bad Name'], {})).toThrow(
      /--broker-url: .*; --token-file: is required.*; --mode: must be once or follow; --binding: "Bad Name" must be/,
    );
  });
});
