import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type Plugin, shouldRenderGraphiQL } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { AgentPoolError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { AgentPool } from '../pool/agent-pool.js';
import { schema, type SchemaContext } from '../schema/index.js';
import { renderGraphiQLPage } from './graphiql-page.js';
import { isAuthorized } from './token.js';

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

/** The error a request without a valid token gets, in GraphQL's shape. */
function unauthenticatedBody(): string {
  return JSON.stringify({
    errors: [
      {
        message:
          'a valid token is required: send "Authorization: Bearer <token>" (the token is in the URL agent-pool printed, and in .agent-pool/token)',
        extensions: { code: 'UNAUTHENTICATED' },
      },
    ],
  });
}

/** Lets only requests with the token reach GraphQL; GraphiQL's page and /health load without it. */
function useTokenAuth(token: string): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (url.pathname !== GRAPHQL_PATH) return;
      if (shouldRenderGraphiQL(request)) return;
      if (isAuthorized(request.headers.get('authorization'), token)) return;
      endResponse(
        new fetchAPI.Response(unauthenticatedBody(), {
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

  const yoga = createYoga<Record<string, unknown>, SchemaContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    healthCheckEndpoint: '/health',
    landingPage: false,
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
    plugins: token === null ? [] : [useTokenAuth(token)],
  });

  const httpServer: Server = createServer((request, response) => {
    // Until the dashboard exists, the root leads to GraphiQL, keeping the token.
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (url.pathname === '/' && request.method === 'GET') {
      response.writeHead(302, { location: `${GRAPHQL_PATH}${url.search}` }).end();
      return;
    }
    void yoga.handle(request, response);
  });

  const webSockets = new WebSocketServer({ noServer: true });
  const graphqlWs = useServer<Record<string, unknown>, { request: IncomingMessage }>(
    {
      onConnect: (ctx) => token === null || isAuthorized(ctx.connectionParams?.authorization, token),
      onSubscribe: async (ctx, _id, params) => {
        const { schema: envelopedSchema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        let document;
        try {
          document = parse(params.query);
        } catch (error) {
          return [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
        }
        const errors = validate(envelopedSchema, document);
        if (errors.length > 0) return errors;
        return {
          schema: envelopedSchema,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
      execute: (args) => (args.rootValue as { execute: typeof import('graphql').execute }).execute(args),
      subscribe: (args) => (args.rootValue as { subscribe: typeof import('graphql').subscribe }).subscribe(args),
    },
    webSockets,
  );

  httpServer.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
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
