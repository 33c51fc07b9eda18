// Approvals and live control with the real Claude Code CLI: outside bypassPermissions it
// talks to agent-pool through its stdin control channel (stream-json user messages,
// can_use_tool requests and their answers, interrupts), and a person drives it through the
// GraphQL API alone. The only fake is the model service (test/fixtures/fake-anthropic.ts).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ModelRequest, writeFile } from '../fixtures/fake-anthropic.js';
import { claudeServer } from '../support/claude.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { AGENT_EVENTS, type EventResult, isTerminalResult, readEvents, type TestServer } from '../support/server.js';

const START = 'mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }';
const RESPOND = `mutation ($requestId: ID!, $allow: Boolean!, $message: String, $updatedInput: JSON, $remember: Boolean) {
  respondToApproval(storyId: "S-1", requestId: $requestId, allow: $allow, message: $message, updatedInput: $updatedInput, remember: $remember) {
    status waitingFor pendingApprovals { requestId }
  }
}`;
const SEND = 'mutation ($text: String!) { sendMessage(storyId: "S-1", text: $text) { status } }';
const STATE = '{ agent(storyId: "S-1") { status waitingFor pendingApprovals { requestId tool input suggestions requestedAt } } }';

interface AgentState {
  status: string;
  waitingFor: string | null;
  pendingApprovals: Array<{ requestId: string; tool: string; input: Record<string, unknown>; suggestions: unknown; requestedAt: string }>;
}

const approvalMode = (...lines: string[]) => ({ agentLines: ['permission_mode = "default"', ...lines] });
const isRequest = (event: EventResult) => event.__typename === 'AgentApprovalRequestEvent';
const isResult = (event: EventResult) => (event.data as { type?: string } | undefined)?.type === 'result';

async function state(server: TestServer): Promise<AgentState> {
  const { data, errors } = await server.request<{ agent: AgentState }>(STATE);
  expect(errors).toBeUndefined();
  return data!.agent;
}

function subscribe(server: TestServer, afterSeq = 0) {
  return server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1', afterSeq } });
}

/** The tool results the model was sent in a request, by the text of their content. */
function toolResults(request: ModelRequest): Array<{ text: string; isError: boolean }> {
  const results: Array<{ text: string; isError: boolean }> = [];
  for (const message of request.messages) {
    if (typeof message.content === 'string') continue;
    for (const block of message.content) {
      if (block.type !== 'tool_result') continue;
      const content = block.content;
      const text = typeof content === 'string' ? content : JSON.stringify(content);
      results.push({ text, isError: block.is_error === true });
    }
  }
  return results;
}

describe('approvals and live control with the real Claude Code', () => {
  it('asks before a Write: denied, the model is told and nothing is written; allowed with an edited input, the edit is written', async () => {
    const { api, server } = await claudeServer(
      approvalMode(),
      { tool: 'Write', input: writeFile('notes.txt', 'first draft\n') },
      { tool: 'Write', input: writeFile('notes.txt', 'second draft\n') },
      { text: 'Done with notes.txt.' },
    );
    const events = subscribe(server);
    expect((await server.request(START, { storyId: 'S-1', prompt: 'Write notes.txt.' })).errors).toBeUndefined();

    const [first] = (await readEvents(events, isRequest)).filter(isRequest);
    expect(first).toMatchObject({ tool: 'Write', input: { content: 'first draft\n' } });
    const worktree = server.pool.get('S-1')!.worktreePath!;
    expect((first!.input as { file_path: string }).file_path).toBe(path.join(worktree, 'notes.txt'));
    const waiting = await state(server);
    expect(waiting).toMatchObject({ status: 'RUNNING', waitingFor: 'APPROVAL' });
    expect(waiting.pendingApprovals).toEqual([
      expect.objectContaining({ requestId: first!.requestId, tool: 'Write', input: first!.input, suggestions: first!.suggestions }),
    ]);

    const denied = await server.request(RESPOND, { requestId: first!.requestId, allow: false, message: 'Not yet: ask me again.' });
    expect(denied).toEqual({ data: { respondToApproval: { status: 'RUNNING', waitingFor: null, pendingApprovals: [] } } });
    const again = await server.request(RESPOND, { requestId: first!.requestId, allow: true });
    expect(again.errors?.[0]?.extensions?.code).toBe('APPROVAL_ALREADY_ANSWERED');
    const unknown = await server.request(RESPOND, { requestId: 'no-such-request', allow: true });
    expect(unknown.errors?.[0]?.extensions?.code).toBe('APPROVAL_NOT_FOUND');

    const untilSecond = await readEvents(events, isRequest);
    expect(untilSecond.find((event) => event.__typename === 'AgentApprovalResolvedEvent')).toMatchObject({
      requestId: first!.requestId,
      allowed: false,
      reason: 'Not yet: ask me again.',
    });
    // The model got the denial as the tool's error, and the file was never written.
    expect(toolResults(api.conversation()[1]!)).toEqual([{ text: expect.stringContaining('Not yet: ask me again.'), isError: true }]);
    expect(existsSync(path.join(worktree, 'notes.txt'))).toBe(false);

    const second = untilSecond.at(-1)!;
    expect(second).toMatchObject({ tool: 'Write', input: { content: 'second draft\n' } });
    const edited = { ...(second.input as Record<string, unknown>), content: 'edited by a person\n' };
    const allowed = await server.request(RESPOND, { requestId: second.requestId, allow: true, updatedInput: edited });
    expect(allowed.errors).toBeUndefined();

    const rest = await readEvents(events, isTerminalResult);
    expect(rest.at(-1)!.__typename).toBe('AgentDoneEvent');
    expect(readFileSync(path.join(worktree, 'notes.txt'), 'utf8')).toBe('edited by a person\n');
    expect(await state(server)).toMatchObject({ status: 'COMPLETED', waitingFor: null, pendingApprovals: [] });
    expect(server.pool.get('S-1')!.runs).toHaveLength(1);
    expect(api.failures).toEqual([]);
  });

  it('remembers an allowance with Claude\'s own suggestions: the next edit of the run is not asked about', async () => {
    const { server } = await claudeServer(
      approvalMode(),
      { tool: 'Write', input: writeFile('a.txt', 'a\n') },
      { tool: 'Write', input: writeFile('b.txt', 'b\n') },
      { text: 'Wrote both.' },
    );
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'Write a.txt and b.txt.' });
    const request = (await readEvents(events, isRequest)).at(-1)!;
    expect(request.suggestions).toEqual(expect.arrayContaining([expect.objectContaining({ type: expect.any(String) })]));
    expect((await server.request(RESPOND, { requestId: request.requestId, allow: true, remember: true })).errors).toBeUndefined();

    const rest = await readEvents(events, isTerminalResult);
    expect(rest.filter(isRequest)).toEqual([]);
    expect(rest.at(-1)!.__typename).toBe('AgentDoneEvent');
    const worktree = server.pool.get('S-1')!.worktreePath!;
    expect(readFileSync(path.join(worktree, 'b.txt'), 'utf8')).toBe('b\n');
  });

  it('takes a second message in the same live session: queued while the first turn runs, one process, one run', async () => {
    const { api, server } = await claudeServer(approvalMode(), { text: 'The first answer.' }, { text: 'The second answer.' });
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'First question.' });
    // Sent while the run is still starting: it waits for the first turn to end.
    expect((await server.request(SEND, { text: 'Second question.' })).errors).toBeUndefined();

    const seen = await readEvents(events, isTerminalResult);
    const results = seen.filter(isResult).map((event) => event.data as { result: string; session_id: string });
    expect(results.map((result) => result.result)).toEqual(['The first answer.', 'The second answer.']);
    expect(new Set(results.map((result) => result.session_id)).size).toBe(1);
    expect(seen.filter((event) => event.status === 'RUNNING')).toHaveLength(1);
    expect(seen.at(-1)!.__typename).toBe('AgentDoneEvent');
    const [, secondRequest] = api.conversation();
    expect(JSON.stringify(secondRequest!.messages)).toContain('First question.');
    expect(JSON.stringify(secondRequest!.messages)).toContain('Second question.');
    expect(server.pool.get('S-1')!.runs).toHaveLength(1);
  });

  it('stays open for keep_open_seconds: waits for INPUT, takes a message, and a stop ends it with nothing left', async () => {
    const { server } = await claudeServer(approvalMode('keep_open_seconds = 600'), { text: 'One.' }, { text: 'Two.' });
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'Count.' });
    await readEvents(events, isResult);
    await expect.poll(async () => (await state(server)).waitingFor).toBe('INPUT');
    const pid = server.pool.get('S-1')!.pid;

    await server.request(SEND, { text: 'Go on.' });
    const second = (await readEvents(events, isResult)).at(-1)!;
    expect(second.data).toMatchObject({ result: 'Two.' });
    await expect.poll(async () => (await state(server)).waitingFor).toBe('INPUT');
    expect(server.pool.get('S-1')!.pid).toBe(pid);

    const stopped = await server.request<{ stopAgent: { status: string } }>('mutation { stopAgent(storyId: "S-1") { status } }');
    expect(stopped.data).toEqual({ stopAgent: { status: 'STOPPED' } });
    expect(leftovers()).toEqual([]);
  });

  it('interrupts a turn in the middle of a stalled answer, and the session goes on with the next message', async () => {
    const { api, server } = await claudeServer(
      approvalMode('keep_open_seconds = 600'),
      { stall: true },
      { text: 'Picking up again.' },
    );
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'Tell me a long story.' });
    await expect.poll(() => api.conversation().length, { timeout: 30_000 }).toBe(1);

    const interrupted = await server.request('mutation { interruptAgent(storyId: "S-1") { status } }');
    expect(interrupted).toEqual({ data: { interruptAgent: { status: 'RUNNING' } } });
    const first = (await readEvents(events, isResult)).at(-1)!;
    expect(first.data).toMatchObject({ subtype: 'error_during_execution' });
    await expect.poll(async () => (await state(server)).waitingFor).toBe('INPUT');

    await server.request(SEND, { text: 'Continue, briefly.' });
    const second = (await readEvents(events, isResult)).at(-1)!;
    expect(second.data).toMatchObject({ result: 'Picking up again.', session_id: (first.data as { session_id: string }).session_id });
    expect(JSON.stringify(api.conversation()[1]!.messages)).toContain('Continue, briefly.');
    expect(server.pool.get('S-1')).toMatchObject({ status: 'RUNNING', waitingFor: 'INPUT' });
    await server.request('mutation { stopAgent(storyId: "S-1") { status } }');
    expect(leftovers()).toEqual([]);
  });

  it('ends FAILED, naming the budget, when a run costs more than max_budget_usd', async () => {
    const { server } = await claudeServer(
      approvalMode('max_budget_usd = 0.001'),
      { tool: 'Write', input: writeFile('costly.txt', 'x\n') },
      { text: 'Done.' },
    );
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'Spend.' });
    const seen = await readEvents(events, isTerminalResult);
    expect(seen.filter(isResult).at(-1)!.data).toMatchObject({ subtype: 'error_max_budget_usd' });
    const error = 'the run reached its budget, max_budget_usd = 0.001 USD (Claude ended with error_max_budget_usd)';
    expect(seen.at(-1)).toMatchObject({ __typename: 'AgentErrorEvent', message: error });
    expect(server.pool.get('S-1')).toMatchObject({ status: 'FAILED', error });
  });

  it('keeps a pending approval for a subscriber that comes back, and refuses it when the run is stopped', async () => {
    const { server } = await claudeServer(approvalMode(), { tool: 'Write', input: writeFile('later.txt', 'later\n') });
    const firstClient = server.wsClient();
    const events = firstClient.iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    await server.request(START, { storyId: 'S-1', prompt: 'Write later.txt.' });
    const request = (await readEvents(events, isRequest)).at(-1)!;
    await firstClient.dispose();

    // A reload: the state says what waits, and the replay holds the request.
    const pending = await state(server);
    expect(pending).toMatchObject({ waitingFor: 'APPROVAL', pendingApprovals: [{ requestId: request.requestId, tool: 'Write' }] });
    const replay = await readEvents(subscribe(server), isRequest);
    expect(replay.at(-1)).toEqual(request);

    // sendInput would write raw bytes into the control channel: refused.
    const input = await server.request('mutation { sendInput(storyId: "S-1", data: "y\\n") }');
    expect(input.errors?.[0]).toMatchObject({ extensions: { code: 'INVALID_ARGUMENT' }, message: expect.stringContaining('sendMessage') });

    await server.request('mutation { stopAgent(storyId: "S-1") { status } }');
    const end = await readEvents(subscribe(server, request.seq), isTerminalResult);
    expect(end.find((event) => event.__typename === 'AgentApprovalResolvedEvent')).toMatchObject({
      requestId: request.requestId,
      allowed: false,
      reason: 'the run ended before it was answered',
    });
    expect(end.at(-1)).toMatchObject({ message: 'stopped by request' });
    const late = await server.request(RESPOND, { requestId: request.requestId, allow: true });
    expect(late.errors?.[0]?.extensions?.code).toBe('APPROVAL_ALREADY_ANSWERED');
    expect(leftovers()).toEqual([]);
  });

  it('does not count a wait for a person as idleness (idle_timeout_seconds)', async () => {
    const { server } = await claudeServer(
      // Long enough for Claude Code to start on a loaded machine: it prints nothing before
      // its init line, and a run that goes idle there ends before it asks anything.
      approvalMode('idle_timeout_seconds = 8'),
      { tool: 'Write', input: writeFile('slow.txt', 'slow\n') },
      { text: 'Written.' },
    );
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'Write slow.txt.' });
    const request = (await readEvents(events, (event) => isRequest(event) || isTerminalResult(event))).at(-1)!;
    expect(request.__typename).toBe('AgentApprovalRequestEvent');
    // A person takes longer than the idle timeout to answer; nothing is awaited but time.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    expect(await state(server)).toMatchObject({ status: 'RUNNING', waitingFor: 'APPROVAL' });
    await server.request(RESPOND, { requestId: request.requestId, allow: true });
    expect((await readEvents(events, isTerminalResult)).at(-1)!.__typename).toBe('AgentDoneEvent');
  });

  it('refuses approvals, messages and interrupts for a run without a control channel', async () => {
    const { server } = await claudeServer({}, { text: 'Hi.' });
    const events = subscribe(server);
    await server.request(START, { storyId: 'S-1', prompt: 'Say hi.' });
    await readEvents(events, isTerminalResult);
    for (const mutation of [
      'mutation { respondToApproval(storyId: "S-1", requestId: "r", allow: true) { status } }',
      'mutation { interruptAgent(storyId: "S-1") { status } }',
    ]) {
      const result = await server.request(mutation);
      expect(result.errors?.[0]?.extensions?.code).toBe('AGENT_NOT_INTERACTIVE');
    }
    const message = await server.request(SEND, { text: 'More.' });
    expect(message.errors?.[0]).toMatchObject({ extensions: { code: 'AGENT_NOT_RUNNING' }, message: expect.stringContaining('continueAgent') });
  });
});
