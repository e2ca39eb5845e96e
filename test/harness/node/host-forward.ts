import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';

/**
 * A listener on the node's bridge address that forwards each connection to a loopback port of the
 * host: how pods reach a host server bound to 127.0.0.1 (the API server, OpenBao) through a
 * selector-less Service whose EndpointSlice names the bridge address (ADR 0180, 0192). With `tls`,
 * it terminates TLS with that certificate and forwards plain bytes (OpenBao in dev mode serves
 * plain http). It closes itself after `maxLifetimeMs` if the suite never calls `stop`.
 */
export interface HostForward {
  readonly port: number;
  stop(): Promise<void>;
}

export async function startHostForward(options: {
  readonly address: string;
  readonly targetPort: number;
  readonly tls?: { readonly certPath: string; readonly keyPath: string };
  readonly maxLifetimeMs?: number;
}): Promise<HostForward> {
  const sockets = new Set<Socket>();
  const pipe = (client: Socket): void => {
    const upstream = connect(options.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      // A reset on one side ends the other; nothing to report.
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  const server: Server =
    options.tls === undefined ? createServer(pipe) : createTlsServer({ cert: readFileSync(options.tls.certPath), key: readFileSync(options.tls.keyPath) }, pipe);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.address, resolve);
  });
  // Stops listening and cuts every connection; does not wait for a half-open handshake to end.
  const stop = (): Promise<void> => {
    clearTimeout(timer);
    server.close();
    for (const s of sockets) s.destroy();
    return Promise.resolve();
  };
  const timer = setTimeout(() => void stop(), options.maxLifetimeMs ?? 30 * 60_000);
  timer.unref();
  return { port: (server.address() as AddressInfo).port, stop };
}
