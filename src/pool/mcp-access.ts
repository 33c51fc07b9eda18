/**
 * How a run's agent reaches agent-pool's MCP tools (`[agent] mcp = true`): the server
 * gives the pool an {@link McpAccess} once it listens, and each such run gets the endpoint
 * and a token scoped to its story in its environment, never the server's token.
 */

import { fileURLToPath } from 'node:url';

/** `agent-pool`'s own command line (src/ or dist/ alike are two folders below it): an agent's relay runs it. */
export const AGENT_POOL_BIN = fileURLToPath(new URL('../../bin/agent-pool.js', import.meta.url));

/** The variable that holds the URL of agent-pool's `/mcp` endpoint. */
export const MCP_URL_VARIABLE = 'AGENT_POOL_MCP_URL';

/** The variable that holds the story-scoped token (`agent-pool mcp` reads it too). */
export const MCP_TOKEN_VARIABLE = 'AGENT_POOL_TOKEN';

/** The name agent-pool's tools go by in an agent's MCP configuration (Claude: `mcp__agent-pool__start_story`). */
export const MCP_SERVER_NAME = 'agent-pool';

/** Where one run reaches the tools, and with which token. */
export interface McpEndpoint {
  /** `http://HOST:PORT/mcp`. */
  url: string;
  /** A token scoped to the run's story, valid while the run is PENDING or RUNNING. */
  token: string;
}

/** What the server offers the pool's runs. */
export interface McpAccess {
  endpoint(storyId: string, run: number): McpEndpoint;
}

/** The variables a run with `mcp = true` gets. */
export function mcpEnvironment(endpoint: McpEndpoint): Record<string, string> {
  return { [MCP_URL_VARIABLE]: endpoint.url, [MCP_TOKEN_VARIABLE]: endpoint.token };
}
