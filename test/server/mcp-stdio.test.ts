import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describe, expect, it } from 'vitest';
import { BIN, runCli, serverUrl } from '../support/cli.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { callTool, connectMcp, type McpStory, toolError, waitForStatus } from '../support/mcp.js';
import { tempDir, tempRepo } from '../support/temp.js';

/** The environment of a user who set no token. */
function userEnv(): Record<string, string> {
  const env = Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  delete env.AGENT_POOL_TOKEN;
  return env;
}

/** A real `agent-pool serve` on a project whose agent is the fake one. */
async function serve(): Promise<{ root: string; url: URL; stop: () => Promise<number | null> }> {
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

  it('answers with an error that says why when the token is refused, and exits 2 when there is no server', async () => {
    const { url } = await serve();
    const elsewhere = tempDir();
    const refused = relay(elsewhere, ['--url', url.origin], { ...userEnv(), AGENT_POOL_TOKEN: 'not-the-token' });
    await expect(connectMcp(refused.transport)).rejects.toThrow(/could not be asked: .*a valid token is required/);
    expect(refused.stderr()).toMatch(/a valid token is required/);

    const noServer = runCli(['mcp'], { cwd: tempRepo(), env: userEnv() });
    expect(await noServer.exited).toBe(2);
    expect(noServer.stderr()).toMatch(/no agent-pool server is running for .*server\.json is missing\): start one there with agent-pool serve, or pass --url/);
    const badUrl = runCli(['mcp', '--url', 'ftp://example.com/x'], { cwd: elsewhere, env: userEnv() });
    expect(await badUrl.exited).toBe(2);
    expect(badUrl.stderr()).toMatch(/--url "ftp:\/\/example.com\/x" is not agent-pool's address/);
  });
});
