import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createClient as createSseClient } from 'graphql-sse';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import WebSocket from 'ws';
import { printSdl } from '../../src/schema/index.js';
import { isAlive, readUntil } from '../support/events.js';
import {
  AGENT_EVENTS,
  type EventResult,
  isTerminalResult,
  readEvents,
  startTestServer,
  type TestServer,
} from '../support/server.js';

const START = `mutation ($storyId: ID!, $prompt: String) {
  startAgent(storyId: $storyId, prompt: $prompt) { storyId status lastSeq }
}`;
const STOP = `mutation ($storyId: ID!) {
  stopAgent(storyId: $storyId) { storyId status pid error }
}`;
const AGENT = `query ($storyId: ID!) {
  agent(storyId: $storyId) {
    storyId status sessionId worktreePath branch pid exitCode error costUsd startedAt finishedAt lastSeq
  }
}`;

function subscribe(server: TestServer, storyId: string, afterSeq?: number) {
  return server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId, afterSeq } });
}

function sseClient(server: TestServer) {
  const client = createSseClient({
    url: server.url,
    headers: { authorization: `Bearer ${server.token}` },
    retryAttempts: 0,
  });
  onTestFinished(() => client.dispose());
  return client;
}

const names = (events: EventResult[]) =>
  events.map((event) => (event.__typename === 'AgentStatusEvent' ? event.status : event.__typename));
const seqs = (events: EventResult[]) => events.map((event) => event.seq);

describe('GraphQL over HTTP and WebSocket', () => {
  it('shows a whole run live, from startAgent to the terminal event, to a subscriber opened before the start', async () => {
    const server = await startTestServer();
    const events = subscribe(server, 'S-1');
    const started = await server.request(START, { storyId: 'S-1', prompt: 'say hello; tool' });
    expect(started).toEqual({ data: { startAgent: { storyId: 'S-1', status: 'PENDING', lastSeq: 1 } } });

    const seen = await readEvents(events, isTerminalResult);
    expect(names(seen)).toEqual([
      'PENDING',
      'RUNNING',
      'AgentJsonEvent',
      'AgentJsonEvent',
      'AgentOutputEvent',
      'AgentJsonEvent',
      'AgentToolCallEvent',
      'AgentJsonEvent',
      'AgentUsageEvent',
      'COMPLETED',
      'AgentDoneEvent',
    ]);
    expect(seqs(seen)).toEqual(seen.map((_, i) => i + 1));
    expect(seen.every((event) => event.storyId === 'S-1' && event.run === 1)).toBe(true);
    expect(new Date(seen[0]!.at).toISOString()).toBe(seen[0]!.at);
    const init = seen[2]!.data as { type: string; subtype: string; session_id: string };
    expect(init).toMatchObject({ type: 'system', subtype: 'init' });
    expect(seen[4]).toMatchObject({ text: 'hello' });
    expect(seen.at(-1)).toMatchObject({ sessionId: init.session_id, exitCode: 0 });

    const { data } = await server.request<{ agent: Record<string, unknown> }>(AGENT, { storyId: 'S-1' });
    expect(data!.agent).toMatchObject({
      storyId: 'S-1',
      status: 'COMPLETED',
      sessionId: init.session_id,
      worktreePath: path.join(server.root, '.agent-pool', 'worktrees', 'S-1'),
      branch: 'story/S-1',
      pid: null,
      exitCode: 0,
      error: null,
      costUsd: 0.0123,
      lastSeq: seen.length,
    });
    expect(Date.parse(data!.agent.finishedAt as string)).toBeGreaterThanOrEqual(Date.parse(data!.agent.startedAt as string));
  });

  it('gives a late subscriber with afterSeq the rest, and two subscribers the same sequence', async () => {
    const server = await startTestServer();
    const first = subscribe(server, 'S-1');
    const second = subscribe(server, 'S-1');
    await server.request(START, { storyId: 'S-1', prompt: 'say one; say two; say three' });
    const a = await readEvents(first, isTerminalResult);
    const b = await readEvents(second, isTerminalResult);
    expect(b).toEqual(a);

    const late = await readEvents(subscribe(server, 'S-1', 4), isTerminalResult);
    expect(late).toEqual(a.slice(4));
  });

  it('lists agents, optionally by status, and returns null for a story never started', async () => {
    const server = await startTestServer();
    const events = subscribe(server, 'done-1');
    await server.request(START, { storyId: 'done-1', prompt: 'say hi' });
    await readEvents(events, isTerminalResult);
    await server.request(START, { storyId: 'waiting-1', prompt: 'wait' });

    const all = await server.request(`{ agents { storyId status } }`);
    expect(all.data).toEqual({
      agents: [
        { storyId: 'done-1', status: 'COMPLETED' },
        { storyId: 'waiting-1', status: expect.stringMatching(/PENDING|RUNNING/) },
      ],
    });
    const completed = await server.request(`{ agents(status: COMPLETED) { storyId } }`);
    expect(completed.data).toEqual({ agents: [{ storyId: 'done-1' }] });
    expect(await server.request(AGENT, { storyId: 'never' })).toEqual({ data: { agent: null } });
  });

  it('stops a run with stopAgent: STOPPED once every process is gone', async () => {
    const server = await startTestServer();
    const events = subscribe(server, 'S-1');
    await server.request(START, { storyId: 'S-1', prompt: 'grandchildren; wait' });
    const before = await readEvents(events, (event) => (event.data as { subtype?: string } | undefined)?.subtype === 'pids');
    const pids = (before.at(-1)!.data as { pids: number[] }).pids;

    const stopped = await server.request(STOP, { storyId: 'S-1' });
    expect(stopped).toEqual({ data: { stopAgent: { storyId: 'S-1', status: 'STOPPED', pid: null, error: null } } });
    expect(pids.filter(isAlive)).toEqual([]);
    const rest = await readEvents(events, isTerminalResult);
    expect(names(rest).slice(-2)).toEqual(['STOPPED', 'AgentErrorEvent']);
    expect(rest.at(-1)!.message).toBe('stopped by request');
  });

  it('replays a long history (over 100,000 events) to a new subscriber by pulling', async () => {
    const server = await startTestServer({ store: 'max_events_per_story = 1000000' });
    const events = subscribe(server, 'S-1');
    await server.request(START, { storyId: 'S-1', prompt: 'flood 50000' });
    const live = await readEvents(events, isTerminalResult);
    expect(live.length).toBeGreaterThan(100_000);

    const replay = await readEvents(subscribe(server, 'S-1'), isTerminalResult);
    expect(replay.length).toBe(live.length);
    expect(seqs(replay)).toEqual(replay.map((_, i) => i + 1));
  }, 120_000);

  it('releases the reader of a client that disconnects, idle or busy', async () => {
    const server = await startTestServer();
    const client = server.wsClient();
    const idle = client.iterate({ query: AGENT_EVENTS, variables: { storyId: 'idle' } });
    const busy = client.iterate({ query: AGENT_EVENTS, variables: { storyId: 'busy' } });
    await server.request(START, { storyId: 'busy', prompt: 'flood 20000' });
    await busy.next();
    const pending = idle.next();
    await expect.poll(() => server.pool.eventLog.openReaders).toBe(2);
    await client.dispose();
    await expect.poll(() => server.pool.eventLog.openReaders).toBe(0);
    await pending.catch(() => undefined);

    const sse = sseClient(server);
    const overSse = sse.iterate({ query: AGENT_EVENTS, variables: { storyId: 'idle' } });
    const waiting = overSse.next();
    await expect.poll(() => server.pool.eventLog.openReaders).toBe(1);
    await overSse.return!();
    await expect.poll(() => server.pool.eventLog.openReaders).toBe(0);
    await waiting.catch(() => undefined);
  });
});

describe('paged history', () => {
  it('returns stored events in seq order, page by page, with a default and a maximum page size', async () => {
    const server = await startTestServer({ store: 'max_events_per_story = 100000' });
    await server.request(START, { storyId: 'S-1', prompt: 'tools 1500' });
    await expect.poll(() => server.pool.get('S-1')!.status, { timeout: 30_000 }).toBe('COMPLETED');
    const lastSeq = server.pool.get('S-1')!.lastSeq;
    const PAGE = `query ($afterSeq: Int, $first: Int) {
      agent(storyId: "S-1") { events(afterSeq: $afterSeq, first: $first) { seq __typename } }
    }`;
    const page = async (variables: Record<string, unknown>) =>
      ((await server.request<{ agent: { events: EventResult[] } }>(PAGE, variables)).data!.agent.events).map((e) => e.seq);

    expect(await page({})).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await page({ afterSeq: 10, first: 3 })).toEqual([11, 12, 13]);
    expect(await page({ afterSeq: -4, first: 2 })).toEqual([1, 2]);
    expect(await page({ first: 5000 })).toHaveLength(1000);
    const seen: number[] = [];
    for (let afterSeq = 0; ; ) {
      const seqs = await page({ afterSeq, first: 1000 });
      if (seqs.length === 0) break;
      seen.push(...seqs);
      afterSeq = seqs.at(-1)!;
    }
    expect(seen).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
  });
});

describe('subscriptions over SSE', () => {
  it('deliver the same events as graphql-ws, in the distinct-connections mode of graphql-sse clients', async () => {
    const server = await startTestServer();
    const overWs = subscribe(server, 'S-1');
    const overSse = sseClient(server).iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    await server.request(START, { storyId: 'S-1', prompt: 'say over sse' });
    const a = await readEvents(overWs, isTerminalResult);
    const b = await readEvents(overSse as AsyncIterator<{ data?: unknown }>, isTerminalResult);
    expect(b).toEqual(a);
  });
});

describe('stories people can tell apart', () => {
  it('startAgent takes a title; Agent.title, Agent.prompt and each run\'s prompts say what the story is', async () => {
    const server = await startTestServer();
    const titled = `mutation ($storyId: ID!, $prompt: String, $title: String) {
      startAgent(storyId: $storyId, prompt: $prompt, title: $title) { storyId title prompt lastSeq }
    }`;
    const started = await server.request(titled, { storyId: 'S-1', prompt: 'say hi', title: 'Say hello' });
    expect(started).toEqual({ data: { startAgent: { storyId: 'S-1', title: 'Say hello', prompt: 'say hi', lastSeq: 1 } } });
    await readEvents(subscribe(server, 'S-1'), isTerminalResult);
    const again = await server.request(titled, { storyId: 'S-1', prompt: 'say again' });
    const { lastSeq } = (again.data as { startAgent: { lastSeq: number } }).startAgent;
    await readEvents(subscribe(server, 'S-1', lastSeq), isTerminalResult);
    const read = await server.request(`{ agent(storyId: "S-1") { title prompt runs { number prompt renderedPrompt } } }`);
    expect(read).toEqual({
      data: {
        agent: {
          title: 'Say hello',
          prompt: 'say hi',
          runs: [
            { number: 1, prompt: 'say hi', renderedPrompt: 'say hi' },
            { number: 2, prompt: 'say again', renderedPrompt: 'say again' },
          ],
        },
      },
    });

    // A title of two lines is INVALID_ARGUMENT, and the story keeps the one it has.
    const refused = await server.request(titled, { storyId: 'S-1', prompt: 'say no', title: 'one\ntwo' });
    expect(refused.errors?.[0]?.extensions?.code).toBe('INVALID_ARGUMENT');
    expect(refused.errors?.[0]?.message).toContain('a title is one line of text');
    const kept = await server.request(`{ agent(storyId: "S-1") { title runs { number } } }`);
    expect(kept).toEqual({ data: { agent: { title: 'Say hello', runs: [{ number: 1 }, { number: 2 }] } } });
  });
});

describe('errors', () => {
  const code = (result: { errors?: Array<{ extensions?: Record<string, unknown> }> }) => result.errors?.[0]?.extensions?.code;

  it('INVALID_STORY_ID for a story id the contract does not allow', async () => {
    const server = await startTestServer();
    const result = await server.request(START, { storyId: '../etc', prompt: 'x' });
    expect(code(result)).toBe('INVALID_STORY_ID');
    expect(result.errors![0]!.message).toContain('invalid story id "../etc"');
    expect(code(await server.request(AGENT, { storyId: 'a b' }))).toBe('INVALID_STORY_ID');
  });

  it('AGENT_ALREADY_RUNNING for a story that is PENDING or RUNNING', async () => {
    const server = await startTestServer();
    await server.request(START, { storyId: 'S-1', prompt: 'wait' });
    expect(code(await server.request(START, { storyId: 'S-1' }))).toBe('AGENT_ALREADY_RUNNING');
  });

  it('AGENT_NOT_FOUND for stopping a story that never existed', async () => {
    const server = await startTestServer();
    const result = await server.request(STOP, { storyId: 'ghost' });
    expect(code(result)).toBe('AGENT_NOT_FOUND');
    expect(result.data).toBeNull();
  });

  it('CONFIG_ERROR when agent-pool.toml has become invalid, naming the file and key', async () => {
    const server = await startTestServer();
    writeFileSync(path.join(server.root, 'agent-pool.toml'), '[pool]\nmax_concurrent = "many"\n');
    const result = await server.request(START, { storyId: 'S-1' });
    expect(code(result)).toBe('CONFIG_ERROR');
    expect(result.errors![0]!.message).toBe(
      `${path.join(server.root, 'agent-pool.toml')}: pool.max_concurrent: must be a whole number, got string "many"`,
    );
    expect((await server.request(`{ agents { storyId } }`)).data).toEqual({ agents: [] });
  });

  it('EVENTS_TRUNCATED with extensions.firstSeq when a replay asks for dropped events', async () => {
    const server = await startTestServer({ store: 'max_events_per_story = 100' });
    await server.request(START, { storyId: 'S-1', prompt: 'flood 200' });
    await expect.poll(() => server.pool.get('S-1')!.status).toBe('COMPLETED');
    const { firstSeq } = server.pool.eventLog.bounds('S-1');
    expect(firstSeq).toBeGreaterThan(5);

    const results = subscribe(server, 'S-1', 5);
    const first = await results.next();
    expect(first.value.errors).toEqual([
      expect.objectContaining({
        message: expect.stringContaining(`before seq ${firstSeq} are no longer kept`),
        extensions: { code: 'EVENTS_TRUNCATED', firstSeq },
      }),
    ]);
    expect((await results.next()).done).toBe(true);
  });

  it('UNAUTHENTICATED (HTTP 401) without the token, and WebSocket close 4403', async () => {
    const server = await startTestServer();
    for (const authorization of [undefined, 'Bearer wrong', server.token, `Basic ${server.token}`]) {
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        body: JSON.stringify({ query: '{ agents { storyId } }' }),
      });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({
        errors: [expect.objectContaining({ extensions: { code: 'UNAUTHENTICATED' } })],
      });
    }
    const closed = await new Promise<number>((resolve) => {
      const socket = new WebSocket(server.url.replace('http:', 'ws:'), 'graphql-transport-ws');
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer wrong' } })));
      socket.on('close', (code) => resolve(code));
    });
    expect(closed).toBe(4403);
  });

  it('POOL_CLOSED for a start while the pool shuts down and after, with its message (not masked, not logged)', async () => {
    const server = await startTestServer({ pool: 'stop_grace_seconds = 1' });
    const events = server.pool.events('S-1');
    await server.request(START, { storyId: 'S-1', prompt: 'ignore-signals; say ready; wait' });
    await readUntil(events, (event) => JSON.stringify(event).includes('ready'));
    await events.return?.();
    let disposed = false;
    const disposing = server.pool.dispose().then(() => (disposed = true));
    const closed = {
      message: 'agent-pool is shutting down and starts no more agents',
      extensions: { code: 'POOL_CLOSED' },
    };

    // The agent ignores SIGTERM: the shutdown waits out its grace, and a start meanwhile is refused.
    const during = await server.request(START, { storyId: 'S-2' });
    expect(disposed).toBe(false);
    expect(during.errors).toEqual([expect.objectContaining(closed)]);
    await disposing;
    const after = await server.request(`mutation { continueAgent(storyId: "S-1", prompt: "more") { status } }`);
    expect(after.errors).toEqual([expect.objectContaining(closed)]);
    expect((await server.request(START, { storyId: 'S-1' })).errors).toEqual([expect.objectContaining(closed)]);
    expect(server.logs.join('\n')).not.toContain('unexpected error');
    expect(server.pool.get('S-2')).toBeUndefined();
  });

  it('masks unexpected errors for clients and logs them in full', async () => {
    const server = await startTestServer();
    vi.spyOn(server.pool, 'list').mockImplementation(() => {
      throw new Error('a bug in the pool');
    });
    const result = await server.request('{ agents { storyId } }');
    expect(result.errors).toEqual([
      expect.objectContaining({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }),
    ]);
    expect(server.logs.join('\n')).toContain('unexpected error in a GraphQL operation Error: a bug in the pool');
  });
});

describe('schema', () => {
  it('reports every event type as implementing AgentEvent in introspection (Apollo Client\'s possibleTypes)', async () => {
    const server = await startTestServer();
    const result = await server.request<{ __type: { possibleTypes: Array<{ name: string }> } }>(
      `{ __type(name: "AgentEvent") { kind possibleTypes { name } } }`,
    );
    expect(result.data!.__type.possibleTypes.map((type) => type.name).sort()).toEqual([
      'AgentApprovalRequestEvent',
      'AgentApprovalResolvedEvent',
      'AgentDoneEvent',
      'AgentErrorEvent',
      'AgentJsonEvent',
      'AgentOutputEvent',
      'AgentPlanEvent',
      'AgentStatusEvent',
      'AgentToolCallEvent',
      'AgentToolResultEvent',
      'AgentUsageEvent',
    ]);
  });

  it('schema.graphql is the schema printed from the code', () => {
    const committed = readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(printSdl());
  });
});

describe('pages', () => {
  it('serves GraphiQL to a browser without the token, self-contained, and /health', async () => {
    const server = await startTestServer();
    const page = await fetch(server.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('renderYogaGraphiQL');
    expect(html).not.toContain(server.token);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href="http/);
    expect((await fetch(`${server.server.origin}/health`)).status).toBe(200);
  });
});
