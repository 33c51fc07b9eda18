import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Logger } from '../logger.js';
import type { PoolApi } from '../pool/pool-api.js';
import { isActive } from '../pool/events.js';
import type { McpAccess } from '../pool/mcp-access.js';
import { packageVersion } from '../version.js';
import { type McpCaller, serveTools } from './mcp-tools.js';
import { StoryTokens } from './story-tokens.js';
import { bearerToken, isAuthorized } from './token.js';

/** The path of the MCP endpoint (streamable HTTP). */
export const MCP_PATH = '/mcp';

const INSTRUCTIONS =
  'agent-pool runs coding agents on stories of one git project, each in its own git worktree and branch. ' +
  'Start one with start_story, follow it with wait_story (it returns when the story finishes or needs an answer) and read_events, ' +
  'answer its approvals with respond_to_approval or talk to it with send_message, then land its work with merge_story ' +
  'or create_pull_request, and archive_story when done. Errors start with a code (AGENT_NOT_FOUND: …) and say what to do.';

/** A JSON-RPC error answered over HTTP (no request id is known yet). */
function rpcError(response: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  response
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers })
    .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/**
 * agent-pool's tools over MCP's streamable HTTP transport, statelessly: each POST gets a
 * server and transport of its own, with the tools of its caller, so that nothing is kept
 * between requests (any server of a project can answer any of them). A caller is the
 * server's token (everything), or a story token (src/server/story-tokens.ts) whose run is
 * still PENDING or RUNNING (the stories below its story).
 */
export class McpHttpEndpoint implements McpAccess {
  readonly #pool: PoolApi;
  readonly #token: string | null;
  readonly #tokens: StoryTokens;
  readonly #logger: Logger;
  readonly #open = new Set<ServerResponse>();
  #warnedNoAuth = false;
  /** The URL runs reach it at, once the server listens. */
  url: string | undefined;

  constructor(options: { pool: PoolApi; token: string | null; logger: Logger }) {
    this.#pool = options.pool;
    this.#token = options.token;
    this.#tokens = new StoryTokens(options.token);
    this.#logger = options.logger;
  }

  /** {@link McpAccess}: where a run with `mcp = true` reaches the tools, and its token. */
  endpoint(storyId: string, run: number): { url: string; token: string } {
    if (this.url === undefined) throw new Error('the MCP endpoint is not listening yet');
    if (this.#token === null && !this.#warnedNoAuth) {
      this.#warnedNoAuth = true;
      this.#logger.warn('mcp = true with --no-auth: /mcp answers anyone without a token, so an agent that sends none is not held to its own stories');
    }
    return { url: this.url, token: this.#tokens.issue(storyId, run) };
  }

  /** Who is asking, from `Authorization`; undefined when nobody the endpoint knows. */
  caller(authorization: unknown): McpCaller | undefined {
    const presented = bearerToken(authorization);
    if (presented === undefined) return this.#token === null ? { kind: 'server' } : undefined;
    if (this.#token !== null && isAuthorized(authorization, this.#token)) return { kind: 'server' };
    const claim = this.#tokens.verify(presented);
    if (!claim) return this.#token === null ? { kind: 'server' } : undefined;
    // A story token counts while its run is the story's latest and has not ended.
    const latest = this.#pool.get(claim.storyId)?.runs.at(-1);
    if (!latest || latest.number !== claim.run || !isActive(latest.status)) return undefined;
    return { kind: 'story', storyId: claim.storyId };
  }

  /** Answers one request to {@link MCP_PATH}. */
  handle(request: IncomingMessage, response: ServerResponse): void {
    const caller = this.caller(request.headers.authorization);
    if (!caller) {
      rpcError(
        response,
        401,
        'a valid token is required: send "Authorization: Bearer <token>" (the server\'s token, in .agent-pool/token, or the token agent-pool gave a story\'s agent while its run lasts)',
        { 'www-authenticate': 'Bearer' },
      );
      return;
    }
    if (request.method !== 'POST') {
      // Stateless: no stream of the server's own (GET) and no session to end (DELETE).
      rpcError(response, 405, `${request.method ?? 'this method'} is not served here: MCP requests are POSTed to ${MCP_PATH}`, { allow: 'POST' });
      return;
    }
    this.#serve(request, response, caller).catch((error: unknown) => {
      this.#logger.error('an MCP request failed', error);
      if (!response.headersSent) rpcError(response, 500, 'the request failed');
      else response.destroy();
    });
  }

  async #serve(request: IncomingMessage, response: ServerResponse, caller: McpCaller): Promise<void> {
    const server = new Server({ name: 'agent-pool', version: packageVersion() }, { capabilities: { tools: {} }, instructions: INSTRUCTIONS });
    serveTools(server, { pool: this.#pool, caller, logger: this.#logger });
    // Each answer as one JSON body: a client (or the stdio relay) whose request was cut off
    // sees its POST fail, rather than a stream that ends without the answer.
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    this.#open.add(response);
    response.on('close', () => {
      this.#open.delete(response);
      void server.close().catch(() => {});
    });
    await server.connect(transport);
    await transport.handleRequest(request, response);
  }

  /** Ends the requests still open (a wait_story). */
  close(): void {
    for (const response of this.#open) response.destroy();
    this.#open.clear();
  }
}
