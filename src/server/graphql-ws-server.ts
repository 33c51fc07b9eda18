import type { IncomingMessage } from 'node:http';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Logger, ThrottledLog } from '../logger.js';

/** What each graphql-ws operation knows of its connection (as graphql-ws's own `use/ws` gives it). */
export interface Extra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
  /** Aborted when the socket closes: work done for its operations can stop. */
  readonly signal?: AbortSignal;
}

/**
 * How many bytes a socket may hold unsent before a send waits for them to leave: below
 * it, a message is handed to the socket and the next event goes on at once; above it, each
 * of the socket's subscriptions waits for its own message to leave (backpressure). A client
 * that stops reading holds this much, plus one message per subscription it has open, plus
 * what the kernel buffers; it misses nothing.
 */
export const SEND_HIGH_WATER_MARK = 64 * 1024;

/** How graphql-ws runs over the sockets of a `ws` server. */
export interface GraphqlWsOptions<P extends Record<string, unknown> | undefined> {
  /** graphql-ws's own options: auth, execution. */
  server: ServerOptions<P, Extra>;
  logger: Logger;
  /** Where what clients cause (malformed frames, oversized messages) is reported, throttled. */
  clientErrors: ThrottledLog;
  /**
   * A ping every this many ms; a socket that has not answered by the next is ended, so
   * that dead peers do not hold their subscriptions. 0 turns pings off.
   * @default 12_000
   */
  keepAliveMs?: number;
}

/**
 * graphql-ws over `ws`, as graphql-ws's `useServer` does it, with what a server open to
 * hostile clients needs on top: every socket has an `error` listener before anything can
 * fail on it; a client's protocol error (a malformed frame, a message over the size cap)
 * closes that socket and is logged as one throttled line, never a stack trace per frame;
 * an unexpected server error closes with 4500 and is logged in full.
 * @returns what ends every connection.
 */
export function serveGraphqlWs<P extends Record<string, unknown> | undefined>(
  webSockets: WebSocketServer,
  options: GraphqlWsOptions<P>,
): { dispose(): Promise<void> } {
  const { logger, clientErrors } = options;
  const keepAliveMs = options.keepAliveMs ?? 12_000;
  const server = makeServer(options.server);
  webSockets.options.handleProtocols = handleProtocols;
  webSockets.on('error', (error) => logger.error('the WebSocket server failed', error));

  webSockets.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    socket.on('error', (error) => {
      // ws emits these for what the peer sent (an invalid frame, a message over maxPayload)
      // and has already closed the socket with the matching code (1002, 1007, 1009).
      clientErrors.warn(`a WebSocket client was disconnected: ${error.message}`);
    });

    // The events one turn of the event loop yields (a PTY read's batch, a page of stored
    // events) leave in one write: the TCP socket is corked at the first send of the turn
    // and uncorked once the turn's promises have settled. Each event stays its own message.
    const tcp = request.socket;
    let corked = false;
    const closing = new AbortController();
    let pongWait: NodeJS.Timeout | undefined;
    const pingInterval =
      keepAliveMs > 0
        ? setInterval(() => {
            if (socket.readyState !== socket.OPEN) return;
            pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
            socket.once('pong', () => {
              clearTimeout(pongWait);
              pongWait = undefined;
            });
            socket.ping();
          }, keepAliveMs)
        : undefined;

    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => {
          if (socket.readyState !== socket.OPEN) return Promise.resolve();
          if (!corked) {
            corked = true;
            tcp.cork();
            process.nextTick(() => {
              corked = false;
              tcp.uncork();
            });
          }
          if (socket.bufferedAmount < SEND_HIGH_WATER_MARK) {
            socket.send(data);
            return Promise.resolve();
          }
          return new Promise<void>((resolve, reject) => socket.send(data, (error) => (error ? reject(error) : resolve())));
        },
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', (data: Buffer) => {
            handle(data.toString('utf8')).catch((error: unknown) => {
              if (socket.readyState !== socket.OPEN) return; // sending to a peer that left
              logger.error('a WebSocket message could not be handled', error);
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            });
          }),
      },
      { socket, request, signal: closing.signal },
    );

    socket.once('close', (code, reason) => {
      clearTimeout(pongWait);
      clearInterval(pingInterval);
      closing.abort();
      closed(code, reason.toString('utf8')).catch((error: unknown) => logger.error('a closed WebSocket could not be cleaned up', error));
    });
  });

  return {
    async dispose() {
      for (const client of webSockets.clients) client.close(1001, 'Going away');
      await new Promise<void>((resolve) => webSockets.close(() => resolve()));
    },
  };
}
