import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { claudeAdapter } from '../../src/pool/agents/claude.js';
import { textAdapter } from '../../src/pool/agents/text.js';

// Lines as the real Claude Code CLI (2.1.197) printed them under a terminal.
const INIT =
  '{"type":"system","subtype":"init","cwd":"/tmp/ctest","session_id":"184ad194-0869-4781-912f-b4a2bcfb788e","tools":["Task","Bash","Edit","Read","Write"],"mcp_servers":[],"model":"claude-opus-4-8[1m]","permissionMode":"bypassPermissions","apiKeySource":"none","claude_code_version":"2.1.197","output_style":"default","uuid":"af23ba44-bfd1-449b-b3f3-fc7e88813d36"}';
const NOT_LOGGED_IN =
  '{"type":"assistant","message":{"id":"17a6c2b5-df43-4ac0-9f85-17ed921bbec2","container":null,"model":"<synthetic>","role":"assistant","stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{"input_tokens":0,"output_tokens":0},"content":[{"type":"text","text":"Not logged in · Please run /login"}],"context_management":null},"parent_tool_use_id":null,"session_id":"184ad194-0869-4781-912f-b4a2bcfb788e","uuid":"97c01f25-35ab-41b3-98ac-9762b8504e73","error":"authentication_failed"}';
const ERROR_RESULT =
  '{"type":"result","subtype":"success","is_error":true,"api_error_status":null,"duration_ms":274,"duration_api_ms":0,"num_turns":1,"result":"Not logged in · Please run /login","stop_reason":"stop_sequence","session_id":"184ad194-0869-4781-912f-b4a2bcfb788e","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed","uuid":"604cdf0d-9112-4168-add8-d2c896556ee3"}';
const TOOL_USE =
  '{"type":"assistant","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet","content":[{"type":"tool_use","id":"toolu_01","name":"Write","input":{"file_path":"/w/a.txt","content":"hi"}}],"stop_reason":null},"parent_tool_use_id":null,"session_id":"s-1","uuid":"u-1"}';
const TEXT_AND_THINKING =
  '{"type":"assistant","message":{"id":"msg_01","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"First."},{"type":"text","text":"Second."}]},"session_id":"s-1"}';
const SUCCESS =
  '{"type":"result","subtype":"success","is_error":false,"duration_ms":5000,"num_turns":3,"result":"All done.","session_id":"s-1","total_cost_usd":0.0421,"usage":{"input_tokens":100,"output_tokens":50}}';

describe('claude-stream-json adapter', () => {
  it('builds the contract\'s argv: -p, extra args, the stream-json flags, then -- and the prompt', () => {
    expect(claudeAdapter.args({ prompt: 'Fix it', extraArgs: ['--model', 'sonnet'] })).toEqual([
      '-p',
      '--model',
      'sonnet',
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'bypassPermissions',
      '--',
      'Fix it',
    ]);
  });

  it('gives agent-pool\'s MCP tools with mcp, naming the variables that hold the endpoint and token, never their values', () => {
    const args = claudeAdapter.args({ prompt: 'Plan it', extraArgs: [], mcp: true });
    const config = args[args.indexOf('--mcp-config') + 1]!;
    expect(args.indexOf('--mcp-config')).toBeLessThan(args.indexOf('--'));
    expect(JSON.parse(config)).toEqual({
      mcpServers: { 'agent-pool': { type: 'http', url: '${AGENT_POOL_MCP_URL}', headers: { Authorization: 'Bearer ${AGENT_POOL_TOKEN}' } } },
    });
    expect(claudeAdapter.args({ prompt: 'Plan it', extraArgs: [] })).not.toContain('--mcp-config');
  });

  it('puts budgets and --resume before the --, and a prompt that starts with "-" after it, whole', () => {
    const prompt = '- first\n- second';
    expect(claudeAdapter.args({ prompt, extraArgs: [], maxBudgetUsd: 2, maxTurns: 5, resumeSessionId: 'S-1' })).toEqual([
      '-p',
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'bypassPermissions',
      '--max-budget-usd',
      '2',
      '--max-turns',
      '5',
      '--resume',
      'S-1',
      '--',
      prompt,
    ]);
    // On the control channel the prompt is the first message on stdin: no prompt, no --.
    const control = claudeAdapter.args({ prompt, extraArgs: [], permissionMode: 'default', resumeSessionId: 'S-1' });
    expect(control).not.toContain(prompt);
    expect(control).not.toContain('--');
  });

  it('turns every JSON line into a json event, unchanged, and takes the session id from system/init', () => {
    const parser = claudeAdapter.createRunParser();
    expect(parser.parseLine(INIT)).toEqual([{ type: 'json', data: JSON.parse(INIT), raw: INIT }]);
    expect(parser.sessionId).toBe('184ad194-0869-4781-912f-b4a2bcfb788e');
  });

  it('adds an output event for each text block of an assistant message, and none for a tool_use line', () => {
    const parser = claudeAdapter.createRunParser();
    expect(parser.parseLine(TEXT_AND_THINKING)).toEqual([
      { type: 'json', data: JSON.parse(TEXT_AND_THINKING), raw: TEXT_AND_THINKING },
      { type: 'output', text: 'First.' },
      { type: 'output', text: 'Second.' },
    ]);
    expect(parser.parseLine(TOOL_USE)).toEqual([
      { type: 'json', data: JSON.parse(TOOL_USE), raw: TOOL_USE },
      { type: 'tool_call', callId: 'toolu_01', tool: 'Write', kind: 'EDIT', input: { file_path: '/w/a.txt', content: 'hi' } },
    ]);
  });

  it('turns a non-JSON line into an output event without escape codes, and drops one that is only escape codes', () => {
    const parser = claudeAdapter.createRunParser();
    expect(parser.parseLine('\u001b[31mError:\u001b[0m something broke')).toEqual([
      { type: 'output', text: 'Error: something broke' },
    ]);
    expect(parser.parseLine('\u001b[?25h\u001b[0m\u001b[?1049l')).toEqual([]);
    expect(parser.parseLine('   ')).toEqual([]);
    expect(parser.parseLine('{not json')).toEqual([{ type: 'output', text: '{not json' }]);
  });

  it('reads a JSON line wrapped in escape codes', () => {
    const parser = claudeAdapter.createRunParser();
    expect(parser.parseLine(`\u001b[?25l${SUCCESS}\u001b[0m`)[0]).toEqual({ type: 'json', data: JSON.parse(SUCCESS), raw: SUCCESS });
  });

  it('completes on exit 0 after a successful result, with its cost', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine(SUCCESS);
    expect(parser.usage).toEqual({ inputTokens: 100, outputTokens: 50, cachedInputTokens: undefined, costUsd: 0.0421 });
    expect(parser.sessionId).toBe('s-1');
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
  });

  it('fails with the result\'s own text when is_error is true (the real CLI without a login)', () => {
    const parser = claudeAdapter.createRunParser();
    for (const line of [INIT, NOT_LOGGED_IN, ERROR_RESULT]) parser.parseLine(line);
    expect(parser.outcome({ exitCode: 1, signal: null })).toEqual({
      status: 'FAILED',
      reason: expect.stringMatching(/^Not logged in · Please run \/login\nClaude Code needs a login or an API key: .*ANTHROPIC_API_KEY/),
    });
    expect(parser.sessionId).toBe('184ad194-0869-4781-912f-b4a2bcfb788e');
  });

  it('fails with the error subtype when an error result has no text', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine('{"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"s"}');
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'Claude ended with error_during_execution',
    });
  });

  it('names the budget a run reached', () => {
    const budget = claudeAdapter.createRunParser({ maxBudgetUsd: 0.25 });
    budget.parseLine('{"type":"result","subtype":"error_max_budget_usd","is_error":true,"session_id":"s"}');
    expect(budget.outcome({ exitCode: 1, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'the run reached its budget, max_budget_usd = 0.25 USD (Claude ended with error_max_budget_usd)',
    });
    const turns = claudeAdapter.createRunParser();
    turns.parseLine('{"type":"result","subtype":"error_max_turns","is_error":true,"session_id":"s"}');
    expect(turns.outcome({ exitCode: 0, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'the run reached its limit of turns, --max-turns of its args (Claude ended with error_max_turns)',
    });
  });

  it('judges a live session by its last result: a failed turn followed by a good one completes', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine('{"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"s"}');
    expect(parser.turnsEnded).toBe(1);
    parser.parseLine('{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s","total_cost_usd":0.02}');
    expect(parser.turnsEnded).toBe(2);
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
  });

  it('reads a permission request of the control channel as an approval_request', () => {
    const parser = claudeAdapter.createRunParser();
    const line = JSON.stringify({
      type: 'control_request',
      request_id: 'req-1',
      request: {
        subtype: 'can_use_tool',
        tool_name: 'Write',
        input: { file_path: '/w/a.txt', content: 'x' },
        permission_suggestions: [{ type: 'setMode', mode: 'acceptEdits', destination: 'session' }],
        tool_use_id: 'toolu_1',
      },
    });
    expect(parser.parseLine(line).slice(1)).toEqual([
      {
        type: 'approval_request',
        requestId: 'req-1',
        tool: 'Write',
        input: { file_path: '/w/a.txt', content: 'x' },
        suggestions: [{ type: 'setMode', mode: 'acceptEdits', destination: 'session' }],
        // With suggestions, allowing always applies them.
        options: [
          { id: 'allow_once', name: 'Allow', kind: 'allow_once' },
          { id: 'allow_always', name: 'Allow, and apply its suggested rules', kind: 'allow_always' },
          { id: 'reject_once', name: 'Deny', kind: 'reject_once' },
        ],
      },
    ]);
  });

  it('speaks the control channel: argv, user messages, answers and interrupts', () => {
    const options = { prompt: 'do it', extraArgs: ['--model', 'm'], permissionMode: 'default', maxBudgetUsd: 1, maxTurns: 3 };
    expect(claudeAdapter.args(options)).toEqual([
      '-p',
      '--input-format',
      'stream-json',
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'default',
      '--permission-prompt-tool',
      'stdio',
      '--model',
      'm',
      '--max-budget-usd',
      '1',
      '--max-turns',
      '3',
    ]);
    expect(claudeAdapter.controlChannel?.({ permissionMode: 'bypassPermissions' })).toBeUndefined();
    const control = claudeAdapter.controlChannel!({ permissionMode: 'default' })!;
    expect(JSON.parse(control.userMessage('hi'))).toEqual({ type: 'user', message: { role: 'user', content: 'hi' } });
    expect(JSON.parse(control.answer('r1', { allow: true, optionId: 'allow_always', updatedInput: { a: 1 }, updatedPermissions: [{ type: 'x' }] }))).toEqual({
      type: 'control_response',
      response: {
        subtype: 'success',
        request_id: 'r1',
        response: { behavior: 'allow', updatedInput: { a: 1 }, updatedPermissions: [{ type: 'x' }] },
      },
    });
    expect(JSON.parse(control.answer('r2', { allow: false, optionId: 'reject_once', message: 'no' }))).toEqual({
      type: 'control_response',
      response: { subtype: 'success', request_id: 'r2', response: { behavior: 'deny', message: 'no' } },
    });
    expect(JSON.parse(control.interrupt('i1'))).toEqual({
      type: 'control_request',
      request_id: 'i1',
      request: { subtype: 'interrupt' },
    });
  });

  it('fails with the exit code and the last lines of output on a non-zero exit', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine('Error: something else went wrong');
    expect(parser.outcome({ exitCode: 1, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'agent exited with code 1; its last output:\nError: something else went wrong',
    });
  });

  it('adds the fix to Claude\'s refusal of bypassPermissions as root', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine('--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons');
    const outcome = parser.outcome({ exitCode: 1, signal: null });
    expect(outcome).toEqual({
      status: 'FAILED',
      reason: expect.stringMatching(
        /^agent exited with code 1; its last output:\n--dangerously-skip-permissions cannot be used with root\/sudo privileges for security reasons\nagent-pool runs as root, .* set IS_SANDBOX=1 .*permission_mode = "default"/,
      ),
    });
  });

  it('fails when the agent exits 0 without a result, or is killed', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine(INIT);
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'agent exited without printing a result',
    });
    expect(parser.outcome({ exitCode: null, signal: 'SIGKILL' })).toEqual({
      status: 'FAILED',
      reason: 'agent was killed by SIGKILL',
    });
  });

  it('fails on a non-zero exit even after a successful result', () => {
    const parser = claudeAdapter.createRunParser();
    parser.parseLine(SUCCESS);
    expect(parser.outcome({ exitCode: 2, signal: null }).status).toBe('FAILED');
  });
});

describe('text adapter', () => {
  it('passes the prompt after the extra args and makes every non-empty line an output event', () => {
    expect(textAdapter.args({ prompt: 'do it', extraArgs: ['--fast'] })).toEqual(['--fast', 'do it']);
    const parser = textAdapter.createRunParser();
    expect(parser.parseLine('{"type":"result"}')).toEqual([{ type: 'output', text: '{"type":"result"}' }]);
    expect(parser.parseLine('\u001b[1mbold\u001b[0m')).toEqual([{ type: 'output', text: 'bold' }]);
    expect(parser.parseLine('')).toEqual([]);
  });

  it('completes on exit 0 and fails otherwise with the last lines', () => {
    const parser = textAdapter.createRunParser();
    parser.parseLine('compiling');
    parser.parseLine('error: boom');
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
    expect(parser.outcome({ exitCode: 3, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'agent exited with code 3; its last output:\ncompiling\nerror: boom',
    });
  });
});

describe('claude-stream-json adapter on what the real CLI printed', () => {
  // Captured from Claude Code 2.1.197 run by agent-pool against the fake model API
  // (test/e2e/claude-code.test.ts): a run that writes a file, and one the API overloads.
  const fixture = (name: string) =>
    readFileSync(new URL(`../fixtures/claude-2.1.197-${name}.jsonl`, import.meta.url), 'utf8').trim().split('\n');

  it('reads a run that writes a file: session, text, tool call, tool result, cost', () => {
    const parser = claudeAdapter.createRunParser();
    const events = fixture('write').flatMap((line) => parser.parseLine(line));
    const init = JSON.parse(fixture('write')[0]!);
    const result = JSON.parse(fixture('write').at(-1)!);
    expect(events.filter((event) => event.type === 'json')).toHaveLength(5);
    expect(events.filter((event) => event.type === 'output')).toEqual([{ type: 'output', text: 'I wrote hello.txt.' }]);
    expect(parser.sessionId).toBe(init.session_id);
    expect(parser.usage?.costUsd).toBe(result.total_cost_usd);
    expect(parser.usage?.costUsd).toBeGreaterThan(0);
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
  });

  it('reads a run the API overloaded: its retries, then the failure in the CLI\'s words', () => {
    const parser = claudeAdapter.createRunParser();
    const lines = fixture('overloaded');
    const events = lines.flatMap((line) => parser.parseLine(line));
    const retries = events.filter((event) => event.type === 'json' && (event.data as { subtype?: string }).subtype === 'api_retry');
    expect(retries).toHaveLength(2);
    const result = JSON.parse(lines.at(-1)!);
    expect(parser.outcome({ exitCode: 1, signal: null })).toEqual({ status: 'FAILED', reason: result.result });
    expect(result.result).toMatch(/^API Error: 529 Overloaded/);
  });
});
