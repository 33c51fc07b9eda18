import { existsSync } from 'node:fs';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { describeError } from '../errors.js';
import { MCP_TOKEN_VARIABLE } from '../pool/mcp-access.js';
import { MCP_PATH } from '../server/mcp-endpoint.js';
import { readServerInfo, serverInfoFile } from '../server/server-info.js';
import { readTokenFile, TokenFileError, tokenFile } from '../server/token.js';
import { NotAGitRepositoryError, resolveProjectRoot } from '../worktree/project.js';
import { ServeError } from './serve-error.js';

/** The options of `agent-pool mcp`. */
export interface McpCommandOptions {
  /** The printed URL, the base URL or the `/mcp` URL; default: `.agent-pool/server.json`. */
  url: string | undefined;
  /** The directory to find the project in. */
  project: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The `/mcp` URL of what `--url` was given (`http://HOST:PORT/graphql?token=…` as `serve`
 * prints it, `http://HOST:PORT`, or `http://HOST:PORT/mcp`), and the token it carries, if any.
 * @throws ServeError for anything else.
 */
export function mcpUrlOf(text: string): { url: URL; token: string | undefined } {
  let given: URL;
  try {
    given = new URL(text);
  } catch {
    given = new URL('invalid:');
  }
  if ((given.protocol !== 'http:' && given.protocol !== 'https:') || !['/', '/graphql', '/graphql/', MCP_PATH, `${MCP_PATH}/`].includes(given.pathname)) {
    throw new ServeError(
      `--url ${JSON.stringify(text)} is not agent-pool's address: give the URL agent-pool serve printed, http://HOST:PORT, or http://HOST:PORT${MCP_PATH}`,
    );
  }
  return { url: new URL(MCP_PATH, given.origin), token: given.searchParams.get('token') ?? undefined };
}

/** Where the relay goes, and with which token: `--url`, else the project's server.json; the token from the environment, the URL or the project's token file. */
async function target(options: McpCommandOptions): Promise<{ url: URL; token: string | undefined }> {
  let projectRoot: string | undefined;
  try {
    projectRoot = await resolveProjectRoot(options.project);
  } catch (error) {
    // With --url the project only gives the token file.
    if (!(error instanceof NotAGitRepositoryError) || options.url === undefined) throw error;
  }
  let found: { url: URL; token: string | undefined };
  if (options.url !== undefined) found = mcpUrlOf(options.url);
  else {
    const info = readServerInfo(projectRoot!);
    if (!info) {
      throw new ServeError(
        `no agent-pool server is running for ${projectRoot} (${serverInfoFile(projectRoot!)} is missing): start one there with agent-pool serve, or pass --url`,
      );
    }
    found = { url: new URL(info.mcpUrl), token: undefined };
  }
  const fromEnvironment = options.env[MCP_TOKEN_VARIABLE]?.trim() || undefined;
  const file = projectRoot === undefined ? undefined : tokenFile(projectRoot);
  let fromFile: string | undefined;
  try {
    fromFile = file !== undefined && existsSync(file) ? readTokenFile(file) : undefined;
  } catch (error) {
    if (error instanceof TokenFileError) throw new ServeError(error.message);
    throw error;
  }
  return { url: found.url, token: fromEnvironment ?? found.token ?? fromFile };
}

/**
 * `agent-pool mcp`: relays MCP between stdio (for clients that start their servers, such as
 * Claude Code's `claude mcp add`) and the running server's `/mcp`, message by message. A
 * request the server cannot be asked (down, or the token refused) is answered with a
 * JSON-RPC error that says so, so that the client never waits. Ends when stdin ends.
 * @throws ServeError (exit 2) when there is no server to relay to.
 */
export async function mcpCommand(options: McpCommandOptions): Promise<number> {
  const { url, token } = await target(options);
  const remote = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } },
  });
  const local = new StdioServerTransport();
  const warn = (message: string): void => {
    process.stderr.write(`agent-pool mcp: ${message}\n`);
  };
  remote.onmessage = (message) => {
    local.send(message).catch((error: unknown) => warn(`could not write to stdout: ${describeError(error)}`));
  };
  remote.onerror = (error) => warn(describeError(error));
  local.onerror = (error) => warn(`a message on stdin could not be read: ${describeError(error)}`);
  local.onmessage = (message: JSONRPCMessage) => {
    remote.send(message).catch((error: unknown) => {
      const why = `agent-pool at ${url.href} could not be asked: ${describeError(error)}`;
      warn(why);
      if ('id' in message && 'method' in message) {
        void local.send({ jsonrpc: '2.0', id: message.id, error: { code: -32000, message: why } }).catch(() => {});
      }
    });
  };
  const ended = new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
    local.onclose = resolve;
  });
  await remote.start();
  await local.start();
  await ended;
  await local.close();
  await remote.close();
  return 0;
}
