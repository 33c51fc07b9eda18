// The mission's main path with the real Claude Code CLI from npm: through agent-pool's
// GraphQL API it reads a prompt, asks the model, calls its own Write tool in the story's
// worktree and ends with a result. The only fake is the model service, which speaks the
// real Messages API (test/fixtures/fake-anthropic.ts).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ModelRequest, type Turn, writeFile } from '../fixtures/fake-anthropic.js';
import { claudeServer } from '../support/claude.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { AGENT_EVENTS, type EventResult, isTerminalResult, readEvents, type TestServer } from '../support/server.js';
import { git } from '../support/temp.js';

async function run(server: TestServer, mutation: string, variables: Record<string, unknown>): Promise<EventResult[]> {
  const storyId = String(variables.storyId);
  const events = server.wsClient().iterate({
    query: AGENT_EVENTS,
    variables: { storyId, afterSeq: server.pool.get(storyId)?.lastSeq ?? 0 },
  });
  const result = await server.request(mutation, variables);
  expect(result.errors).toBeUndefined();
  return readEvents(events, isTerminalResult);
}

const START = 'mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }';
const AGENT = '{ agent(storyId: "S-1") { status sessionId costUsd error exitCode worktreePath lastSeq } }';
/** The texts of a request's last user message (the prompt, beside the CLI's own reminders). */
const lastUserTexts = (request: ModelRequest) => {
  const content = request.messages.filter((message) => message.role === 'user').at(-1)?.content ?? [];
  return typeof content === 'string' ? [content] : content.map((block) => block.text);
};
const json = (events: EventResult[], type: string) =>
  events.filter((event) => (event.data as { type?: string } | undefined)?.type === type).map((event) => event.data as Record<string, unknown>);

describe('the real Claude Code against a fake model API', () => {
  it('writes a file through its Write tool in the story\'s worktree and ends COMPLETED', async () => {
    const { api, server } = await claudeServer(
      {},
      { tool: 'Write', input: writeFile('hello.txt', 'Hello from Claude\n') },
      { text: 'I wrote hello.txt.' },
    );
    const events = await run(server, START, { storyId: 'S-1', prompt: 'Create hello.txt saying hello.' });

    expect(events.filter(isTerminalResult).map((event) => event.__typename)).toEqual(['AgentDoneEvent']);
    expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
    const [init] = json(events, 'system').filter((data) => data.subtype === 'init');
    const { data } = await server.request<{ agent: Record<string, unknown> }>(AGENT);
    expect(data!.agent).toMatchObject({ status: 'COMPLETED', sessionId: init!.session_id, exitCode: 0, error: null });
    expect(data!.agent.costUsd).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({ sessionId: init!.session_id, exitCode: 0 });
    expect(events.some((event) => event.text === 'I wrote hello.txt.')).toBe(true);

    const worktree = data!.agent.worktreePath as string;
    expect(readFileSync(path.join(worktree, 'hello.txt'), 'utf8')).toBe('Hello from Claude\n');
    expect(existsSync(path.join(server.root, 'hello.txt'))).toBe(false);
    // The main checkout shows nothing new but the test's own (uncommitted) config file.
    expect(git(server.root, 'status', '--porcelain', '--untracked-files=all')).toBe('?? agent-pool.toml');
    // The CLI was given the worktree as its working directory, and the prompt as it was sent.
    expect(init!.cwd).toBe(worktree);
    expect(JSON.stringify(api.conversation()[0]!.messages)).toContain('Create hello.txt saying hello.');
    expect(api.failures).toEqual([]);
  });

  it('ends FAILED with the CLI\'s own message when the API refuses the key, keeping the events seen', async () => {
    const { server } = await claudeServer({}, ...Array.from({ length: 10 }, (): Turn => ({ error: 401 })));
    const events = await run(server, START, { storyId: 'S-1', prompt: 'Say hello.' });
    const [result] = json(events, 'result');
    expect(result).toMatchObject({ is_error: true });
    const { data } = await server.request<{ agent: Record<string, unknown> }>(AGENT);
    expect(data!.agent).toMatchObject({ status: 'FAILED', error: result!.result });
    expect(result!.result).toBe('Invalid API key · Fix external API key');
    expect(json(events, 'system').some((event) => event.subtype === 'init')).toBe(true);
    expect(events.at(-1)).toMatchObject({ __typename: 'AgentErrorEvent', message: result!.result });
  });

  it('ends FAILED once the CLI gives up on an overloaded API, without hanging', async () => {
    const { api, server } = await claudeServer({}, ...Array.from({ length: 10 }, (): Turn => ({ error: 529 })));
    const events = await run(server, START, { storyId: 'S-1', prompt: 'Say hello.' });
    const retries = json(events, 'system').filter((event) => event.subtype === 'api_retry');
    expect(retries.map((event) => event.error_status)).toEqual([529, 529]);
    const [result] = json(events, 'result');
    expect(String(result!.result)).toContain('529 Overloaded');
    expect(server.pool.get('S-1')).toMatchObject({ status: 'FAILED', error: result!.result });
    expect(api.conversation()).toHaveLength(3);
  });

  it('stops in the middle of a stalled answer: STOPPED, and no process of the run is left', async () => {
    const { api, server } = await claudeServer({}, { stall: true });
    const events = server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    await server.request(START, { storyId: 'S-1', prompt: 'Tell me a long story.' });
    await expect.poll(() => api.conversation().length, { timeout: 30_000 }).toBe(1);
    expect(leftovers().length).toBeGreaterThan(0);

    const stopped = await server.request<{ stopAgent: { status: string } }>('mutation { stopAgent(storyId: "S-1") { status } }');
    expect(stopped.data).toEqual({ stopAgent: { status: 'STOPPED' } });
    expect(leftovers()).toEqual([]);
    const seen = await readEvents(events, isTerminalResult);
    expect(seen.slice(-2).map((event) => event.status ?? event.message)).toEqual(['STOPPED', 'stopped by request']);
  });

  it('takes a prompt that starts with "-" (a markdown list) whole, in a first run and in a follow-up', async () => {
    const { api, server } = await claudeServer({}, { text: 'Noted.' }, { text: 'Noted too.' });
    await run(server, START, { storyId: 'S-1', prompt: '- first\n- second' });
    await run(server, 'mutation ($storyId: ID!, $prompt: String!) { continueAgent(storyId: $storyId, prompt: $prompt) { status } }', {
      storyId: 'S-1',
      prompt: '- third\n- fourth',
    });

    const agent = server.pool.get('S-1')!;
    expect(agent.runs.map((runInfo) => [runInfo.status, runInfo.sessionId])).toEqual([
      ['COMPLETED', agent.sessionId],
      ['COMPLETED', agent.sessionId],
    ]);
    const [first, second] = api.conversation();
    expect(lastUserTexts(first!)).toContain('- first\n- second');
    expect(lastUserTexts(second!)).toContain('- third\n- fourth');
    expect(api.conversation()).toHaveLength(2);
    expect(api.failures).toEqual([]);
  });

  it('continues the same session with a follow-up that sees the first turn and writes a second file', async () => {
    const { api, server } = await claudeServer(
      {},
      { tool: 'Write', input: writeFile('first.txt', 'one\n') },
      { text: 'Wrote first.txt.' },
      { tool: 'Write', input: writeFile('second.txt', 'two\n') },
      { text: 'Wrote second.txt too.' },
    );
    await run(server, START, { storyId: 'S-1', prompt: 'Write first.txt.' });
    const sessionId = server.pool.get('S-1')!.sessionId;
    const followUp = await run(server, 'mutation { continueAgent(storyId: "S-1", prompt: "Now write second.txt.") { status } }', {
      storyId: 'S-1',
    });

    const [init] = json(followUp, 'system').filter((data) => data.subtype === 'init');
    expect(init!.session_id).toBe(sessionId);
    expect(followUp.at(-1)).toMatchObject({ __typename: 'AgentDoneEvent', sessionId });
    const resumed = JSON.stringify(api.conversation()[2]!.messages);
    expect(resumed).toContain('Write first.txt.');
    expect(resumed).toContain('first.txt');
    expect(resumed).toContain('Now write second.txt.');
    const worktree = server.pool.get('S-1')!.worktreePath!;
    expect(readFileSync(path.join(worktree, 'first.txt'), 'utf8')).toBe('one\n');
    expect(readFileSync(path.join(worktree, 'second.txt'), 'utf8')).toBe('two\n');
    expect(server.pool.get('S-1')!.runs.map((runInfo) => runInfo.status)).toEqual(['COMPLETED', 'COMPLETED']);
  });
});
