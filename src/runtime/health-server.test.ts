import { afterEach, describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { HealthServer } from './health-server.ts';
import { informerReadiness } from './manager.ts';
import { TerminalError } from './reconciler.ts';
import { RuntimeMetrics } from './runtime.metrics.ts';

let server: HealthServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function get(path: string, method = 'GET'): Promise<{ status: number; body: string; type: string | null }> {
  if (server === undefined) throw new Error('no server');
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

describe('HealthServer', () => {
  it('serves /healthz, /readyz with failing checks named, and 404/405', async () => {
    server = new HealthServer({ port: 0, registry: new Registry() });
    let ready = false;
    server.addReadinessCheck('caches', () => (ready ? { ok: true } : { ok: false, message: 'not synced' }));
    server.addReadinessCheck('broker', () => ({ ok: true }));
    server.addReadinessCheck('flaky', () => {
      throw new Error('boom');
    });
    await server.listen();
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toMatchObject({
      status: 503,
      body: '[-]caches: not synced\n[-]flaky: check threw: Error: boom\n2 check(s) failed\n',
    });
    ready = true;
    expect((await get('/readyz?verbose')).body).toBe('[+]caches ok\n[+]broker ok\n[-]flaky: check threw: Error: boom\n1 check(s) failed\n');
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/healthz', 'POST')).status).toBe(405);
  });

  it('binds 127.0.0.1 by default', async () => {
    server = new HealthServer({ port: 0, registry: new Registry() });
    await server.listen();
    await expect(fetch(`http://[::1]:${server.port}/healthz`)).rejects.toThrow();
    expect((await get('/healthz')).status).toBe(200);
  });

  it('exposes the registry it was given, with the runtime metrics and closed label sets', async () => {
    const registry = new Registry();
    const metrics = new RuntimeMetrics(registry, { controllers: ['binding'], resources: ['pods'], errorReasons: ['InvalidSpec'] });
    metrics.reconciled('binding', 'success', 0.02);
    metrics.reconciled('binding', 'terminal', 0.001);
    metrics.reconcileFailed('binding', new TerminalError('InvalidSpec', 'bad'), true);
    metrics.reconcileFailed('binding', Object.assign(new Error('x'), { reason: 'ns/secret-name-here' }), false);
    metrics.reconciled('undeclared', 'success', 0.5);
    metrics.queueDepth('binding', 3);
    metrics.informerRestarted('pods');
    metrics.leaderChanged(true);
    server = new HealthServer({ port: 0, registry });
    await server.listen();
    const { status, body, type } = await get('/metrics');
    expect(status).toBe(200);
    expect(type).toBe(registry.contentType);
    expect(body).toContain('secretbinder_reconcile_duration_seconds_bucket{le="0.025",controller="binding",result="success"} 1');
    expect(body).toContain('secretbinder_reconcile_total{controller="binding",result="terminal"} 1');
    expect(body).toContain('secretbinder_reconcile_errors_total{controller="binding",reason="InvalidSpec"} 1');
    // A reason outside the closed list never becomes a label value.
    expect(body).toContain('secretbinder_reconcile_errors_total{controller="binding",reason="Other"} 1');
    expect(body).toContain('secretbinder_reconcile_total{controller="Other",result="success"} 1');
    expect(body).not.toContain('secret-name-here');
    expect(body).toContain('secretbinder_workqueue_depth{controller="binding"} 3');
    expect(body).toContain('secretbinder_informer_restarts_total{resource="pods"} 1');
    expect(body).toContain('secretbinder_leader 1');
  });
});

describe('informerReadiness', () => {
  it('wants a synced, fresh cache', () => {
    expect(informerReadiness({ name: 'x', hasSynced: () => false, staleness: () => Infinity }, 1000)).toEqual({ ok: false, message: 'not synced' });
    expect(informerReadiness({ name: 'x', hasSynced: () => true, staleness: () => 5000 }, 1000)).toEqual({ ok: false, message: 'stale for 5 s' });
    expect(informerReadiness({ name: 'x', hasSynced: () => true, staleness: () => 500 }, 1000)).toEqual({ ok: true });
  });
});
