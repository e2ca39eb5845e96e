import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerReachability, socketAccepts } from './node-plugin.health.ts';
import { BrokerHttpClient } from './broker-http.client.ts';

const servers: (Server | HttpServer)[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => { resolve(); }))));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function listening<T extends Server | HttpServer>(server: T, ...where: unknown[]): Promise<T> {
  servers.push(server);
  await new Promise<void>((resolve) => {
    (server.listen as (...args: unknown[]) => void)(...where, () => { resolve(); });
  });
  return server;
}

describe('socketAccepts', () => {
  it('passes while a server accepts on the socket, fails naming the socket when none does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-health-'));
    dirs.push(dir);
    const path = join(dir, 'csi.sock');
    expect(await socketAccepts(path, 1000)).toEqual({ ok: false, message: `CSI socket ${path}: ENOENT` });
    await listening(createServer((c) => c.end()), path);
    expect(await socketAccepts(path, 1000)).toEqual({ ok: true });
  });
});

describe('BrokerReachability', () => {
  it('counts any HTTP answer as reachable, and reuses a result for cacheMs', async () => {
    let requests = 0;
    const server = await listening(
      createHttpServer((_req, res) => {
        requests++;
        res.writeHead(404).end();
      }),
      0,
      '127.0.0.1',
    );
    let now = 0;
    const reach = new BrokerReachability({ url: `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`, timeoutMs: 1000, cacheMs: 20_000, now: () => now });
    expect(await reach.check()).toEqual({ ok: true });
    now = 19_999;
    expect(await reach.check()).toEqual({ ok: true });
    expect(requests).toBe(1);
    now = 20_000;
    await reach.check();
    expect(requests).toBe(2);
  });

  it('fails naming the broker when nothing answers', async () => {
    const server = await listening(createServer(), 0, '127.0.0.1');
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    servers.splice(servers.indexOf(server), 1);
    const reach = new BrokerReachability({ url: `http://127.0.0.1:${String(port)}`, timeoutMs: 1000, cacheMs: 0 });
    expect(await reach.check()).toEqual({ ok: false, message: `broker 127.0.0.1:${String(port)} unreachable: ECONNREFUSED` });
  });

  it("asks for the broker client's CA bundle on every probe (a renewed CA needs no restart) and fails naming the file when it is missing", async () => {
    const client = new BrokerHttpClient({ url: 'https://127.0.0.1:1', tokenFile: '/nonexistent/token', caFile: '/nonexistent/secret-binder/ca.crt', timeoutMs: 1000 });
    const reach = new BrokerReachability({ url: 'https://127.0.0.1:1', ca: () => client.caBundle(), timeoutMs: 1000, cacheMs: 0 });
    const result = await reach.check();
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.message).toMatch(/broker CA file unreadable: .*ENOENT.*\/nonexistent\/secret-binder\/ca\.crt/);
  });
});
