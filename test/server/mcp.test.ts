import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { callTool, type McpStory, mcpOverHttp, toolError, waitForStatus } from '../support/mcp.js';
import { openTcp, sendRaw } from '../support/raw-http.js';
import { startTestServer } from '../support/server.js';
import { git, tempDir } from '../support/temp.js';

const TOOLS = [
  'list_stories',
  'start_story',
  'continue_story',
  'get_story',
  'wait_story',
  'read_events',
  'send_message',
  'respond_to_approval',
  'stop_story',
  'merge_story',
  'create_pull_request',
  'archive_story',
];

/** An MCP initialize request, as a client POSTs it first. */
const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

function postMcp(origin: string, headers: Record<string, string> = {}, body = INITIALIZE, pathname = '/mcp'): Promise<Response> {
  return fetch(new URL(pathname, origin), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
  });
}

describe('MCP at /mcp', () => {
  it('refuses a request without the token or with a wrong one', async () => {
    const { server, token } = await startTestServer();
    for (const headers of [{} as Record<string, string>, { authorization: `Bearer ${token}x` }, { authorization: token }, { authorization: 'Bearer aps1.UzE.1.AAAA' }]) {
      const response = await postMcp(server.origin, headers);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
      expect((await response.json()).error.message).toMatch(/a valid token is required/);
    }
    // The SDK's client says so too.
    await expect(mcpOverHttp(server.origin, undefined)).rejects.toThrow(/a valid token is required/);
    // The honest twin: with the token the same request is answered.
    const answered = await postMcp(server.origin, { authorization: `Bearer ${token}` });
    expect(answered.status).toBe(200);
    expect(await answered.text()).toMatch(/"serverInfo":\{"name":"agent-pool"/);
  });

  it('serves /mcp alone, to POSTs, from its own origin', async () => {
    const { server, token } = await startTestServer();
    const authorization = `Bearer ${token}`;
    for (const pathname of ['/mcp/', '/mcp/x', '/MCP', '/mcp%2f']) {
      expect((await postMcp(server.origin, { authorization }, INITIALIZE, pathname)).status, pathname).toBe(404);
    }
    const get = await fetch(new URL('/mcp', server.origin), { headers: { authorization, accept: 'text/event-stream' } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    // A page of another origin, and a name rebound to this address, are refused before the token is looked at.
    expect((await postMcp(server.origin, { authorization, origin: 'https://evil.example' })).status).toBe(403);
    const rebound = await sendRaw(
      server.port,
      `POST /mcp HTTP/1.1\r\nHost: attacker.example:${server.port}\r\nAuthorization: ${authorization}\r\nContent-Type: application/json\r\n` +
        `Accept: application/json, text/event-stream\r\nContent-Length: ${INITIALIZE.length}\r\nConnection: close\r\n\r\n${INITIALIZE}`,
    );
    expect(rebound).toMatch(/^HTTP\/1\.1 403 /);
    expect((await postMcp(server.origin, { authorization, origin: server.origin })).status).toBe(200);
  });

  it('lets go of a wait whose client resets its connection, and answers the next one', async () => {
    const { server, token, pool } = await startTestServer();
    const admin = await mcpOverHttp(server.origin, token);
    await callTool(admin, 'start_story', { storyId: 'HELD', prompt: 'wait' });
    await waitForStatus(admin, 'HELD', ['RUNNING']);
    // Count the pool's change listeners: each wait_story holds one.
    const listen = pool.onAgentChange.bind(pool);
    let listening = 0;
    pool.onAgentChange = (listener) => {
      listening++;
      const off = listen(listener);
      return () => {
        listening--;
        off();
      };
    };
    const call = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'wait_story', arguments: { storyId: 'HELD', timeoutSeconds: 60 } } });
    const socket = await openTcp(server.port);
    socket.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
        `Accept: application/json, text/event-stream\r\nContent-Length: ${Buffer.byteLength(call)}\r\n\r\n${call}`,
    );
    await expect.poll(() => listening).toBe(1);
    socket.resetAndDestroy();
    await expect.poll(() => listening).toBe(0);
    // The honest twin: a wait that is not cut off returns when the story changes.
    const waiting = callTool<{ changed: boolean; story: McpStory }>(admin, 'wait_story', { storyId: 'HELD', timeoutSeconds: 60 });
    await expect.poll(() => listening).toBe(1);
    await callTool(admin, 'stop_story', { storyId: 'HELD' });
    expect(await waiting).toMatchObject({ changed: true, story: { status: 'STOPPED' } });
    expect(listening).toBe(0);
  });

  it('lists its tools, each with input and output schemas and a description', async () => {
    const { server, token } = await startTestServer();
    const client = await mcpOverHttp(server.origin, token);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([...TOOLS].sort());
    for (const tool of tools) {
      expect(tool.description!.length, tool.name).toBeGreaterThan(40);
      expect(tool.inputSchema.type).toBe('object');
      expect(tool.outputSchema?.type, tool.name).toBe('object');
    }
    const start = tools.find((tool) => tool.name === 'start_story')!;
    expect(start.inputSchema.required).toEqual(['storyId', 'prompt']);
    expect(client.getInstructions()).toMatch(/start_story/);
  });

  it('runs a story from start to COMPLETED, an ordinary story that GraphQL sees', async () => {
    const { server, token, request } = await startTestServer();
    const client = await mcpOverHttp(server.origin, token);
    const started = await callTool<McpStory>(client, 'start_story', {
      storyId: 'MCP-1',
      prompt: 'say hello from the agent; tool; tool-result; result',
      title: 'Started over MCP',
    });
    expect(started).toMatchObject({ storyId: 'MCP-1', title: 'Started over MCP', startedBy: null });
    expect(['PENDING', 'RUNNING']).toContain(started.status);

    const done = await waitForStatus(client, 'MCP-1', ['COMPLETED', 'FAILED']);
    expect(done).toMatchObject({ status: 'COMPLETED', costUsd: 0.0123, runs: 1, branch: 'story/MCP-1', error: null });

    const page = await callTool<{ events: Array<{ seq: number; type: string; text: string }>; more: boolean; nextAfterSeq: number; lastSeq: number }>(
      client,
      'read_events',
      { storyId: 'MCP-1', limit: 200 },
    );
    expect(page.more).toBe(false);
    expect(page.nextAfterSeq).toBe(page.lastSeq);
    expect(page.events.map((event) => event.type)).not.toContain('json');
    expect(page.events).toContainEqual(expect.objectContaining({ type: 'output', text: 'hello from the agent' }));
    expect(page.events).toContainEqual(expect.objectContaining({ type: 'tool_call' }));
    expect(page.events.at(-1)).toMatchObject({ type: 'done', text: 'COMPLETED (exit code 0)' });
    const seqs = page.events.map((event) => event.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));

    const story = await callTool<McpStory & { changes: unknown; landing: { aheadBy: number } }>(client, 'get_story', { storyId: 'MCP-1' });
    expect(story).toMatchObject({ status: 'COMPLETED', changes: { filesChanged: 0, files: [] }, landing: { aheadBy: 0, behindBy: 0, conflicts: [] } });

    const { stories } = await callTool<{ stories: McpStory[] }>(client, 'list_stories');
    expect(stories.map((s) => s.storyId)).toEqual(['MCP-1']);
    const graphql = await request<{ agents: Array<{ storyId: string; title: string; status: string; startedBy: string | null }> }>(
      '{ agents { storyId title status startedBy } }',
    );
    expect(graphql.data!.agents).toEqual([{ storyId: 'MCP-1', title: 'Started over MCP', status: 'COMPLETED', startedBy: null }]);
  });

  it('reads a long story in pages, each after the last', async () => {
    const { server, token } = await startTestServer();
    const client = await mcpOverHttp(server.origin, token);
    await callTool(client, 'start_story', { storyId: 'PAGES', prompt: 'flood 45; result' });
    await waitForStatus(client, 'PAGES', ['COMPLETED']);
    const texts: string[] = [];
    let afterSeq = 0;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(10);
      const page = await callTool<{ events: Array<{ seq: number; type: string; text: string }>; more: boolean; nextAfterSeq: number }>(
        client,
        'read_events',
        { storyId: 'PAGES', afterSeq, limit: 10 },
      );
      expect(page.events.length).toBeLessThanOrEqual(10);
      expect(page.events.every((event) => event.seq > afterSeq)).toBe(true);
      texts.push(...page.events.filter((event) => event.type === 'output').map((event) => event.text));
      afterSeq = page.nextAfterSeq;
      if (!page.more) break;
    }
    expect(texts).toHaveLength(45);
    expect(new Set(texts).size).toBe(45);
  });

  it('says where retention dropped events, and reads on from the oldest kept', async () => {
    const { server, token } = await startTestServer({ store: 'max_events_per_story = 100' });
    const client = await mcpOverHttp(server.origin, token);
    await callTool(client, 'start_story', { storyId: 'KEPT', prompt: 'flood 300; result' });
    await waitForStatus(client, 'KEPT', ['COMPLETED']);
    const page = await callTool<{ events: Array<{ seq: number }>; droppedBefore: number; more: boolean }>(client, 'read_events', {
      storyId: 'KEPT',
      limit: 200,
    });
    expect(page.droppedBefore).toBeGreaterThan(1);
    expect(page.events[0]!.seq).toBeGreaterThanOrEqual(page.droppedBefore);
    expect(page.more).toBe(false);
  });

  it('stops a slow story; wait_story returns at its timeout when nothing changes', async () => {
    const { server, token, pool } = await startTestServer();
    const client = await mcpOverHttp(server.origin, token);
    await callTool(client, 'start_story', { storyId: 'SLOW', prompt: 'say working; wait' });
    await waitForStatus(client, 'SLOW', ['RUNNING']);
    const began = Date.now();
    const quiet = await callTool<{ changed: boolean; story: McpStory }>(client, 'wait_story', { storyId: 'SLOW', timeoutSeconds: 0.5 });
    expect(quiet).toMatchObject({ changed: false, story: { status: 'RUNNING' } });
    expect(Date.now() - began).toBeGreaterThanOrEqual(450);

    // A wait in flight returns when the stop changes the status.
    const waiting = callTool<{ changed: boolean; story: McpStory }>(client, 'wait_story', { storyId: 'SLOW', timeoutSeconds: 60 });
    const stopped = await callTool<McpStory>(client, 'stop_story', { storyId: 'SLOW' });
    expect(stopped.status).toBe('STOPPED');
    expect(await waiting).toMatchObject({ changed: true, story: { status: 'STOPPED' } });
    expect(pool.get('SLOW')!.pid).toBeUndefined();
  });

  it('answers an unknown story, a bad id and a refused operation with tool errors that carry the code', async () => {
    const { server, token } = await startTestServer();
    const client = await mcpOverHttp(server.origin, token);
    // The pool's own message, its operations named as the tools are.
    expect(await toolError(client, 'get_story', { storyId: 'NOPE' })).toBe('AGENT_NOT_FOUND: story NOPE has never been started: start it with start_story first');
    expect(await toolError(client, 'read_events', { storyId: 'a..b' })).toMatch(/^INVALID_STORY_ID: /);
    expect(await toolError(client, 'stop_story', { storyId: 'NOPE' })).toMatch(/^AGENT_NOT_FOUND: /);
    expect(await toolError(client, 'start_story', { storyId: 'X', prompt: 'hi', agent: 'missing' })).toMatch(/^UNKNOWN_AGENT: /);
    expect(await toolError(client, 'wait_story', { storyId: 'NOPE', timeoutSeconds: 61 })).toMatch(/^INVALID_ARGUMENT: timeoutSeconds: .*60/);
    expect(await toolError(client, 'start_story', { storyId: 'X' })).toMatch(/^INVALID_ARGUMENT: prompt: /);
    await expect(client.callTool({ name: 'no_such_tool', arguments: {} })).rejects.toThrow(/there is no tool "no_such_tool": the tools are list_stories, /);
    await callTool(client, 'start_story', { storyId: 'BUSY', prompt: 'wait' });
    expect(await toolError(client, 'start_story', { storyId: 'BUSY', prompt: 'again' })).toMatch(/^AGENT_ALREADY_RUNNING: /);
    expect(await toolError(client, 'merge_story', { storyId: 'BUSY' })).toMatch(/^AGENT_ALREADY_RUNNING: /);
    expect(await toolError(client, 'respond_to_approval', { storyId: 'BUSY', requestId: 'r1', allow: true })).toMatch(/^AGENT_NOT_INTERACTIVE: /);
    expect(await toolError(client, 'send_message', { storyId: 'BUSY', text: 'more' })).toMatch(/^AGENT_NOT_INTERACTIVE: /);
    expect(await toolError(client, 'continue_story', { storyId: 'BUSY', prompt: 'more' })).toMatch(/^AGENT_ALREADY_RUNNING: /);
  });
});

describe('a story\'s agent with mcp = true', () => {
  /** The environment the agent of `storyId` recorded (fake agent `record`). */
  async function agentEnvironment(file: string): Promise<Record<string, string>> {
    await expect.poll(() => { try { return readFileSync(file, 'utf8').length > 0; } catch { return false; } }).toBe(true);
    return (JSON.parse(readFileSync(file, 'utf8')) as { env: Record<string, string> }).env;
  }

  it('gets a token scoped to its story: it starts, reads and stops stories of its own, and nothing above', async () => {
    const { server, token, pool, root } = await startTestServer({ agent: 'mcp = true' });
    const record = path.join(tempDir(), 'env.json');
    const admin = await mcpOverHttp(server.origin, token);
    await callTool(admin, 'start_story', { storyId: 'OTHER', prompt: 'wait' });
    await callTool(admin, 'start_story', { storyId: 'LEAD', prompt: `record ${record}; wait` });
    const env = await agentEnvironment(record);

    // The agent has the endpoint and a token of its own, and the server's token nowhere.
    expect(env.AGENT_POOL_MCP_URL).toBe(`${server.origin}/mcp`);
    expect(env.AGENT_POOL_TOKEN).toMatch(/^aps1\./);
    expect(Object.values(env).some((value) => value.includes(token))).toBe(false);
    const agentToken = env.AGENT_POOL_TOKEN!;

    const agent = await mcpOverHttp(server.origin, agentToken);
    expect((await callTool<{ stories: McpStory[] }>(agent, 'list_stories')).stories).toEqual([]);
    const child = await callTool<McpStory>(agent, 'start_story', { storyId: 'LEAD-1', prompt: 'say from the child; result' });
    expect(child.startedBy).toBe('LEAD');
    expect((await waitForStatus(agent, 'LEAD-1', ['COMPLETED'])).status).toBe('COMPLETED');
    const events = await callTool<{ events: Array<{ text: string }> }>(agent, 'read_events', { storyId: 'LEAD-1' });
    expect(events.events.map((event) => event.text)).toContain('from the child');
    expect((await callTool<{ stories: McpStory[] }>(agent, 'list_stories')).stories.map((s) => s.storyId)).toEqual(['LEAD-1']);
    // A child that drives agents too: its own stories are its parent's as well, its parent and siblings are not its.
    const childRecord = path.join(tempDir(), 'env.json');
    await callTool(agent, 'start_story', { storyId: 'LEAD-2', prompt: `record ${childRecord}; wait` });
    const childToken = (await agentEnvironment(childRecord)).AGENT_POOL_TOKEN!;
    expect(childToken).not.toBe(agentToken);
    const child2 = await mcpOverHttp(server.origin, childToken);
    expect((await callTool<McpStory>(child2, 'start_story', { storyId: 'LEAD-2-a', prompt: 'result' })).startedBy).toBe('LEAD-2');
    expect((await callTool<McpStory>(agent, 'get_story', { storyId: 'LEAD-2-a' })).startedBy).toBe('LEAD-2');
    for (const above of ['LEAD', 'LEAD-1', 'LEAD-2']) {
      expect(await toolError(child2, 'get_story', { storyId: above })).toMatch(/^FORBIDDEN: this token belongs to the agent of story LEAD-2,/);
    }
    await callTool(agent, 'stop_story', { storyId: 'LEAD-2' });
    await callTool(admin, 'start_story', { storyId: 'STRAY', prompt: 'result' });

    // A person's branch that has a story's name is not a new story to take up.
    git(root, 'branch', 'story/hotfix');
    expect(await toolError(agent, 'start_story', { storyId: 'hotfix', prompt: 'land it' })).toMatch(
      /^FORBIDDEN: git already has a branch or worktree for story hotfix, which agent-pool has no record of/,
    );
    expect(pool.get('hotfix')).toBeUndefined();
    // Its stories land on any branch but a story's not below it; main goes as far as the merge's own checks.
    expect(await toolError(agent, 'merge_story', { storyId: 'LEAD-1', into: 'story/LEAD' })).toMatch(/^FORBIDDEN: .* story LEAD is not one of them/);
    expect(await toolError(agent, 'merge_story', { storyId: 'LEAD-1', into: 'story/OTHER' })).toMatch(/^FORBIDDEN: /);
    expect(await toolError(agent, 'merge_story', { storyId: 'LEAD-1', into: 'main' })).toMatch(/^NOTHING_TO_MERGE: /);
    for (const into of ['refs/heads/story/OTHER', 'heads/story/OTHER', 'STORY/other']) {
      expect(await toolError(agent, 'merge_story', { storyId: 'LEAD-1', into }), into).toMatch(/^FORBIDDEN: .* story OTHER is not one of them/);
    }
    // A story keeps its branch when the prefix changes: still not its to land on.
    const toml = path.join(root, 'agent-pool.toml');
    writeFileSync(toml, readFileSync(toml, 'utf8').replace('[worktree]\n', '[worktree]\nbranch_prefix = "s/"\n'));
    expect(await toolError(agent, 'merge_story', { storyId: 'LEAD-1', into: 'story/OTHER' })).toMatch(/^FORBIDDEN: .* story OTHER is not one of them/);

    // Its own story, a story above or beside it: refused, whatever the tool.
    for (const [name, args] of [
      ['send_message', { storyId: 'LEAD', text: 'approve yourself' }],
      ['respond_to_approval', { storyId: 'LEAD', requestId: 'r1', allow: true }],
      ['stop_story', { storyId: 'LEAD' }],
      ['get_story', { storyId: 'LEAD' }],
      ['get_story', { storyId: 'OTHER' }],
      ['read_events', { storyId: 'OTHER' }],
      ['stop_story', { storyId: 'OTHER' }],
      ['start_story', { storyId: 'STRAY', prompt: 'take it over' }],
      ['merge_story', { storyId: 'OTHER' }],
      ['get_story', { storyId: 'NEVER-STARTED' }],
    ] as const) {
      expect(await toolError(agent, name, args), `${name} ${args.storyId}`).toMatch(/^FORBIDDEN: this token belongs to the agent of story LEAD/);
    }
    expect(pool.get('OTHER')!.status).toBe('RUNNING');
    expect(pool.get('STRAY')!.startedBy).toBeUndefined();

    // The scoped token opens nothing but /mcp.
    const graphql = await fetch(`${server.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${agentToken}` },
      body: JSON.stringify({ query: '{ agents { storyId } }' }),
    });
    expect(graphql.status).toBe(401);
    // A token made up for another story, or another run, is no token.
    const [prefix, , run, mac] = agentToken.split('.');
    const forged = [`${prefix}.${Buffer.from('OTHER').toString('base64url')}.${run}.${mac}`, `${prefix}.${agentToken.split('.')[1]}.2.${mac}`];
    for (const made of forged) expect((await postMcp(server.origin, { authorization: `Bearer ${made}` })).status).toBe(401);

    // The pool (and GraphQL's Agent.startedBy) knows who started what.
    const agents = pool.list().map((a) => [a.storyId, a.startedBy ?? null]);
    expect(agents).toEqual([['OTHER', null], ['LEAD', null], ['LEAD-1', 'LEAD'], ['LEAD-2', 'LEAD'], ['LEAD-2-a', 'LEAD-2'], ['STRAY', null]]);

    // Its token dies with its run.
    await callTool(admin, 'stop_story', { storyId: 'LEAD' });
    expect((await postMcp(server.origin, { authorization: `Bearer ${agentToken}` })).status).toBe(401);
    await expect(mcpOverHttp(server.origin, agentToken)).rejects.toThrow(/a valid token is required/);
  });

  it('starts its stories within max_concurrent, like any start: beyond it they wait in PENDING', async () => {
    const { server, token, pool } = await startTestServer({ agent: 'mcp = true', pool: 'stop_grace_seconds = 0.5\nmax_concurrent = 1' });
    const record = path.join(tempDir(), 'env.json');
    const admin = await mcpOverHttp(server.origin, token);
    await callTool(admin, 'start_story', { storyId: 'LEAD', prompt: `record ${record}; wait` });
    const agent = await mcpOverHttp(server.origin, (await agentEnvironment(record)).AGENT_POOL_TOKEN!);
    expect((await callTool<McpStory>(agent, 'start_story', { storyId: 'LEAD-1', prompt: 'say done; result' })).status).toBe('PENDING');
    expect(await callTool(agent, 'wait_story', { storyId: 'LEAD-1', timeoutSeconds: 0.5 })).toMatchObject({ changed: false, story: { status: 'PENDING' } });
    // Its slot freed, the child runs.
    await callTool(admin, 'stop_story', { storyId: 'LEAD' });
    await expect.poll(() => pool.get('LEAD-1')?.status).toBe('COMPLETED');
  });

  it('gives nothing to an agent whose profile does not ask for it', async () => {
    const { pool } = await startTestServer();
    const record = path.join(tempDir(), 'env.json');
    pool.start('PLAIN', `record ${record}; result`);
    const env = await agentEnvironment(record);
    expect(env.AGENT_POOL_TOKEN).toBeUndefined();
    expect(env.AGENT_POOL_MCP_URL).toBeUndefined();
  });
});
