import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describe, expect, it } from 'vitest';
import { BIN, runCli, serverUrl, userEnv } from '../support/cli.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { callTool, connectMcp, type McpStory, toolError, waitForStatus } from '../support/mcp.js';
import { tempDir, tempRepo } from '../support/temp.js';

/** A real `agent-pool serve` on a project whose agent is the fake one. */
async function serve(): Promise<{ root: string; url: URL; stop: () => Promise<number | null>; kill: () => Promise<number | null> }> {
  const root = tempRepo();
  writeFakeAgentConfig(root);
  const cli = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
  const url = await serverUrl(cli);
  return {
    root,
    url,
    stop: async () => {
      cli.child.kill('SIGTERM');
      return cli.exited;
    },
    /** SIGKILL to the server and every agent of it (its process group). */
    kill: async () => {
      process.kill(-cli.child.pid!, 'SIGKILL');
      return cli.exited;
    },
  };
}

/** `agent-pool mcp <args>` as an MCP client starts it, with the SDK's stdio client. */
function relay(cwd: string, args: string[] = [], env: Record<string, string> = userEnv()) {
  const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, 'mcp', ...args], cwd, env, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { transport, stderr: () => stderr };
}

describe('agent-pool mcp (stdio)', () => {
  it('relays to the project\'s running server, found in .agent-pool/server.json with its token file', async () => {
    const { root, url, stop } = await serve();
    const info = JSON.parse(readFileSync(path.join(root, '.agent-pool', 'server.json'), 'utf8')) as Record<string, unknown>;
    expect(info).toMatchObject({ url: `${url.origin}/graphql`, mcpUrl: `${url.origin}/mcp`, dashboardUrl: `${url.origin}/` });
    // Its address, never its token.
    expect(JSON.stringify(info)).not.toContain(url.searchParams.get('token')!);

    const client = await connectMcp(relay(root).transport);
    expect((await client.listTools()).tools).toHaveLength(12);
    await callTool(client, 'start_story', { storyId: 'STDIO-1', prompt: 'say over stdio; result' });
    expect((await waitForStatus(client, 'STDIO-1', ['COMPLETED', 'FAILED'])).status).toBe('COMPLETED');
    const { events } = await callTool<{ events: Array<{ type: string; text: string }> }>(client, 'read_events', { storyId: 'STDIO-1' });
    expect(events).toContainEqual(expect.objectContaining({ type: 'output', text: 'over stdio' }));
    expect(await toolError(client, 'get_story', { storyId: 'NOPE' })).toMatch(/^AGENT_NOT_FOUND: /);
    // A slow one, stopped.
    await callTool(client, 'start_story', { storyId: 'STDIO-2', prompt: 'wait' });
    await waitForStatus(client, 'STDIO-2', ['RUNNING']);
    expect((await callTool<McpStory>(client, 'stop_story', { storyId: 'STDIO-2' })).status).toBe('STOPPED');

    // From a story's worktree (an agent's working directory) it finds the project's server too.
    const worktree = (await callTool<McpStory & { worktreePath: string }>(client, 'get_story', { storyId: 'STDIO-1' })).worktreePath;
    const fromWorktree = await connectMcp(relay(worktree).transport);
    expect((await callTool<{ stories: McpStory[] }>(fromWorktree, 'list_stories')).stories).toHaveLength(2);
    await fromWorktree.close();

    // The server removes the file when it stops.
    await client.close();
    expect(await stop()).toBe(0);
    expect(existsSync(path.join(root, '.agent-pool', 'server.json'))).toBe(false);
  });

  it('takes --url as serve printed it, as the base URL or as the /mcp URL, from anywhere', async () => {
    const { url } = await serve();
    const token = url.searchParams.get('token')!;
    const elsewhere = tempDir();
    for (const given of [url.href, url.origin, `${url.origin}/mcp`]) {
      const env = given === url.href ? userEnv() : { ...userEnv(), AGENT_POOL_TOKEN: token };
      const client = await connectMcp(relay(elsewhere, ['--url', given], env).transport);
      const { stories } = await callTool<{ stories: McpStory[] }>(client, 'list_stories');
      expect(stories, given).toEqual([]);
      await client.close();
    }
  });

  it('takes the address and token a story\'s agent has (AGENT_POOL_MCP_URL, AGENT_POOL_TOKEN)', async () => {
    const { url } = await serve();
    const env = { ...userEnv(), AGENT_POOL_MCP_URL: `${url.origin}/mcp`, AGENT_POOL_TOKEN: url.searchParams.get('token')! };
    const client = await connectMcp(relay(tempDir(), [], env).transport);
    expect((await callTool<{ stories: McpStory[] }>(client, 'list_stories')).stories).toEqual([]);
  });

  it('answers a request in flight with an error when the server goes away', async () => {
    const { root, url, kill } = await serve();
    const client = await connectMcp(relay(root).transport);
    await callTool(client, 'start_story', { storyId: 'GONE', prompt: 'wait' });
    await waitForStatus(client, 'GONE', ['RUNNING']);
    // A wait on a story that does not change: only the server's end can end it early. Whether
    // its POST is under way or refused when the server dies, the relay answers it.
    const waiting = client.callTool({ name: 'wait_story', arguments: { storyId: 'GONE', timeoutSeconds: 50 } }, undefined, { timeout: 90_000 });
    // Awaited from here on: the relay may answer before kill() returns.
    const refused = expect(waiting).rejects.toThrow(new RegExp(`agent-pool at ${url.origin}/mcp could not be asked`));
    await kill();
    await refused;
  });

  it('answers with an error that says why when the token is refused, and exits 2 when there is no server', async () => {
    const { url } = await serve();
    const elsewhere = tempDir();
    const refused = relay(elsewhere, ['--url', url.origin], { ...userEnv(), AGENT_POOL_TOKEN: 'not-the-token' });
    await expect(connectMcp(refused.transport)).rejects.toThrow(/could not be asked: .*a valid token is required/);
    expect(refused.stderr()).toMatch(/a valid token is required/);

    const noServer = runCli(['mcp'], { cwd: tempRepo(), env: userEnv() });
    expect(await noServer.exited).toBe(2);
    expect(noServer.stderr()).toMatch(/no agent-pool server is running for .*server\.json is missing\): start one there with agent-pool serve, or pass --url/);
    // A server that crashed left its file: the relay does not send the token to whatever has that port now.
    const crashed = tempRepo();
    mkdirSync(path.join(crashed, '.agent-pool'));
    writeFileSync(
      path.join(crashed, '.agent-pool', 'server.json'),
      JSON.stringify({ url: `${url.origin}/graphql`, mcpUrl: `${url.origin}/mcp`, dashboardUrl: `${url.origin}/`, pid: 2 ** 22 + 1, startedAt: '' }),
    );
    const stale = runCli(['mcp'], { cwd: crashed, env: userEnv() });
    expect(await stale.exited).toBe(2);
    expect(stale.stderr()).toMatch(/server\.json is stale: pid 4194305 is gone\): start one there with agent-pool serve/);
    const badUrl = runCli(['mcp', '--url', 'ftp://example.com/x'], { cwd: elsewhere, env: userEnv() });
    expect(await badUrl.exited).toBe(2);
    expect(badUrl.stderr()).toMatch(/--url "ftp:\/\/example.com\/x" is not agent-pool's address/);
  });
});
