import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type Plugin, shouldRenderGraphiQL } from 'graphql-yoga';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { WebSocketServer } from 'ws';
import { AgentPoolError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { AgentPool } from '../pool/agent-pool.js';
import { schema, type SchemaContext } from '../schema/index.js';
import { DashboardFiles } from './dashboard-files.js';
import { renderGraphiQLPage } from './graphiql-page.js';
import { operationLimitPlugins } from './operation-limits.js';
import { MAX_BODY_BYTES, type Refusal, RequestGuard } from './request-guard.js';
import { isAuthorized } from './token.js';
import { envelopedOperations } from './yoga-over-ws.js';

/** The path of the GraphQL endpoint: HTTP, WebSocket and SSE. */
export const GRAPHQL_PATH = '/graphql';

/** What the server is built from. */
export interface ServerOptions {
  pool: AgentPool;
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @default 4747 */
  port?: number;
  /** The token every operation needs; null turns auth off. */
  token: string | null;
  /** Web origins besides the server's own that may call it (CORS is on only for these). */
  allowOrigins?: readonly string[];
  /** Host names besides the defaults that requests may be addressed to. */
  allowHosts?: readonly string[];
  /** The built dashboard served at `/`. @default the package's dist/web */
  dashboard?: DashboardFiles;
  logger: Logger;
}

/** A server that accepts connections. */
export interface RunningServer {
  /** `http://HOST:PORT` with the real port. */
  readonly origin: string;
  readonly port: number;
  /** Closes every connection and the listener. The pool is its owner's to dispose. */
  close(): Promise<void>;
}

/** An error response in GraphQL's shape. */
function errorBody(message: string, code: string): string {
  return JSON.stringify({ errors: [{ message, extensions: { code } }] });
}

/** Lets only requests with the token reach GraphQL; GraphiQL's page and /health load without it. */
function useTokenAuth(token: string): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== GRAPHQL_PATH) return;
      // A CORS preflight carries no credentials; the request it announces will.
      if (request.method === 'OPTIONS') return;
      if (shouldRenderGraphiQL(request)) return;
      if (isAuthorized(request.headers.get('authorization'), token)) return;
      const message =
        'a valid token is required: send "Authorization: Bearer <token>" (the token is in the URL agent-pool printed, and in .agent-pool/token)';
      endResponse(
        new fetchAPI.Response(errorBody(message, 'UNAUTHENTICATED'), {
          status: 401,
          headers: { 'content-type': 'application/json; charset=utf-8', 'www-authenticate': 'Bearer' },
        }),
      );
    },
  };
}

/**
 * Errors the contract names go to clients with their `extensions.code`; GraphQL's own
 * (syntax, validation) pass as they are; anything else is logged in full here and masked.
 */
function maskError(logger: Logger) {
  return (error: unknown, message: string): Error => {
    const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
    const graphQLError = error instanceof GraphQLError ? error : undefined;
    if (original instanceof AgentPoolError) {
      return new GraphQLError(original.message, {
        nodes: graphQLError?.nodes,
        path: graphQLError?.path,
        extensions: { ...original.extensions, code: original.code },
      });
    }
    if (original instanceof GraphQLError) return original;
    logger.error('unexpected error in a GraphQL operation', original);
    return new GraphQLError(message, {
      nodes: graphQLError?.nodes,
      path: graphQLError?.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
  };
}

function formatOrigin(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Serves the pool's GraphQL API on one port: graphql-yoga on Node's http server (queries,
 * mutations, SSE subscriptions, GraphiQL, /health) and graphql-ws on the same path for
 * WebSocket clients, executed through yoga's envelop so that its plugins apply there too.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { pool, token, logger } = options;
  const host = options.host ?? '127.0.0.1';
  const guard = new RequestGuard({ host, allowOrigins: options.allowOrigins ?? [], allowHosts: options.allowHosts ?? [] });
  const corsOrigins = guard.corsOrigins;
  const dashboard = options.dashboard ?? new DashboardFiles();
  if (!dashboard.built) logger.warn(`the dashboard is not built (${dashboard.dir}): run "npm run build" to serve it at /`);

  const yoga = createYoga<Record<string, unknown>, SchemaContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    healthCheckEndpoint: '/health',
    landingPage: false,
    // CORS stays off unless origins are allowed: the server's own pages need none.
    cors: corsOrigins.length === 0 ? false : { origin: corsOrigins, methods: ['GET', 'POST'], allowedHeaders: ['authorization', 'content-type', 'accept'] },
    context: () => ({ pool }),
    graphiql: { title: 'agent-pool GraphiQL', subscriptionsProtocol: 'SSE' },
    renderGraphiQL: renderGraphiQLPage,
    maskedErrors: { maskError: maskError(logger) },
    logging: {
      debug: () => {},
      info: () => {},
      warn: (...args: unknown[]) => logger.warn(args.map(String).join(' ')),
      error: (...args: unknown[]) => logger.error(args.map(String).join(' ')),
    },
    plugins: [
      ...(token === null ? [] : [useTokenAuth(token)]),
      // A plain HTML form cannot set these headers, so it cannot post an operation.
      useCSRFPrevention({ requestHeaders: ['authorization', 'x-graphql-yoga-csrf'] }),
      ...operationLimitPlugins(),
    ],
  });

  const refuse = (response: ServerResponse, refusal: Refusal): void => {
    response
      .writeHead(refusal.status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' })
      .end(errorBody(refusal.message, refusal.status === 403 ? 'FORBIDDEN' : 'BAD_REQUEST'));
  };

  const httpServer: Server = createServer((request, response) => {
    const refusal = guard.checkOrigin(request.headers) ?? guard.checkBody(request.method, request.headers);
    if (refusal) {
      refuse(response, refusal);
      return;
    }
    // The dashboard's pages and files hold no data: they load without the token.
    if (dashboard.serve(request, response)) return;
    void yoga.handle(request, response);
  });

  const webSockets = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
  const graphqlWs = useServer<Record<string, unknown>>(
    {
      onConnect: (ctx) => token === null || isAuthorized(ctx.connectionParams?.authorization, token),
      ...envelopedOperations(yoga),
    },
    webSockets,
  );

  httpServer.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // A WebSocket is not bound by CORS: any page could open one, so its origin is checked here.
    const refusal = guard.checkOrigin(request.headers);
    if (refusal) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${refusal.message}\n`);
      return;
    }
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname !== GRAPHQL_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (webSocket) => {
      webSockets.emit('connection', webSocket, request);
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 4747, host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;

  return {
    origin: formatOrigin(host, port),
    port,
    async close() {
      await graphqlWs.dispose();
      for (const client of webSockets.clients) client.terminate();
      await new Promise<void>((resolve) => webSockets.close(() => resolve()));
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await yoga.dispose();
    },
  };
}
