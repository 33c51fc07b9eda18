import { type Client as WsClient, createClient as createWsClient } from 'graphql-ws';
import { useSyncExternalStore } from 'react';
import { cacheExchange, Client, subscriptionExchange } from 'urql';

/** The state of the page's one WebSocket to the server, shown in its header. */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'unauthorized';

/** graphql-ws closes a connection whose connection_init the server refused with 4403. */
const FORBIDDEN = 4403;

/** The page's connection to agent-pool: one graphql-ws socket for every operation. */
export interface Connection {
  ws: WsClient;
  urql: Client;
  state(): ConnectionState;
  /** Calls `listener` on every change of state; `reconnected` is true once a dropped socket is back. */
  subscribe(listener: (reconnected: boolean) => void): () => void;
  dispose(): void;
}

/**
 * Connects with the token. Everything goes over graphql-ws, queries and mutations too
 * (urql's subscriptionExchange with enableAllOperations): one socket, authenticated once
 * in connection_init, and retried for ever while the server restarts, unless the token
 * is refused.
 */
export function connect(token: string): Connection {
  let state: ConnectionState = 'connecting';
  let everConnected = false;
  const listeners = new Set<(reconnected: boolean) => void>();
  const set = (next: ConnectionState, reconnected = false): void => {
    state = next;
    for (const listener of listeners) listener(reconnected);
  };
  const url = new URL('/graphql', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = createWsClient({
    url: url.href,
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: (event) => !(event instanceof CloseEvent && event.code === FORBIDDEN),
    // From 1 s up to 8 s between attempts, so a restarted server is found quickly.
    retryWait: async (retries) => {
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** retries, 8000)));
    },
    on: {
      connecting: () => set(everConnected ? 'reconnecting' : 'connecting'),
      connected: () => {
        const reconnected = everConnected;
        everConnected = true;
        set('connected', reconnected);
      },
      closed: (event) => {
        if (event instanceof CloseEvent && event.code === FORBIDDEN) set('unauthorized');
        else if (everConnected) set('reconnecting');
      },
    },
  });
  const urql = new Client({
    url: url.href,
    exchanges: [
      cacheExchange,
      subscriptionExchange({
        enableAllOperations: true,
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink) }),
        }),
      }),
    ],
  });
  return {
    ws,
    urql,
    state: () => state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    dispose: () => void ws.dispose(),
  };
}

/** The connection's state, re-rendering on change. */
export function useConnectionState(connection: Connection): ConnectionState {
  return useSyncExternalStore((listener) => connection.subscribe(() => listener()), () => connection.state());
}
