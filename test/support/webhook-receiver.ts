// A real HTTP receiver for agent-pool's webhooks, on loopback: it records every request
// (headers and body) and answers as the test says, so a test sees exactly what went over
// the wire.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';

/** One request the receiver got. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The body as sent, byte for byte (as text). */
  body: string;
  /** The body parsed as JSON. */
  json: Record<string, unknown>;
}

/**
 * How the receiver answers one request: a status (and headers), or 'hang' to hold the request
 * open until the receiver closes.
 */
export type Answer = number | { status: number; headers?: Record<string, string>; body?: string } | 'hang';

export interface WebhookReceiver {
  /** `http://127.0.0.1:PORT/hook?key=secret-part` */
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Requests the receiver holds open now ('hang'). */
  readonly open: number;
  /** Resolves when `count` requests in all have arrived. */
  received(count: number): Promise<ReceivedRequest[]>;
  /** Stops listening and drops every connection (a receiver that is down). */
  close(): Promise<void>;
}

/**
 * Starts a receiver on `port` (0: a free one). `answer` says how to answer each request
 * (by its number, from 0; 200 by default).
 */
export async function startReceiver(answer: (request: ReceivedRequest, index: number) => Answer = () => 200, port = 0): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const hanging = new Set<ServerResponse>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        // kept as text
      }
      const received: ReceivedRequest = { method: request.method ?? '', path: request.url ?? '', headers: request.headers, body, json };
      const index = requests.length;
      requests.push(received);
      for (const waiter of [...waiters]) {
        if (requests.length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
      const reply = answer(received, index);
      if (reply === 'hang') {
        hanging.add(response);
        response.on('close', () => hanging.delete(response));
        return;
      }
      const { status, headers, body: text } = typeof reply === 'number' ? { status: reply, headers: {}, body: '' } : reply;
      response.writeHead(status, headers).end(text);
    });
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  onTestFinished(close);
  return {
    url: `http://127.0.0.1:${actual}/hook?key=secret-part`,
    port: actual,
    requests,
    get open() {
      return hanging.size;
    },
    received(count) {
      if (requests.length >= count) return Promise.resolve(requests.slice(0, count));
      return new Promise((resolve) => waiters.push({ count, resolve: () => resolve(requests.slice(0, count)) }));
    },
    close,
  };
}
