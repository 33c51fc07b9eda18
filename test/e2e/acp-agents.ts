// Gemini CLI, opencode and Codex (through its adapter, codex-acp) from npm, driven over the
// Agent Client Protocol (kind "acp") by agent-pool, offline against fake model APIs that
// speak their providers' protocols: a write asked, approved and done; one denied and not
// done; two turns in one live session; a follow-up that resumes the session; usage; an
// interrupt; nothing left running after a stop. acp-gemini.test.ts, acp-opencode.test.ts and
// acp-codex.test.ts run these for each CLI.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { chatCompletionsProtocol } from '../fixtures/fake-chat-completions.js';
import { geminiProtocol } from '../fixtures/fake-gemini-api.js';
import { type Protocol, startFakeModelApi, type Turn } from '../fixtures/fake-model-api.js';
import { responsesProtocol } from '../fixtures/fake-openai-responses.js';
import { agentCli, agentCliConfig } from '../support/agent-clis.js';
import { leftovers } from '../support/no-leftover-processes.js';
import { AGENT_EVENTS, type EventResult, isTerminalResult, readEvents, startTestServer, type TestServer } from '../support/server.js';

type AcpCli = 'gemini' | 'opencode' | 'codex';

/** Per CLI: its provider's protocol, a turn that writes a file with its own tool, and how it takes a refusal. */
const CLIS: Record<AcpCli, { protocol: Protocol; write(name: string, content: string): Turn; refusal: 'tool result' | 'turn ends' }> = {
  gemini: {
    protocol: geminiProtocol,
    write: (name, content) => ({
      tool: 'write_file',
      input: (call) => ({ file_path: path.join(call.workingDirectory, name), content: `${content}\n` }),
    }),
    refusal: 'tool result',
  },
  opencode: {
    protocol: chatCompletionsProtocol,
    write: (name, content) => ({
      tool: 'write',
      input: (call) => ({ filePath: path.join(call.workingDirectory, name), content: `${content}\n` }),
    }),
    refusal: 'tool result',
  },
  // A command run outside Codex's sandbox, which its read-only mode (agentCliConfig sets it
  // for permission mode "default") asks the client about. (Its apply_patch is a freeform tool
  // that the fake Responses API does not stream.)
  codex: {
    protocol: responsesProtocol,
    write: (name, content) => ({
      tool: 'exec_command',
      input: (call) => {
        const offered = call.toolParameters('exec_command');
        for (const parameter of ['cmd', 'sandbox_permissions', 'justification']) {
          if (!offered.includes(parameter)) throw new Error(`exec_command takes ${offered.join(', ')}, not ${parameter}`);
        }
        return { cmd: `echo '${content}' > ${name}`, sandbox_permissions: 'require_escalated', justification: `Create ${name}.` };
      },
    }),
    // Its one "No" (optionId "cancel": "No, and tell Codex what to do differently") ends the
    // turn (stopReason "cancelled"); the model reads "aborted by user" in the next one.
    refusal: 'turn ends',
  },
};

const START = 'mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }';
const CONTINUE = 'mutation ($storyId: ID!, $prompt: String!) { continueAgent(storyId: $storyId, prompt: $prompt) { status } }';
const PENDING = `query { agent(storyId: "S-1") { status waitingFor pendingApprovals { requestId tool options { id name kind } } } }`;

interface Pending {
  agent: { status: string; waitingFor: string | null; pendingApprovals: Array<{ requestId: string; tool: string; options: Array<{ id: string; kind: string }> }> };
}

async function setUp(context: Parameters<typeof agentCli>[0], cli: AcpCli, acp: { permissionMode?: string; keepOpenSeconds?: number }) {
  const command = agentCli(context, cli, { acp: true });
  const api = await startFakeModelApi(CLIS[cli].protocol);
  onTestFinished(() => api.close());
  const toml = agentCliConfig(cli, command, api.url, { acp });
  const server = await startTestServer({ toml });
  return { api, server };
}

function subscribe(server: TestServer) {
  return server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1', afterSeq: server.pool.get('S-1')?.lastSeq ?? 0 } });
}

async function waitForApproval(server: TestServer): Promise<Pending['agent']['pendingApprovals'][number]> {
  let pending: Pending['agent']['pendingApprovals'] = [];
  await expect
    .poll(async () => {
      pending = (await server.request<Pending>(PENDING)).data!.agent.pendingApprovals;
      return pending.length;
    }, { timeout: 60_000 })
    .toBe(1);
  return pending[0]!;
}

/** The tests of one CLI over ACP (each CLI's file calls this, so that the two run in parallel). */
export function describeAcpCli(cli: AcpCli): void {
  describe(`${cli} over ACP`, () => {
    it('asks before a write; approved, the file is written and the run completes with usage', async (context) => {
      const { api, server } = await setUp(context, cli, { permissionMode: 'default' });
      api.script(CLIS[cli].write('hello.txt', 'hello'), { text: 'I wrote hello.txt.' });
      const events = subscribe(server);
      await server.request(START, { storyId: 'S-1', prompt: 'Create hello.txt.' });
      const approval = await waitForApproval(server);
      expect((await server.request<Pending>(PENDING)).data!.agent.waitingFor).toBe('APPROVAL');
      expect(approval.options.map((option) => option.kind).sort()).toEqual(['allow_always', 'allow_once', 'reject_once']);
      const worktree = server.pool.get('S-1')!.worktreePath!;
      expect(existsSync(path.join(worktree, 'hello.txt'))).toBe(false);
      const answered = await server.request('mutation ($r: ID!) { respondToApproval(storyId: "S-1", requestId: $r, allow: true) { status } }', { r: approval.requestId });
      expect(answered.errors).toBeUndefined();
      const seen: EventResult[] = await readEvents(events, isTerminalResult);
      expect(api.failures).toEqual([]);
      const agent = server.pool.get('S-1')!;
      expect(agent).toMatchObject({ status: 'COMPLETED', error: undefined });
      expect(readFileSync(path.join(worktree, 'hello.txt'), 'utf8')).toBe('hello\n');
      expect(seen.filter((event) => event.text === 'I wrote hello.txt.')).toHaveLength(1);
      expect(agent.usage?.inputTokens).toBeGreaterThan(0);
      expect(agent.usage?.outputTokens).toBeGreaterThan(0);
      expect(agent.sessionId).toBeTruthy();
      expect(leftovers()).toEqual([]);
    }, 120_000);

    it('asks before a write; denied, nothing is written and the model hears of it', async (context) => {
      const { api, server } = await setUp(context, cli, { permissionMode: 'default' });
      api.script(CLIS[cli].write('no.txt', 'no'), { text: 'I did not write it.' });
      const events = subscribe(server);
      await server.request(START, { storyId: 'S-1', prompt: 'Create no.txt.' });
      const approval = await waitForApproval(server);
      const reject = approval.options.find((option) => option.kind === 'reject_once')!;
      const answered = await server.request('mutation ($r: ID!, $o: ID) { respondToApproval(storyId: "S-1", requestId: $r, optionId: $o) { status } }', {
        r: approval.requestId,
        o: reject.id,
      });
      expect(answered.errors).toBeUndefined();
      const seen = await readEvents(events, isTerminalResult);
      expect(api.failures).toEqual([]);
      const agent = server.pool.get('S-1')!;
      expect(existsSync(path.join(agent.worktreePath!, 'no.txt'))).toBe(false);
      expect(seen.find((event) => event.__typename === 'AgentApprovalResolvedEvent')).toMatchObject({ allowed: false });
      expect(agent.status).toBe('COMPLETED');
      if (CLIS[cli].refusal === 'tool result') {
        // The model's next call carries the refusal as the tool's result.
        expect(JSON.stringify(api.conversation().at(-1))).toMatch(/reject|denied|cancel/i);
        return;
      }
      // The refusal ended the turn: no model call after it, and a prompt answered "cancelled".
      expect(api.conversation()).toHaveLength(1);
      expect(seen.some((event) => JSON.stringify(event.data ?? null).includes('"stopReason":"cancelled"'))).toBe(true);
      // The follow-up's call carries it.
      const followUp = subscribe(server);
      await server.request(CONTINUE, { storyId: 'S-1', prompt: 'Why not?' });
      await readEvents(followUp, isTerminalResult);
      expect(api.failures).toEqual([]);
      expect(server.pool.get('S-1')!.status).toBe('COMPLETED');
      expect(api.conversation()).toHaveLength(2);
      expect(JSON.stringify(api.conversation()[1])).toMatch(/aborted by user/);
    }, 120_000);

    it('takes a second turn in the live session through sendMessage, then resumes it in a follow-up', async (context) => {
      // Long enough for the message sent at once.
      const { api, server } = await setUp(context, cli, { keepOpenSeconds: 30 });
      api.script({ text: 'First answer.' }, { text: 'Second answer.' }, { text: 'Third answer.' });
      await server.request(START, { storyId: 'S-1', prompt: 'First question.' });
      await expect
        .poll(async () => (await server.request<Pending>(PENDING)).data!.agent.waitingFor, { timeout: 60_000 })
        .toBe('INPUT');
      // Its process started before this: the minute its session's file is named by is this one or earlier.
      const firstProcessBy = Date.now();
      const events = subscribe(server);
      const sent = await server.request('mutation { sendMessage(storyId: "S-1", text: "Second question.") { status } }');
      expect(sent.errors).toBeUndefined();
      const secondTurn = await readEvents(events, (event) => event.text === 'Second answer.');
      // The second turn's model call carries the first turn: one session.
      expect(api.conversation()).toHaveLength(2);
      expect(JSON.stringify(api.conversation()[1])).toContain('First question.');
      expect(secondTurn.filter((event) => event.__typename === 'AgentOutputEvent' && event.text?.endsWith('answer.'))).toHaveLength(1);
      const stopped = await server.request<{ stopAgent: { status: string } }>('mutation { stopAgent(storyId: "S-1") { status } }');
      expect(stopped.data).toEqual({ stopAgent: { status: 'STOPPED' } });
      expect(leftovers()).toEqual([]);

      const first = server.pool.get('S-1')!;
      // Gemini CLI (0.61) names a session's chat file by the minute its process started: a
      // follow-up started in the same minute truncates it and finds no session to load. (The
      // run's startedAt is when it was queued: under load its process starts later.)
      if (cli === 'gemini') await setTimeout(Math.max(0, Math.floor(firstProcessBy / 60_000) * 60_000 + 61_000 - Date.now()));
      const resumed = subscribe(server);
      await server.request(CONTINUE, { storyId: 'S-1', prompt: 'Third question.' });
      const resumedEvents = await readEvents(resumed, (event) => event.text === 'Third answer.');
      expect(api.failures).toEqual([]);
      // Its answer came: the follow-up waits keep_open_seconds for a message, and is stopped.
      expect((await server.request('mutation { stopAgent(storyId: "S-1") { status } }')).errors).toBeUndefined();
      const agent = server.pool.get('S-1')!;
      expect(agent.runs.map((run) => [run.status, run.sessionId])).toEqual([
        ['STOPPED', first.sessionId],
        ['STOPPED', first.sessionId],
      ]);
      expect(JSON.stringify(api.conversation().at(-1))).toContain('Second question.');
      // What the agent replayed of the session while loading it is not recorded again.
      expect(resumedEvents.filter((event) => event.text === 'First answer.' || event.text === 'Second answer.')).toEqual([]);
      expect(resumedEvents.filter((event) => event.text === 'Third answer.')).toHaveLength(1);
      expect(leftovers()).toEqual([]);
    }, 180_000);

    it('is interrupted in the middle of a turn (session/cancel) and ends STOPPED, nothing of it left', async (context) => {
      const { api, server } = await setUp(context, cli, {});
      api.script({ stall: true });
      const events = subscribe(server);
      await server.request(START, { storyId: 'S-1', prompt: 'Say something long.' });
      await expect.poll(() => api.conversation().length, { timeout: 60_000 }).toBe(1);
      const interrupted = await server.request('mutation { interruptAgent(storyId: "S-1") { status } }');
      expect(interrupted.errors).toBeUndefined();
      await readEvents(events, isTerminalResult);
      expect(server.pool.get('S-1')!.status).toBe('STOPPED');
      expect(leftovers()).toEqual([]);
    }, 120_000);
  });
}
