import { createServer, type Socket, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

/** A TCP proxy on loopback in front of a server, whose connections a test can cut. */
export interface TcpProxy {
  /** `http://127.0.0.1:PORT` of the proxy. */
  origin: string;
  /** Cuts every connection through the proxy at once, as a dropped network would; new ones still go through. */
  drop(): void;
  /** What the server sent to clients since the last drop (WebSocket frames from a server are not masked). */
  sentSinceDrop(): string;
}

/** Starts a proxy to `target` (`http://HOST:PORT`) on port 0, closed when the test ends. */
export async function tcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let sent: Buffer[] = [];
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.on('data', (chunk: Buffer) => sent.push(chunk));
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const drop = (): void => {
    for (const socket of sockets) socket.destroy();
    sent = [];
  };
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        drop();
        server.close(() => resolve());
      }),
  );
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    drop,
    sentSinceDrop: () => Buffer.concat(sent).toString('latin1'),
  };
}
