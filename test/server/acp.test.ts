// Agents over the Agent Client Protocol (kind = "acp"), driven through the API against a fake
// ACP agent built on the official SDK (test/fixtures/fake-acp-agent.mjs): its prompt is a
// script, so each test chooses what the agent does. The real Gemini CLI and opencode are
// driven the same way in test/e2e/acp-*.test.ts.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { BIN } from '../support/cli.js';
import { callTool, connectMcp, type McpStory, toolError } from '../support/mcp.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { type EventResult, isTerminalResult, readEvents, startTestServer, type TestServer } from '../support/server.js';
import { tempDir } from '../support/temp.js';

const FAKE_ACP_AGENT = fileURLToPath(new URL('../fixtures/fake-acp-agent.mjs', import.meta.url));
const ROGUE_ACP_AGENT = fileURLToPath(new URL('../fixtures/rogue-acp-agent.mjs', import.meta.url));

const START = 'mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }';
const CONTINUE = 'mutation ($storyId: ID!, $prompt: String!) { continueAgent(storyId: $storyId, prompt: $prompt) { status } }';
const RESPOND = `mutation ($r: ID!, $allow: Boolean, $optionId: ID, $remember: Boolean, $updatedInput: JSON) {
  respondToApproval(storyId: "S-1", requestId: $r, allow: $allow, optionId: $optionId, remember: $remember, updatedInput: $updatedInput) { status }
}`;
const PENDING = '{ agent(storyId: "S-1") { status waitingFor pendingApprovals { requestId tool input options { id name kind } } } }';
const TYPED = `subscription ($afterSeq: Int) { agentEvents(storyId: "S-1", afterSeq: $afterSeq) {
  __typename seq run
  ... on AgentOutputEvent { text }
  ... on AgentJsonEvent { data }
  ... on AgentPlanEvent { lineSeq entries }
  ... on AgentToolCallEvent { lineSeq callId tool kind input }
  ... on AgentToolResultEvent { lineSeq callId isError output }
  ... on AgentUsageEvent { lineSeq inputTokens outputTokens }
  ... on AgentApprovalRequestEvent { lineSeq requestId tool options { id kind } }
  ... on AgentApprovalResolvedEvent { requestId allowed reason optionId }
  ... on AgentDoneEvent { sessionId }
  ... on AgentErrorEvent { message }
} }`;

/** An MCP server as ACP's session/new gives it: a command on stdio. */
interface McpServerStdio {
  name: string;
  command: string;
  args: string[];
  env: Array<{ name: string; value: string }>;
}

interface Approval {
  requestId: string;
  tool: string;
  input: unknown;
  options: Array<{ id: string; name: string; kind: string }>;
}
type Event = EventResult & Record<string, unknown>;

const code = (result: { errors?: Array<{ extensions?: Record<string, unknown> }> }) => result.errors?.[0]?.extensions?.code;

/** A server whose agent is the fake ACP agent (or another command), with these profile lines and variables. */
async function acpServer(
  options: { profile?: string[]; env?: Record<string, string>; command?: string[] } = {},
): Promise<TestServer & { log: string }> {
  const log = path.join(tempDir(), 'received.jsonl');
  const env = { FAKE_ACP_STATE: tempDir(), FAKE_ACP_LOG: log, ...options.env };
  const [command, ...args] = options.command ?? ['node', FAKE_ACP_AGENT];
  const server = await startTestServer({
    toml: [
      '[agent]',
      'kind = "acp"',
      `command = ${JSON.stringify(command)}`,
      `args = ${JSON.stringify(args)}`,
      `env = { ${Object.entries(env).map(([name, value]) => `${name} = ${JSON.stringify(value)}`).join(', ')} }`,
      ...(options.profile ?? []),
      '[pool]',
      'stop_grace_seconds = 1',
    ].join('\n'),
  });
  return Object.assign(server, { log });
}

/** What the agent received, in order: the client's messages as the fake logged them. */
function received(log: string): Array<Record<string, unknown>> {
  return readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

function typedEvents(server: TestServer) {
  return server.wsClient().iterate({ query: TYPED, variables: { afterSeq: server.pool.get('S-1')?.lastSeq ?? 0 } });
}

async function runToEnd(server: TestServer, mutation: string, prompt: string): Promise<Event[]> {
  const events = typedEvents(server);
  const result = await server.request(mutation, { storyId: 'S-1', prompt });
  expect(result.errors).toBeUndefined();
  return (await readEvents(events, isTerminalResult)) as Event[];
}

async function nextApproval(server: TestServer): Promise<Approval> {
  let pending: Approval[] = [];
  await expect
    .poll(async () => {
      pending = (await server.request<{ agent: { pendingApprovals: Approval[] } }>(PENDING)).data!.agent.pendingApprovals;
      return pending.length;
    })
    .toBe(1);
  return pending[0]!;
}

describe('an ACP agent', () => {
  it('turns its updates into typed events, one output per message, each after its json event', async () => {
    const server = await acpServer();
    const events = await runToEnd(
      server,
      START,
      ['plan Read the code|Fix it', 'say Hello there, world.', 'run echo hi', 'stderr {"jsonrpc":"2.0","id":1,"result":{}}', 'usage 100 20'].join('\n'),
    );
    const agent = server.pool.get('S-1')!;
    expect(agent).toMatchObject({ status: 'COMPLETED', error: undefined, usage: { inputTokens: 100, outputTokens: 20 } });

    const of = (type: string) => events.filter((event) => event.__typename === type);
    expect(of('AgentPlanEvent')).toMatchObject([{ entries: [{ content: 'Read the code', status: 'pending' }, { content: 'Fix it', status: 'pending' }] }]);
    // Said in three pieces, recorded once.
    expect(of('AgentOutputEvent').map((event) => event.text)).toContain('Hello there, world.');
    expect(of('AgentOutputEvent').filter((event) => String(event.text).includes('Hello'))).toHaveLength(1);
    expect(of('AgentToolCallEvent')).toMatchObject([{ tool: 'run echo hi', kind: 'COMMAND', input: { command: 'echo hi' } }]);
    expect(of('AgentToolResultEvent')).toMatchObject([{ isError: false, output: 'hi\n' }]);
    // bypassPermissions (the default): agent-pool allows every request itself, on the record.
    expect(of('AgentApprovalRequestEvent')).toHaveLength(1);
    expect(of('AgentApprovalResolvedEvent')).toMatchObject([
      { allowed: true, optionId: 'allow-always', reason: 'allowed by agent-pool: permission_mode = "bypassPermissions"' },
    ]);
    expect(of('AgentUsageEvent')).toMatchObject([{ inputTokens: 100, outputTokens: 20 }]);
    for (const typed of events.filter((event) => event.lineSeq !== undefined && event.lineSeq !== null)) {
      expect(events.find((event) => event.seq === typed.lineSeq)?.__typename).toBe('AgentJsonEvent');
    }
    // stderr is plain output, never read as a message: the run did not take it as an answer.
    expect(of('AgentOutputEvent').map((event) => event.text)).toContain('{"jsonrpc":"2.0","id":1,"result":{}}');
    expect(events.at(-1)).toMatchObject({ __typename: 'AgentDoneEvent', sessionId: agent.sessionId });
    expect(agent.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    // The prompt went as the session's first turn, after initialize and session/new in the worktree.
    expect(received(server.log).map((message) => message.method ?? 'response')).toEqual([
      'initialize',
      'session/new',
      'session/prompt',
      'response',
    ]);
    expect(received(server.log)[1]).toMatchObject({ params: { cwd: agent.worktreePath, mcpServers: [] } });
  });

  it('asks a person: an answer by option or by allow, each once, and refuses answers that do not fit', async () => {
    const server = await acpServer({ profile: ['permission_mode = "default"', 'keep_open_seconds = 30'] });
    const events = typedEvents(server);
    await server.request(START, { storyId: 'S-1', prompt: 'write a.txt one\nwrite b.txt two\nsay done' });
    const first = await nextApproval(server);
    expect(first).toMatchObject({ tool: 'write a.txt', input: { path: 'a.txt', content: 'one' } });
    expect(first.options.map((option) => `${option.id}:${option.kind}`)).toEqual([
      'allow-once:allow_once',
      'allow-always:allow_always',
      'reject-once:reject_once',
      'reject-always:reject_always',
    ]);
    expect((await server.request<{ agent: { waitingFor: string } }>(PENDING)).data!.agent.waitingFor).toBe('APPROVAL');

    // Attacks: each refused with INVALID_ARGUMENT, and the request still waits.
    for (const variables of [
      { allow: true, optionId: 'allow-once' },
      {},
      { optionId: 'allow-sometimes' },
      { optionId: 'allow-once', remember: true },
      { allow: true, updatedInput: { path: '/etc/passwd', content: 'x' } },
    ]) {
      const refused = await server.request(RESPOND, { r: first.requestId, ...variables });
      expect(code(refused), JSON.stringify(variables)).toBe('INVALID_ARGUMENT');
    }
    const unknown = await server.request(RESPOND, { r: first.requestId, optionId: 'allow-sometimes' });
    expect(unknown.errors![0]!.message).toContain('"allow-once" (allow_once), "allow-always" (allow_always)');
    const worktree = server.pool.get('S-1')!.worktreePath!;
    expect(existsSync(path.join(worktree, 'a.txt'))).toBe(false);

    // The honest twin: the option chosen goes to the agent.
    expect((await server.request(RESPOND, { r: first.requestId, optionId: 'allow-once' })).errors).toBeUndefined();
    expect(code(await server.request(RESPOND, { r: first.requestId, optionId: 'allow-once' }))).toBe('APPROVAL_ALREADY_ANSWERED');
    const second = await nextApproval(server);
    expect(second.requestId).not.toBe(first.requestId);
    expect(readFileSync(path.join(worktree, 'a.txt'), 'utf8')).toBe('one');
    expect((await server.request(RESPOND, { r: second.requestId, allow: false })).errors).toBeUndefined();

    const turn = (await readEvents(events, (event) => event.text === 'done')) as Event[];
    expect(existsSync(path.join(worktree, 'b.txt'))).toBe(false);
    expect(turn.filter((event) => event.__typename === 'AgentApprovalResolvedEvent')).toMatchObject([
      { requestId: first.requestId, allowed: true, optionId: 'allow-once' },
      { requestId: second.requestId, allowed: false, optionId: 'reject-once' },
    ]);
    expect(turn.filter((event) => event.__typename === 'AgentToolResultEvent')).toMatchObject([
      { isError: false, output: 'wrote a.txt' },
      { isError: true, output: 'rejected by the user' },
    ]);
    const permissionAnswers = received(server.log).filter((message) => message.method === undefined);
    expect(permissionAnswers.map((message) => message.result)).toEqual([
      { outcome: { outcome: 'selected', optionId: 'allow-once' } },
      { outcome: { outcome: 'selected', optionId: 'reject-once' } },
    ]);

    // A second turn in the live session, then a stop: nothing of it is left.
    await expect.poll(async () => (await server.request<{ agent: { waitingFor: string } }>(PENDING)).data!.agent.waitingFor).toBe('INPUT');
    expect((await server.request('mutation { sendMessage(storyId: "S-1", text: "say second turn") { status } }')).errors).toBeUndefined();
    await readEvents(events, (event) => event.text === 'second turn');
    const prompts = received(server.log).filter((message) => message.method === 'session/prompt');
    expect(prompts).toHaveLength(2);
    expect(new Set(prompts.map((message) => (message.params as { sessionId: string }).sessionId)).size).toBe(1);
    const stopped = await server.request<{ stopAgent: { status: string } }>('mutation { stopAgent(storyId: "S-1") { status } }');
    expect(stopped.data).toEqual({ stopAgent: { status: 'STOPPED' } });
    expect(leftovers()).toEqual([]);
  });

  it('is interrupted by session/cancel: the pending request is answered cancelled, and the run ends STOPPED', async () => {
    const server = await acpServer({ profile: ['permission_mode = "default"'] });
    const events = typedEvents(server);
    await server.request(START, { storyId: 'S-1', prompt: 'write c.txt never\nsay not reached' });
    const approval = await nextApproval(server);
    const interrupted = await server.request('mutation { interruptAgent(storyId: "S-1") { status } }');
    expect(interrupted.errors).toBeUndefined();
    const seen = (await readEvents(events, isTerminalResult)) as Event[];
    expect(seen.find((event) => event.__typename === 'AgentApprovalResolvedEvent')).toMatchObject({
      requestId: approval.requestId,
      allowed: false,
      reason: 'the turn was interrupted',
    });
    expect(server.pool.get('S-1')!.status).toBe('STOPPED');
    expect(existsSync(path.join(server.pool.get('S-1')!.worktreePath!, 'c.txt'))).toBe(false);
    expect(seen.some((event) => event.text === 'not reached')).toBe(false);
    const sent = received(server.log);
    expect(sent.some((message) => message.method === 'session/cancel')).toBe(true);
    expect(sent.filter((message) => message.method === undefined).map((message) => message.result)).toEqual([{ outcome: { outcome: 'cancelled' } }]);
    expect(leftovers()).toEqual([]);
  });

  it('gives the session agent-pool\'s tools with mcp = true: agent-pool mcp on stdio, its token in its environment', async () => {
    const server = await acpServer({ profile: ['mcp = true'] });
    await server.request(START, { storyId: 'S-1', prompt: 'hang' });
    const sessionNew = async () => {
      await expect.poll(() => existsSync(server.log) && received(server.log).some((message) => message.method === 'session/new')).toBe(true);
      return received(server.log).find((message) => message.method === 'session/new')!.params as { mcpServers: McpServerStdio[] };
    };
    const [relay, ...others] = (await sessionNew()).mcpServers;
    expect(others).toEqual([]);
    expect(relay).toMatchObject({ name: 'agent-pool', command: process.execPath, args: [BIN, 'mcp', '--url', `${server.server.origin}/mcp`] });
    expect(relay!.env).toEqual([{ name: 'AGENT_POOL_TOKEN', value: expect.stringMatching(/^aps1\./) }]);
    expect(JSON.stringify(relay!.args)).not.toContain('aps1.');

    // Started as the agent would start it, the relay reaches the tools of the story's scope.
    const environment = Object.fromEntries(relay!.env.map(({ name, value }) => [name, value]));
    const client = await connectMcp(new StdioClientTransport({ command: relay!.command, args: relay!.args, env: { PATH: process.env.PATH!, ...environment }, stderr: 'pipe' }));
    expect((await callTool<McpStory>(client, 'start_story', { storyId: 'S-1-child', prompt: 'say hi' })).startedBy).toBe('S-1');
    expect(await toolError(client, 'respond_to_approval', { storyId: 'S-1', requestId: 'x', allow: true })).toMatch(/^FORBIDDEN: /);
    await server.request('mutation { stopAgent(storyId: "S-1") { status } }');
  });

  it('is stopped with every process of it, one it started in a session of its own included', async () => {
    const server = await acpServer();
    const events = typedEvents(server);
    await server.request(START, { storyId: 'S-1', prompt: 'sleeper sleeper.pid\nhang' });
    const pidFile = () => path.join(server.pool.get('S-1')!.worktreePath ?? '/nonexistent', 'sleeper.pid');
    await expect.poll(() => existsSync(pidFile())).toBe(true);
    await expect.poll(() => leftovers().some((line) => line.includes('sleep 1000'))).toBe(true);
    const stopped = await server.request<{ stopAgent: { status: string } }>('mutation { stopAgent(storyId: "S-1") { status } }');
    expect(stopped.data).toEqual({ stopAgent: { status: 'STOPPED' } });
    expect(leftovers()).toEqual([]);
    expect((await readEvents(events, isTerminalResult)).at(-1)).toMatchObject({ message: 'stopped by request' });
    // Polite first: the turn was cancelled before any signal.
    expect(received(server.log).some((message) => message.method === 'session/cancel')).toBe(true);
  });

  it('ends FAILED with the reason when a turn fails, the agent dies, or it stops for a bad reason', async () => {
    const server = await acpServer();
    const failed = async (prompt: string) => {
      const events = await runToEnd(server, START, prompt);
      expect(server.pool.get('S-1')!.status).toBe('FAILED');
      return String(events.at(-1)!.message);
    };
    expect(await failed('error the model is down')).toBe('the agent failed the prompt: the model is down');
    expect(await failed('stderr about to crash\nexit 3')).toBe('agent exited with code 3 before it answered the prompt; its last output:\nabout to crash');
    expect(await failed('stop refusal')).toBe('the agent ended its turn with stopReason "refusal"');
    // The honest twin: a clean end.
    await runToEnd(server, START, 'say fine');
    expect(server.pool.get('S-1')!.status).toBe('COMPLETED');
  });

  it('is ended after the grace period when it does not exit at the end of its input, and still COMPLETED', async () => {
    const server = await acpServer({ env: { FAKE_ACP_IGNORE_EOF: '1' } });
    const events = await runToEnd(server, START, 'say all done');
    expect(server.pool.get('S-1')).toMatchObject({ status: 'COMPLETED' });
    expect(events.filter((event) => event.text === 'all done')).toHaveLength(1);
    expect(leftovers()).toEqual([]);
  });

  it('sets the mode that the permission mode asks for', async () => {
    const server = await acpServer({ profile: ['permission_mode = "acceptEdits"'] });
    const events = await runToEnd(server, START, 'write d.txt edited');
    // In its autoEdit mode the fake writes without asking.
    expect(events.some((event) => event.__typename === 'AgentApprovalRequestEvent')).toBe(false);
    expect(readFileSync(path.join(server.pool.get('S-1')!.worktreePath!, 'd.txt'), 'utf8')).toBe('edited');
    const setMode = received(server.log).find((message) => message.method === 'session/set_mode');
    expect(setMode).toMatchObject({ params: { modeId: 'autoEdit' } });
  });
});

describe('an ACP follow-up', () => {
  it('loads the session where the agent offers it, without recording its replay again', async () => {
    await loadsWithoutReplay({ FAKE_ACP_LOAD: '1' });
  });

  it('does not record a replay that comes after the answer to session/load either', async () => {
    // The turn lasts long enough for a replay sent 100 ms after the answer to come within it.
    await loadsWithoutReplay({ FAKE_ACP_LOAD: '1', FAKE_ACP_LATE_REPLAY: '1' }, 'run sleep 0.5\nsay the second answer');
  });

  async function loadsWithoutReplay(env: Record<string, string>, followUp = 'say the second answer'): Promise<void> {
    const server = await acpServer({ env });
    await runToEnd(server, START, 'say the first answer');
    const second = await runToEnd(server, CONTINUE, followUp);
    const agent = server.pool.get('S-1')!;
    expect(agent.runs.map((run) => [run.status, run.sessionId])).toEqual([
      ['COMPLETED', agent.runs[0]!.sessionId],
      ['COMPLETED', agent.runs[0]!.sessionId],
    ]);
    expect(received(server.log).filter((message) => message.method === 'session/load')).toHaveLength(1);
    expect(second.filter((event) => String(event.text).includes('answer')).map((event) => event.text)).toEqual(['the second answer']);
    expect(second.every((event) => event.run === 2)).toBe(true);
  }

  it('resumes it where the agent offers that (no replay), else refuses with NO_SESSION_TO_RESUME', async () => {
    const resumable = await acpServer({ env: { FAKE_ACP_RESUME: '1', FAKE_ACP_LOAD: '1' } });
    await runToEnd(resumable, START, 'say one');
    await runToEnd(resumable, CONTINUE, 'say two');
    expect(resumable.pool.get('S-1')!.status).toBe('COMPLETED');
    expect(received(resumable.log).filter((message) => message.method === 'session/resume')).toHaveLength(1);
    expect(received(resumable.log).some((message) => message.method === 'session/load')).toBe(false);

    const neither = await acpServer();
    await runToEnd(neither, START, 'say one');
    const refused = await neither.request(CONTINUE, { storyId: 'S-1', prompt: 'say two' });
    expect(code(refused)).toBe('NO_SESSION_TO_RESUME');
    expect(refused.errors![0]!.message).toBe(
      'story S-1 has no agent session to resume (its agent, over ACP, offers neither session/resume nor session/load): start it again with startAgent instead',
    );
    expect(neither.pool.get('S-1')!.runs).toHaveLength(1);
  });

  it('fails saying why when the agent, changed since, can no longer take the session back', async () => {
    const server = await acpServer({ env: { FAKE_ACP_RESUME: '1' } });
    await runToEnd(server, START, 'say one');
    // The profile is read again at each start: the agent now offers neither.
    const file = path.join(server.root, 'agent-pool.toml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('FAKE_ACP_RESUME = "1"', 'FAKE_ACP_RESUME = "0"'));
    const events = await runToEnd(server, CONTINUE, 'say two');
    expect(server.pool.get('S-1')!.status).toBe('FAILED');
    expect(String(events.at(-1)!.message)).toMatch(
      /^the ACP session could not be started: the agent \(fake-acp\) can neither resume nor load a session, so a follow-up cannot continue session [0-9a-f-]+: start a new run with startAgent$/,
    );
  });
});

describe('a misbehaving ACP agent', () => {
  const rogue = (fault: string, profile: string[] = []) => acpServer({ command: ['node', ROGUE_ACP_AGENT], env: { ROGUE: fault }, profile });
  const lastMessage = (events: Event[]) => String(events.at(-1)!.message);

  it('that exits 0 while its session is being set up is FAILED, not done', async () => {
    const server = await rogue('exit-at-set-mode', ['permission_mode = "default"']);
    const events = await runToEnd(server, START, 'hello');
    expect(server.pool.get('S-1')!.status).toBe('FAILED');
    expect(lastMessage(events)).toBe('agent exited with code 0 before it answered the prompt');
    expect(events.some((event) => event.__typename === 'AgentDoneEvent')).toBe(false);
  });

  it('that is not an ACP agent at all fails with its exit and its own words', async () => {
    const server = await acpServer({ command: ['sh', '-c', 'echo "error: unknown option --acp" >&2; exit 2'] });
    const events = await runToEnd(server, START, 'hello');
    expect(server.pool.get('S-1')!.status).toBe('FAILED');
    expect(lastMessage(events)).toBe('agent exited with code 2 before its ACP session started; its last output:\nerror: unknown option --acp');
  });

  it('that is no ACP agent and says nothing fails at the idle timeout, asking whether it speaks ACP', async () => {
    const server = await acpServer({ command: ['sh', '-c', 'exec sleep 30'], profile: ['idle_timeout_seconds = 1'] });
    const events = await runToEnd(server, START, 'hello');
    expect(server.pool.get('S-1')!.status).toBe('FAILED');
    expect(lastMessage(events)).toBe(
      'agent printed nothing for 1 seconds (idle_timeout_seconds): it was stopped; it never started its ACP session: ' +
        'is "sh" an agent that speaks ACP on stdio (gemini needs --acp, opencode the acp subcommand)?',
    );
    expect(leftovers()).toEqual([]);
  });

  it('that stays after its input ended, ignoring SIGTERM too, is killed after the grace periods and is done', async () => {
    const server = await acpServer({ env: { FAKE_ACP_IGNORE_EOF: '1', FAKE_ACP_IGNORE_TERM: '1' } });
    const events = await runToEnd(server, START, 'say all done');
    expect(server.pool.get('S-1')!.status).toBe('COMPLETED');
    expect(events.filter((event) => event.text === 'all done')).toHaveLength(1);
    expect(leftovers()).toEqual([]);
  });

  it('whose request the SDK answers without a person leaves no approval waiting', async () => {
    for (const [fault, reason] of [
      ['withdraw', 'cancelled: the turn ended, or the agent withdrew its request'],
      ['invalid-permission', /^the agent's request was not valid, and the SDK refused it: Invalid params/],
    ] as const) {
      const server = await rogue(fault, ['permission_mode = "default"']);
      const events = await runToEnd(server, START, 'hello');
      expect(server.pool.get('S-1')).toMatchObject({ status: 'COMPLETED', pendingApprovals: [], waitingFor: undefined });
      const resolved = events.find((event) => event.__typename === 'AgentApprovalResolvedEvent');
      expect(resolved, fault).toMatchObject({ allowed: false, optionId: null });
      expect(String(resolved!.reason)).toMatch(reason);
    }
  });

  it('that asks offering nothing to choose is answered cancelled, with no approval to answer', async () => {
    const server = await rogue('no-options', ['permission_mode = "default"']);
    const events = await runToEnd(server, START, 'hello');
    expect(server.pool.get('S-1')!.status).toBe('COMPLETED');
    expect(events.some((event) => event.__typename === 'AgentApprovalRequestEvent')).toBe(false);
    expect(events.map((event) => event.text)).toContain('answered {"outcome":{"outcome":"cancelled"}}');
  });

  it('that answers a prompt without a stopReason is FAILED', async () => {
    const server = await rogue('no-stop-reason');
    const events = await runToEnd(server, START, 'hello');
    expect(server.pool.get('S-1')!.status).toBe('FAILED');
    expect(lastMessage(events)).toBe('the agent answered the prompt without a stopReason');
  });

  it("cannot put words in its run through another session's updates", async () => {
    const server = await rogue('other-session');
    const events = await runToEnd(server, START, 'hello');
    const texts = events.filter((event) => event.__typename === 'AgentOutputEvent').map((event) => event.text);
    expect(texts).toContain('mine');
    expect(texts).not.toContain('spoofed');
    expect(server.pool.get('S-1')!.status).toBe('COMPLETED');
  });
});
