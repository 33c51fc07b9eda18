// Codex, Gemini CLI and opencode from npm, run for real by agent-pool against fake model APIs
// on localhost that speak their providers' protocols. Each writes a file through its own
// tool, fails on a refused key with its own message, and resumes its session in a follow-up.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { chatCompletionsProtocol } from '../fixtures/fake-chat-completions.js';
import { geminiProtocol } from '../fixtures/fake-gemini-api.js';
import { type ModelCall, type Protocol, startFakeModelApi, type Turn } from '../fixtures/fake-model-api.js';
import { responsesProtocol, RESPONSES_USAGE } from '../fixtures/fake-openai-responses.js';
import { type AgentCli, agentCli, agentCliConfig } from '../support/agent-clis.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { AGENT_EVENTS, type EventResult, isTerminalResult, readEvents, startTestServer, type TestServer } from '../support/server.js';

/** Checks that the CLI's tool takes these parameters, so that a scripted call fits its schema. */
function parameters(call: ModelCall, tool: string, names: string[]): void {
  const offered = call.toolParameters(tool);
  for (const name of names) {
    if (!offered.includes(name)) throw new Error(`${tool} takes ${offered.join(', ')}, not ${name}`);
  }
}

/** Per CLI: its provider's protocol, and a turn that writes a file with the CLI's own tool. */
const CLIS: Record<AgentCli, { protocol: Protocol; write(name: string, content: string): Turn; kind: string }> = {
  codex: {
    protocol: responsesProtocol,
    kind: 'COMMAND',
    write: (name, content) => ({
      tool: 'exec_command',
      input: (call) => {
        parameters(call, 'exec_command', ['cmd']);
        return { cmd: `echo '${content}' > ${name}` };
      },
    }),
  },
  gemini: {
    protocol: geminiProtocol,
    kind: 'EDIT',
    write: (name, content) => ({
      tool: 'write_file',
      input: (call) => {
        parameters(call, 'write_file', ['file_path', 'content']);
        return { file_path: path.join(call.workingDirectory, name), content: `${content}\n` };
      },
    }),
  },
  opencode: {
    protocol: chatCompletionsProtocol,
    kind: 'EDIT',
    write: (name, content) => ({
      tool: 'write',
      input: (call) => {
        parameters(call, 'write', ['filePath', 'content']);
        return { filePath: path.join(call.workingDirectory, name), content: `${content}\n` };
      },
    }),
  },
};

/**
 * The texts of a model call's user messages, whatever the protocol: Responses `input`,
 * Gemini `contents` (`parts`), Chat Completions `messages`.
 */
function userTexts(body: unknown): string[] {
  if (Array.isArray(body)) return body.flatMap(userTexts);
  if (typeof body !== 'object' || body === null) return [];
  const object = body as Record<string, unknown>;
  if (object.role !== 'user') return Object.values(object).flatMap(userTexts);
  return [object.content, object.parts].flat().flatMap((part) => {
    if (typeof part === 'string') return [part];
    const text = (part as { text?: unknown } | null | undefined)?.text;
    return typeof text === 'string' ? [text] : [];
  });
}

const START = 'mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }';
const CONTINUE = 'mutation ($storyId: ID!, $prompt: String!) { continueAgent(storyId: $storyId, prompt: $prompt) { status } }';

async function setUp(
  context: Parameters<typeof agentCli>[0],
  cli: AgentCli,
  options: { retries?: number; idleTimeoutSeconds?: number } = {},
) {
  const command = agentCli(context, cli);
  const api = await startFakeModelApi(CLIS[cli].protocol);
  onTestFinished(() => api.close());
  const server = await startTestServer({ toml: agentCliConfig(cli, command, api.url, options) });
  return { api, server };
}

async function run(server: TestServer, mutation: string, prompt: string): Promise<EventResult[]> {
  const events = server.wsClient().iterate({
    query: AGENT_EVENTS,
    variables: { storyId: 'S-1', afterSeq: server.pool.get('S-1')?.lastSeq ?? 0 },
  });
  const result = await server.request(mutation, { storyId: 'S-1', prompt });
  expect(result.errors).toBeUndefined();
  return readEvents(events, isTerminalResult);
}

const TYPED_EVENTS = `subscription { agentEvents(storyId: "S-1") {
  __typename seq
  ... on AgentToolCallEvent { lineSeq callId tool kind input }
  ... on AgentToolResultEvent { lineSeq callId isError output }
  ... on AgentUsageEvent { lineSeq inputTokens outputTokens cachedInputTokens costUsd }
  ... on AgentOutputEvent { text }
  ... on AgentDoneEvent { sessionId }
  ... on AgentErrorEvent { message }
} }`;

for (const cli of Object.keys(CLIS) as AgentCli[]) {
  describe(`the real ${cli} CLI`, () => {
    it('writes a file through its own tool and ends COMPLETED, with typed events and usage', async (context) => {
      const { api, server } = await setUp(context, cli);
      api.script(CLIS[cli].write('hello.txt', `hello from ${cli}`), { text: 'I wrote hello.txt.' });
      await run(server, START, 'Create hello.txt.');
      expect(api.failures).toEqual([]);

      const agent = server.pool.get('S-1')!;
      expect(agent).toMatchObject({ status: 'COMPLETED', agent: 'default', error: undefined });
      expect(agent.sessionId).toBeTruthy();
      expect(readFileSync(path.join(agent.worktreePath!, 'hello.txt'), 'utf8')).toBe(`hello from ${cli}\n`);
      expect(existsSync(path.join(server.root, 'hello.txt'))).toBe(false);

      const events: Array<Record<string, unknown>> = [];
      for await (const result of server.wsClient().iterate({ query: TYPED_EVENTS })) {
        const event = (result.data as { agentEvents: Record<string, unknown> }).agentEvents;
        events.push(event);
        if (event.__typename === 'AgentDoneEvent') break;
      }
      const call = events.find((event) => event.__typename === 'AgentToolCallEvent')!;
      expect(call).toMatchObject({ kind: CLIS[cli].kind });
      const result = events.find((event) => event.__typename === 'AgentToolResultEvent' && event.callId === call.callId);
      expect(result).toMatchObject({ isError: false });
      for (const typed of [call, result!]) {
        expect(events.find((event) => event.seq === typed.lineSeq)?.__typename).toBe('AgentJsonEvent');
      }
      // The assistant's text comes once (Gemini streams it in pieces); what a CLI writes to its
      // terminal besides (Gemini's notices on stderr) is plain output too.
      expect(events.filter((event) => event.text === 'I wrote hello.txt.')).toHaveLength(1);
      expect(events.some((event) => event.__typename === 'AgentUsageEvent')).toBe(true);
      expect(agent.usage?.inputTokens).toBeGreaterThan(0);
      expect(agent.usage?.outputTokens).toBeGreaterThan(0);
      expect(events.at(-1)).toMatchObject({ sessionId: agent.sessionId });
    }, 120_000);

    it('ends FAILED with its own message when the API refuses the key', async (context) => {
      const { api, server } = await setUp(context, cli);
      api.failAlways(401);
      const events = await run(server, START, 'Say hello.');
      const agent = server.pool.get('S-1')!;
      expect(agent.status).toBe('FAILED');
      expect(agent.error).toMatch(/401|API key|Unauthorized/i);
      expect(events.at(-1)).toMatchObject({ __typename: 'AgentErrorEvent', message: agent.error });
    }, 120_000);

    it('continues the same session in a follow-up, which sees the first turn', async (context) => {
      const { api, server } = await setUp(context, cli);
      api.script(
        CLIS[cli].write('first.txt', 'one'),
        { text: 'Wrote first.txt.' },
        CLIS[cli].write('second.txt', 'two'),
        { text: 'Wrote second.txt.' },
      );
      await run(server, START, 'Write first.txt.');
      const first = server.pool.get('S-1')!;
      const callsOfFirstRun = api.conversation().length;
      await run(server, CONTINUE, 'Now write second.txt.');
      expect(api.failures).toEqual([]);

      const agent = server.pool.get('S-1')!;
      expect(agent.runs.map((runInfo) => [runInfo.status, runInfo.sessionId])).toEqual([
        ['COMPLETED', first.sessionId],
        ['COMPLETED', first.sessionId],
      ]);
      const resumed = JSON.stringify(api.conversation()[callsOfFirstRun]);
      expect(resumed).toContain('Write first.txt.');
      expect(resumed).toContain('Now write second.txt.');
      expect(readFileSync(path.join(agent.worktreePath!, 'first.txt'), 'utf8')).toBe('one\n');
      expect(readFileSync(path.join(agent.worktreePath!, 'second.txt'), 'utf8')).toBe('two\n');
      if (cli === 'codex') {
        // Codex sums usage over the thread: each run counts only its own requests.
        const callsOfSecondRun = api.conversation().length - callsOfFirstRun;
        expect(agent.runs[1]!.usage?.inputTokens).toBe(callsOfSecondRun * RESPONSES_USAGE.input_tokens);
        expect(agent.runs[0]!.usage?.inputTokens).toBe(callsOfFirstRun * RESPONSES_USAGE.input_tokens);
      }
    }, 180_000);

    it('takes a prompt that starts with "-" (a markdown list) whole, in a first run and in a follow-up', async (context) => {
      const { api, server } = await setUp(context, cli);
      api.script({ text: 'Noted.' }, { text: 'Noted too.' });
      await run(server, START, '- first\n- second');
      expect(server.pool.get('S-1')).toMatchObject({ status: 'COMPLETED', error: undefined });
      const callsOfFirstRun = api.conversation().length;
      await run(server, CONTINUE, '- third\n- fourth');
      expect(api.failures).toEqual([]);

      const agent = server.pool.get('S-1')!;
      expect(agent.runs.map((runInfo) => [runInfo.status, runInfo.sessionId])).toEqual([
        ['COMPLETED', agent.sessionId],
        ['COMPLETED', agent.sessionId],
      ]);
      // The model got each prompt as it was written: one text, neither cut nor quoted.
      expect(userTexts(api.conversation()[0])).toContain('- first\n- second');
      expect(userTexts(api.conversation()[callsOfFirstRun])).toContain('- third\n- fourth');
    }, 180_000);
  });
}

describe('CLIs that retry a failing API for ever', () => {
  it('codex is ended by stopAgent, every process of it gone', async (context) => {
    const { api, server } = await setUp(context, 'codex', { retries: 1000 });
    api.failAlways(500);
    const events = server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    await server.request(START, { storyId: 'S-1', prompt: 'Say hello.' });
    await expect.poll(() => api.conversation().length, { timeout: 30_000 }).toBeGreaterThan(1);
    const stopped = await server.request<{ stopAgent: { status: string } }>('mutation { stopAgent(storyId: "S-1") { status } }');
    expect(stopped.data).toEqual({ stopAgent: { status: 'STOPPED' } });
    expect(leftovers()).toEqual([]);
    expect((await readEvents(events, isTerminalResult)).at(-1)).toMatchObject({ message: 'stopped by request' });
  }, 120_000);

  it('opencode, silent while it retries, is ended by the idle timeout', async (context) => {
    const { api, server } = await setUp(context, 'opencode', { idleTimeoutSeconds: 20 });
    api.failAlways(500);
    const events = await run(server, START, 'Say hello.');
    // It had started retrying, without a word, before the timeout ended it.
    expect(api.requests.length).toBeGreaterThan(1);
    expect(events.at(-1)).toMatchObject({
      __typename: 'AgentErrorEvent',
      message: 'agent printed nothing for 20 seconds (idle_timeout_seconds): it was stopped',
    });
    expect(server.pool.get('S-1')!.status).toBe('FAILED');
    expect(leftovers()).toEqual([]);
  }, 120_000);
});
