import { existsSync } from 'node:fs';
import path from 'node:path';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { describeError } from '../errors.js';
import { MCP_TOKEN_VARIABLE, MCP_URL_VARIABLE } from '../pool/mcp-access.js';
import { MCP_PATH } from '../server/mcp-endpoint.js';
import { MAX_WAIT_SECONDS } from '../server/mcp-tools.js';
import { readServerInfo, serverInfoFile } from '../server/server-info.js';
import { readTokenFile, TokenFileError, tokenFile } from '../server/token.js';
import { NotAGitRepositoryError, resolveProjectRoot } from '../worktree/project.js';
import { plumbingGit } from '../worktree/safe-git.js';
import { ServeError } from './serve-error.js';

/** How long the requests in flight when stdin ends are waited for: the longest wait_story, and some. */
const DRAIN_MS = (MAX_WAIT_SECONDS + 10) * 1000;

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
export function mcpUrlOf(text: string, source = '--url'): { url: URL; token: string | undefined } {
  let given: URL;
  try {
    given = new URL(text);
  } catch {
    given = new URL('invalid:');
  }
  if ((given.protocol !== 'http:' && given.protocol !== 'https:') || !['/', '/graphql', '/graphql/', MCP_PATH, `${MCP_PATH}/`].includes(given.pathname)) {
    throw new ServeError(
      `${source} ${JSON.stringify(text)} is not agent-pool's address: give the URL agent-pool serve printed, http://HOST:PORT, or http://HOST:PORT${MCP_PATH}`,
    );
  }
  return { url: new URL(MCP_PATH, given.origin), token: given.searchParams.get('token') ?? undefined };
}

/**
 * The work tree whose server to reach from `dir`: the one `dir` is in, if a server of its
 * own runs there (it has a server.json); else the project's main work tree, so that from a
 * story's worktree (an agent's working directory) it finds the project's server.
 */
async function serverWorkTree(dir: string): Promise<string> {
  const root = await resolveProjectRoot(dir);
  if (readServerInfo(root)) return root;
  const commonDir = (await plumbingGit(root).revparse(['--path-format=absolute', '--git-common-dir'])).trim();
  return path.basename(commonDir) === '.git' ? path.dirname(commonDir) : root;
}

/** Whether a process with this pid runs (a server that crashed left its server.json). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Where the relay goes, and with which token: `--url`, else `AGENT_POOL_MCP_URL` (a story's
 * agent with `mcp = true` has it), else the project's server.json; the token from
 * `AGENT_POOL_TOKEN`, the URL or the project's token file.
 */
async function target(options: McpCommandOptions): Promise<{ url: URL; token: string | undefined }> {
  const fromVariable = options.env[MCP_URL_VARIABLE]?.trim() || undefined;
  const given = options.url ?? fromVariable;
  let projectRoot: string | undefined;
  try {
    projectRoot = await serverWorkTree(options.project);
  } catch (error) {
    // Given an address, the project only gives the token file.
    if (!(error instanceof NotAGitRepositoryError) || given === undefined) throw error;
  }
  let found: { url: URL; token: string | undefined };
  if (given !== undefined) found = mcpUrlOf(given, options.url === undefined ? MCP_URL_VARIABLE : '--url');
  else {
    const info = readServerInfo(projectRoot!);
    if (!info || !isRunning(info.pid)) {
      throw new ServeError(
        `no agent-pool server is running for ${projectRoot} (${serverInfoFile(projectRoot!)} is ${info ? `stale: pid ${info.pid} is gone` : 'missing'}): ` +
          'start one there with agent-pool serve, or pass --url',
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
  let closing = false;
  // Closing aborts the transport's own requests: nothing to warn of then.
  remote.onerror = (error) => closing || warn(describeError(error));
  local.onerror = (error) => warn(`a message on stdin could not be read: ${describeError(error)}`);
  // Requests sent and not yet answered: answered with an error if their POST fails, and
  // waited for (a while) when stdin ends, so that no client waits for ever.
  const pending = new Set<string | number>();
  let drained: (() => void) | undefined;
  const settle = (id: string | number): void => {
    pending.delete(id);
    if (pending.size === 0) drained?.();
  };
  remote.onmessage = (message) => {
    if ('id' in message && message.id !== undefined && !('method' in message)) settle(message.id);
    local.send(message).catch((error: unknown) => warn(`could not write to stdout: ${describeError(error)}`));
  };
  local.onmessage = (message: JSONRPCMessage) => {
    const request = 'id' in message && 'method' in message ? message.id : undefined;
    if (request !== undefined) pending.add(request);
    remote.send(message).catch((error: unknown) => {
      const why = `agent-pool at ${url.href} could not be asked: ${describeError(error)}`;
      warn(why);
      if (request === undefined || !pending.has(request)) return;
      settle(request);
      void local.send({ jsonrpc: '2.0', id: request, error: { code: -32000, message: why } }).catch(() => {});
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
  if (pending.size > 0) {
    await new Promise<void>((resolve) => {
      drained = resolve;
      setTimeout(resolve, DRAIN_MS).unref();
    });
  }
  closing = true;
  await local.close();
  await remote.close();
  return 0;
}
