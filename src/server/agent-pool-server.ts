import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { GraphQLError } from 'graphql';
import { createYoga } from 'graphql-yoga';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { WebSocketServer } from 'ws';
import { AgentPoolError } from '../errors.js';
import { type Logger, oneLine, ThrottledLog } from '../logger.js';
import type { PoolApi } from '../pool/pool-api.js';
import { schema, type SchemaContext } from '../schema/index.js';
import { compiledSubscriptions } from './compiled-subscriptions.js';
import { DashboardFiles } from './dashboard-files.js';
import { GRAPHIQL_EXAMPLE, GraphiQLPage } from './graphiql-page.js';
import { serveGraphqlWs } from './graphql-ws-server.js';
import { operationLimitPlugins } from './operation-limits.js';
import { MAX_BODY_BYTES, type Refusal, RequestGuard } from './request-guard.js';
import { parseRequestTarget } from './request-target.js';
import { MCP_PATH, McpHttpEndpoint } from './mcp-endpoint.js';
import { isAuthorized } from './token.js';
import { envelopedOperations } from './yoga-over-ws.js';

/** The path of the GraphQL endpoint: HTTP, WebSocket and SSE. */
export const GRAPHQL_PATH = '/graphql';

/** The path that answers 200 while the server runs, without the token. */
export const HEALTH_PATH = '/health';

const UNAUTHENTICATED_MESSAGE =
  'a valid token is required: send "Authorization: Bearer <token>" (the token is in the URL agent-pool printed, and in .agent-pool/token)';

/** What the server is built from. */
export interface ServerOptions {
  pool: PoolApi;
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
  /** The origin clients on this machine use: a loopback address in place of 0.0.0.0 or ::. */
  readonly localOrigin: string;
  readonly port: number;
  /** Closes every connection and the listener. The pool is its owner's to dispose. */
  close(): Promise<void>;
}

/** An error response in GraphQL's shape. */
function errorBody(message: string, code: string): string {
  return JSON.stringify({ errors: [{ message, extensions: { code } }] });
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
      return withLocations(
        new GraphQLError(original.message, {
          nodes: graphQLError?.nodes,
          path: graphQLError?.path,
          extensions: { ...original.extensions, code: original.code },
        }),
        graphQLError,
      );
    }
    if (original instanceof GraphQLError) return original;
    logger.error('unexpected error in a GraphQL operation', original);
    return withLocations(
      new GraphQLError(message, {
        nodes: graphQLError?.nodes,
        path: graphQLError?.path,
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      }),
      graphQLError,
    );
  };
}

/**
 * `masked` with the locations of the error it replaces: a compiled subscription's errors
 * (src/server/compiled-subscriptions.ts) carry locations but not the nodes they come from.
 */
function withLocations(masked: GraphQLError, replaced: GraphQLError | undefined): GraphQLError {
  if (!masked.locations && replaced?.locations) (masked as { locations?: unknown }).locations = replaced.locations;
  return masked;
}

/** A client's mistake as yoga reports it, in one line: its first line (the message), without the query excerpt. */
function clientMistake(args: unknown[]): string {
  const text = args.map((arg) => (arg instanceof Error ? arg.message : String(arg))).join(' ');
  return `a client's request was refused: ${text.split('\n', 1)[0]}`;
}

/** The loopback address of each wildcard one. */
const WILDCARD_HOSTS: Readonly<Record<string, string>> = { '0.0.0.0': '127.0.0.1', '::': '::1', '': '127.0.0.1' };

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

  const clientErrors = new ThrottledLog(logger);
  const graphiql = new GraphiQLPage({
    title: 'agent-pool GraphiQL',
    endpoint: GRAPHQL_PATH,
    subscriptionsProtocol: 'SSE',
    defaultQuery: GRAPHIQL_EXAMPLE,
  });

  const yoga = createYoga<Record<string, unknown>, SchemaContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    // The server itself serves GraphiQL and /health (see route below).
    graphiql: false,
    // CORS stays off unless origins are allowed: the server's own pages need none.
    cors: corsOrigins.length === 0 ? false : { origin: corsOrigins, methods: ['GET', 'POST'], allowedHeaders: ['authorization', 'content-type', 'accept'] },
    // Over HTTP the request's signal aborts when the client leaves; over WebSocket, the socket's.
    context: (initial) => ({
      pool,
      signal: (initial.signal as AbortSignal | undefined) ?? (initial.request as Request | undefined)?.signal,
    }),
    maskedErrors: { maskError: maskError(logger) },
    logging: {
      debug: () => {},
      info: () => {},
      // What yoga reports is a client's mistake (a refused query, an unknown story): one line at debug,
      // without the query excerpt yoga adds. The server's own failures are logged by maskError.
      warn: (...args: unknown[]) => logger.debug(clientMistake(args)),
      error: (...args: unknown[]) => logger.debug(clientMistake(args)),
    },
    plugins: [
      // A plain HTML form cannot set these headers, so it cannot post an operation.
      useCSRFPrevention({ requestHeaders: ['authorization', 'x-graphql-yoga-csrf'] }),
      ...operationLimitPlugins(),
      compiledSubscriptions(logger),
    ],
  });

  const mcp = new McpHttpEndpoint({ pool, token, logger });

  const answer = (response: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void => {
    response
      .writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers })
      .end(errorBody(message, code));
  };
  const refuse = (response: ServerResponse, refusal: Refusal): void => {
    answer(response, refusal.status, refusal.status === 403 ? 'FORBIDDEN' : 'BAD_REQUEST', refusal.message, { connection: 'close' });
  };

  /**
   * Deny by default: every request is routed here on its exact path, and only
   * `/graphql` reaches yoga, with the token (or as a CORS preflight); `/mcp` checks its own
   * tokens (the server's, or a story's agent's). GraphiQL's page,
   * `/health` and the dashboard's files hold no data and load without it; any other
   * path is 404, whatever yoga would have made of it.
   */
  const route = (request: IncomingMessage, response: ServerResponse): void => {
    const target = parseRequestTarget(request.url);
    if (!target) {
      answer(response, 400, 'BAD_REQUEST', 'the request target must be a path such as /graphql', { connection: 'close' });
      return;
    }
    const refusal = guard.checkOrigin(request.headers) ?? guard.checkBody(request.method, request.headers);
    if (refusal) {
      refuse(response, refusal);
      return;
    }
    if (target.pathname === GRAPHQL_PATH) {
      if (GraphiQLPage.wanted(request)) {
        graphiql.serve(response).catch((error: unknown) => {
          logger.error('GraphiQL could not be rendered', error);
          if (!response.headersSent) answer(response, 500, 'INTERNAL_SERVER_ERROR', 'GraphiQL could not be rendered');
        });
        return;
      }
      if (request.method !== 'OPTIONS' && token !== null && !isAuthorized(request.headers.authorization, token)) {
        answer(response, 401, 'UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE, { 'www-authenticate': 'Bearer' });
        return;
      }
      // yoga answers at once or later (a MaybePromise): both ways, a failure is logged, never thrown.
      (async () => yoga.handle(request, response))().catch((error: unknown) => {
        logger.error('a GraphQL request failed', error);
        if (!response.headersSent) answer(response, 500, 'INTERNAL_SERVER_ERROR', 'the request failed');
        else response.destroy();
      });
      return;
    }
    if (target.pathname === MCP_PATH) {
      mcp.handle(request, response);
      return;
    }
    if (target.pathname === HEALTH_PATH && (request.method === 'GET' || request.method === 'HEAD')) {
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end('ok\n');
      return;
    }
    if (dashboard.serve(target.pathname, request, response)) return;
    answer(response, 404, 'NOT_FOUND', `nothing is served at ${JSON.stringify(oneLine(target.pathname).slice(0, 200))}: GraphQL is at ${GRAPHQL_PATH}, the dashboard at /`);
  };

  const httpServer: Server = createServer(route);

  const webSockets = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
  const graphqlWs = serveGraphqlWs<Record<string, unknown>>(webSockets, {
    server: {
      onConnect: (ctx) => token === null || isAuthorized(ctx.connectionParams?.authorization, token),
      ...envelopedOperations(yoga),
    },
    logger,
    clientErrors,
  });

  httpServer.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node takes its own listener off a socket before 'upgrade'; ws adds one only inside
    // handleUpgrade: until then a peer's reset would be an unhandled 'error' event.
    socket.on('error', () => socket.destroy());
    const reject = (status: string, message = ''): void => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${message}`);
    };
    const target = parseRequestTarget(request.url);
    if (!target) {
      reject('400 Bad Request', 'the request target must be a path such as /graphql\n');
      return;
    }
    // A WebSocket is not bound by CORS: any page could open one, so its origin is checked here.
    const refusal = guard.checkOrigin(request.headers);
    if (refusal) {
      reject('403 Forbidden', `${refusal.message}\n`);
      return;
    }
    if (target.pathname !== GRAPHQL_PATH) {
      reject('404 Not Found');
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
  // Agents reach the tools on this machine: over loopback when the server listens on every address.
  const localOrigin = formatOrigin(WILDCARD_HOSTS[host] ?? host, port);
  mcp.url = `${localOrigin}${MCP_PATH}`;
  pool.offerMcp(mcp);

  return {
    origin: formatOrigin(host, port),
    localOrigin,
    port,
    async close() {
      mcp.close();
      for (const client of webSockets.clients) client.terminate();
      await graphqlWs.dispose();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await yoga.dispose();
    },
  };
}
