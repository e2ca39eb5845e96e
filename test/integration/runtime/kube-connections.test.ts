import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { loadKubeConnection } from '../../../src/kube/kube-connection.ts';
import { requestJson, type KubeTransport } from '../../../src/runtime/kube-request.ts';
import { currentWorld } from '../../harness/world-state.ts';

/**
 * The controller's API calls reuse their connections (ADRs 0142, 0200): a TCP relay in front of the
 * world's API server counts the connections that calls through `loadKubeConnection` open, and
 * concurrent requests run on its shared agent.
 */

let relay: Server;
let connections = 0;
const sockets = new Set<Socket>();
let dir: string;
let kubeconfigPath: string;

beforeAll(async () => {
  const api = new URL(currentWorld().kube.server);
  relay = createServer((client) => {
    connections++;
    const upstream = connect(Number(api.port), '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const { port } = relay.address() as AddressInfo;
  dir = mkdtempSync(join(tmpdir(), 'sb-kube-conn-'));
  kubeconfigPath = join(dir, 'kubeconfig');
  // The admin kubeconfig with the relay as the server (the serving certificate names 127.0.0.1).
  writeFileSync(kubeconfigPath, readFileSync(currentWorld().kube.kubeconfigPath, 'utf8').replace(api.origin, `https://127.0.0.1:${String(port)}`), { mode: 0o600 });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => relay.close(() => { resolve(); }));
  rmSync(dir, { recursive: true, force: true });
});

const get = (transport: KubeTransport, path: string): Promise<unknown> => requestJson(transport, { method: 'GET', path, signal: AbortSignal.timeout(30_000) });

async function connectionsFor(read: (name: string) => Promise<unknown>, calls: number): Promise<number> {
  const before = connections;
  for (let i = 0; i < calls; i++) await read('default');
  await Promise.all(Array.from({ length: 5 }, () => read('kube-system')));
  return connections - before;
}

describe('API client connections', () => {
  it('opens a handful of connections for 25 calls, not one per call', async () => {
    const plain = new KubeConfig();
    plain.loadFromFile(kubeconfigPath);
    const library = plain.makeApiClient(CoreV1Api);
    const perCall = await connectionsFor((name) => library.readNamespace({ name }), 20);
    const connection = await loadKubeConnection({ kind: 'file', path: kubeconfigPath }, {});
    const pooled = await connectionsFor((name) => get(connection, `/api/v1/namespaces/${name}`), 20);
    process.stdout.write(`API connections for 20 sequential + 5 concurrent calls: @kubernetes/client-node as is ${String(perCall)}, loadKubeConnection ${String(pooled)}\n`);
    // One for the sequential calls, at most one more per concurrent call.
    expect(pooled).toBeGreaterThanOrEqual(1);
    expect(pooled).toBeLessThanOrEqual(6);
  });

  it('keeps using one connection across a long series of calls', async () => {
    const connection = await loadKubeConnection({ kind: 'file', path: kubeconfigPath }, {});
    const before = connections;
    for (let i = 0; i < 50; i++) await get(connection, '/api/v1/namespaces?limit=1');
    expect(connections - before).toBe(1);
  });

  it('runs 30 concurrent runtime requests on the shared agent, none hung up by another', async () => {
    const connection = await loadKubeConnection({ kind: 'file', path: kubeconfigPath }, {});
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => get(connection, '/api/v1/namespaces')));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
  });

  it('opens a new pool when a client certificate is rotated in its file, and only then', async () => {
    // A kubeconfig naming certificate files (as kubelet-style and rotated credentials do).
    const pki = join(currentWorld().dir, 'pki');
    for (const file of ['admin.crt', 'admin.key']) copyFileSync(join(pki, file), join(dir, file));
    const { port } = relay.address() as AddressInfo;
    const fileConfig = join(dir, 'kubeconfig-files');
    writeFileSync(
      fileConfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'w', cluster: { server: `https://127.0.0.1:${String(port)}`, 'certificate-authority': join(pki, 'ca.crt') } }],
        users: [{ name: 'admin', user: { 'client-certificate': join(dir, 'admin.crt'), 'client-key': join(dir, 'admin.key') } }],
        contexts: [{ name: 'w', context: { cluster: 'w', user: 'admin' } }],
        'current-context': 'w',
      }),
      { mode: 0o600 },
    );
    const connection = await loadKubeConnection({ kind: 'file', path: fileConfig }, {});
    const before = connections;
    for (let i = 0; i < 5; i++) await get(connection, '/api/v1/namespaces?limit=1');
    expect(connections - before).toBe(1);
    // Rotated in place: same path, new file version.
    const later = new Date(Date.now() + 60_000);
    copyFileSync(join(pki, 'admin.crt'), join(dir, 'admin.crt'));
    utimesSync(join(dir, 'admin.crt'), later, later);
    for (let i = 0; i < 5; i++) await get(connection, '/api/v1/namespaces?limit=1');
    expect(connections - before).toBe(2);
  });
});
