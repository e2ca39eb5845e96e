import { createServer, type Server, type Socket } from 'node:net';

/**
 * The sidecar's status endpoint on the pod IP: `GET /readyz` (the kubelet's startup probe),
 * `/healthz` and `/metrics`. A minimal HTTP/1.1 responder on `node:net` that answers one request
 * per connection and closes it: `node:http` alone adds ~15 MiB RSS to a process every agent pod
 * pays for (ADR 0250). Requests larger than 8 KiB or slower than 5 s are dropped.
 */
export type StatusRoute = () => { readonly status: 200 | 503; readonly contentType: string; readonly body: string };

const reasons = { 200: 'OK', 404: 'Not Found', 503: 'Service Unavailable' } as const;

export function startStatusServer(port: number, routes: Readonly<Record<string, StatusRoute>>, host?: string): Server {
  const server = createServer((socket: Socket) => {
    let head = '';
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (head.length > 8192) {
        socket.destroy();
        return;
      }
      if (!head.includes('\r\n\r\n') && !head.includes('\n\n')) return;
      socket.removeAllListeners('data');
      const [method, target = ''] = (head.split(/\r?\n/)[0] ?? '').split(' ');
      const path = target.split('?')[0] ?? '';
      const route = method === 'GET' && Object.hasOwn(routes, path) ? routes[path] : undefined;
      const answer = route?.() ?? { status: 404 as const, contentType: 'text/plain', body: 'not found\n' };
      const body = Buffer.from(answer.body);
      socket.end(
        `HTTP/1.1 ${String(answer.status)} ${reasons[answer.status]}\r\ncontent-type: ${answer.contentType}\r\ncontent-length: ${String(body.byteLength)}\r\nconnection: close\r\n\r\n${answer.body}`,
      );
    });
  });
  server.listen(port, host);
  return server;
}
