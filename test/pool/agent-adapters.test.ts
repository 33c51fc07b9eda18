// Every kind's argv, and the Codex, Gemini and opencode adapters on lines their real CLIs
// printed, captured from runs by agent-pool against the fake model APIs
// (test/e2e/agent-clis.test.ts).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RunParser } from '../../src/pool/agent-adapter.js';
import { claudeAdapter } from '../../src/pool/agents/claude.js';
import { codexAdapter } from '../../src/pool/agents/codex.js';
import { geminiAdapter } from '../../src/pool/agents/gemini.js';
import { opencodeAdapter } from '../../src/pool/agents/opencode.js';
import { textAdapter } from '../../src/pool/agents/text.js';
import type { AgentEventPayload } from '../../src/pool/events.js';

function fixture(name: string): string[] {
  return readFileSync(new URL(`../fixtures/${name}.jsonl`, import.meta.url), 'utf8').trim().split('\n');
}

function parseAll(parser: RunParser, lines: string[]): AgentEventPayload[] {
  return [...lines.flatMap((line) => parser.parseLine(line)), ...parser.end()];
}

const typed = (events: AgentEventPayload[]) => events.filter((event) => event.type !== 'json');

describe('argv', () => {
  it('codex: exec --json with approvals and sandbox bypassed; a resume keeps the flags', () => {
    expect(codexAdapter.args({ prompt: '--fix it', extraArgs: ['-m', 'gpt-5.5'] })).toEqual([
      'exec',
      '--json',
      '--dangerously-bypass-approvals-and-sandbox',
      '-m',
      'gpt-5.5',
      '--',
      '--fix it',
    ]);
    expect(codexAdapter.args({ prompt: 'more', extraArgs: [], resumeSessionId: 'T-1' })).toEqual([
      'exec',
      'resume',
      '--json',
      '--dangerously-bypass-approvals-and-sandbox',
      '--',
      'T-1',
      'more',
    ]);
  });

  it('gemini: --prompt=<prompt> with stream-json, yolo and skip-trust; --resume for a follow-up; the model from args', () => {
    expect(geminiAdapter.args({ prompt: 'fix it', extraArgs: ['-m', 'gemini-2.5-pro'], resumeSessionId: 'S-1' })).toEqual([
      '--prompt=fix it',
      '-o',
      'stream-json',
      '--yolo',
      '--skip-trust',
      '--resume',
      'S-1',
      '-m',
      'gemini-2.5-pro',
    ]);
    // A bare `--prompt=` would open Gemini's interactive UI: an empty prompt is a word of its own.
    expect(geminiAdapter.args({ prompt: '', extraArgs: [] }).slice(0, 2)).toEqual(['--prompt', '']);
  });

  it('opencode: run --format json; --session for a follow-up; the prompt\'s words after --', () => {
    expect(opencodeAdapter.args({ prompt: 'fix  "it"', extraArgs: ['-m', 'p/m'], resumeSessionId: 'ses_1' })).toEqual([
      'run',
      '--format',
      'json',
      '--session',
      'ses_1',
      '-m',
      'p/m',
      '--',
      'fix',
      '',
      '"it"',
    ]);
  });

  describe('a prompt that starts with "-" (a markdown list) reaches the CLI whole', () => {
    const prompt = '- first\n- second';
    /** The words after the first `--`. */
    const afterDashes = (args: string[]) => {
      expect(args).toContain('--');
      return args.slice(args.indexOf('--') + 1);
    };

    it('claude: the last word, after --, with --resume before it', () => {
      const args = claudeAdapter.args({ prompt, extraArgs: ['--model', 'sonnet'], resumeSessionId: 'S-1', maxTurns: 3 });
      expect(args[0]).toBe('-p');
      expect(afterDashes(args)).toEqual([prompt]);
      expect(args.slice(-6, -2)).toEqual(['--max-turns', '3', '--resume', 'S-1']);
    });

    it('codex: after --, for a first run and, after the session id, for a resume', () => {
      expect(afterDashes(codexAdapter.args({ prompt, extraArgs: ['-m', 'gpt-5.5'] }))).toEqual([prompt]);
      expect(afterDashes(codexAdapter.args({ prompt, extraArgs: [], resumeSessionId: 'T-1' }))).toEqual(['T-1', prompt]);
    });

    it('gemini: one word, --prompt=<prompt> (it drops the words after --)', () => {
      for (const resumeSessionId of [undefined, 'S-1']) {
        const args = geminiAdapter.args({ prompt, extraArgs: ['-m', 'gemini-2.5-pro'], resumeSessionId });
        expect(args.filter((arg) => arg.includes('first'))).toEqual([`--prompt=${prompt}`]);
        expect(args).not.toContain('-p');
      }
    });

    it('opencode: after --, in words without spaces that it joins back with spaces', () => {
      for (const resumeSessionId of [undefined, 'ses_1']) {
        const words = afterDashes(opencodeAdapter.args({ prompt, extraArgs: ['-m', 'p/m'], resumeSessionId }));
        expect(words.join(' ')).toBe(prompt);
        expect(words.some((word) => word.includes(' '))).toBe(false);
      }
    });

    it('text: <args...> <prompt>, as before', () => {
      expect(textAdapter.args({ prompt, extraArgs: ['--flag', 'x'] })).toEqual(['--flag', 'x', prompt]);
    });
  });
});

describe('codex (0.169.0)', () => {
  it('reads the thread id, a command as a tool call and result, the answer, and the turn\'s usage', () => {
    const lines = fixture('codex-0.169.0-write');
    const parser = codexAdapter.createRunParser();
    const events = typed(parseAll(parser, lines));
    expect(parser.sessionId).toBe(JSON.parse(lines[0]!).thread_id);
    expect(events).toEqual([
      { type: 'tool_call', callId: 'item_0', tool: 'command_execution', kind: 'COMMAND', input: { command: expect.stringContaining('hello.txt') } },
      { type: 'tool_result', callId: 'item_0', isError: false, output: '' },
      { type: 'output', text: 'I wrote hello.txt.' },
      { type: 'usage', inputTokens: 2000, outputTokens: 100, cachedInputTokens: 400 },
    ]);
    expect(parser.usage).toEqual({ inputTokens: 2000, outputTokens: 100, cachedInputTokens: 400 });
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
  });

  it('counts only a resumed run\'s own usage, the thread\'s being summed over its runs', () => {
    const parser = codexAdapter.createRunParser({ sessionUsage: { inputTokens: 2000, outputTokens: 100, cachedInputTokens: 400 } });
    parser.parseLine('{"type":"turn.completed","usage":{"input_tokens":3000,"cached_input_tokens":600,"output_tokens":150}}');
    expect(parser.usage).toEqual({ inputTokens: 1000, outputTokens: 50, cachedInputTokens: 200 });
  });

  it('fails with the turn\'s error, even though codex exits 0, and takes its retry notices for what they are', () => {
    const parser = codexAdapter.createRunParser();
    parseAll(parser, fixture('codex-0.169.0-refused'));
    const outcome = parser.outcome({ exitCode: 1, signal: null });
    expect(outcome).toEqual({ status: 'FAILED', reason: expect.stringContaining('401 Unauthorized') });
    const retrying = codexAdapter.createRunParser();
    retrying.parseLine('{"type":"error","message":"Reconnecting... 1/3 (high demand)"}');
    retrying.parseLine('{"type":"turn.failed","error":{"message":"high demand"}}');
    expect(retrying.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'FAILED', reason: 'high demand' });
  });
});

describe('gemini (0.61.0)', () => {
  it('reads the session, a tool call and result, the answer joined from its pieces, and the usage', () => {
    const lines = fixture('gemini-0.61.0-write');
    const parser = geminiAdapter.createRunParser();
    const events = typed(parseAll(parser, lines));
    expect(parser.sessionId).toBe(JSON.parse(lines[0]!).session_id);
    expect(events).toEqual([
      {
        type: 'tool_call',
        callId: expect.stringContaining('write_file'),
        tool: 'write_file',
        kind: 'EDIT',
        input: { file_path: expect.stringContaining('hello.txt'), content: 'hello from gemini\n' },
      },
      { type: 'tool_result', callId: expect.stringContaining('write_file'), isError: false, output: null },
      { type: 'output', text: 'I wrote hello.txt.' },
      { type: 'usage', inputTokens: 2000, outputTokens: 80, cachedInputTokens: 200 },
    ]);
    expect(parser.usage?.costUsd).toBeUndefined();
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
  });

  it('fails with the result\'s error on a refused key (the CLI exits 145)', () => {
    const parser = geminiAdapter.createRunParser();
    parseAll(parser, fixture('gemini-0.61.0-refused'));
    expect(parser.outcome({ exitCode: 145, signal: null })).toEqual({
      status: 'FAILED',
      reason: expect.stringContaining('API key not valid'),
    });
  });

  it('gives held text before a plain line and at the end', () => {
    const parser = geminiAdapter.createRunParser();
    parser.parseLine('{"type":"message","role":"assistant","content":"Hel","delta":true}');
    parser.parseLine('{"type":"message","role":"assistant","content":"lo","delta":true}');
    expect(parser.parseLine('a plain line')).toEqual([
      { type: 'output', text: 'Hello' },
      { type: 'output', text: 'a plain line' },
    ]);
    parser.parseLine('{"type":"message","role":"assistant","content":"Bye","delta":true}');
    expect(parser.end()).toEqual([{ type: 'output', text: 'Bye' }]);
  });
});

describe('opencode (1.18.33)', () => {
  it('reads the session, a tool call and its result, the answer, and usage and cost summed over steps', () => {
    const lines = fixture('opencode-1.18.33-write');
    const parser = opencodeAdapter.createRunParser();
    const events = typed(parseAll(parser, lines));
    expect(parser.sessionId).toBe(JSON.parse(lines[0]!).sessionID);
    expect(events).toEqual([
      { type: 'tool_call', callId: expect.any(String), tool: 'write', kind: 'EDIT', input: expect.objectContaining({ content: 'hello from opencode\n' }) },
      { type: 'tool_result', callId: expect.any(String), isError: false, output: expect.any(String) },
      { type: 'usage', inputTokens: 1000, outputTokens: 40, cachedInputTokens: 100, costUsd: 0 },
      { type: 'output', text: 'I wrote hello.txt.' },
      { type: 'usage', inputTokens: 1000, outputTokens: 40, cachedInputTokens: 100, costUsd: 0 },
    ]);
    expect(parser.usage).toEqual({ inputTokens: 2000, outputTokens: 80, cachedInputTokens: 200, costUsd: 0 });
    expect(parser.outcome({ exitCode: 0, signal: null })).toEqual({ status: 'COMPLETED' });
  });

  it('fails with the error line\'s message on a refused key', () => {
    const parser = opencodeAdapter.createRunParser();
    parseAll(parser, fixture('opencode-1.18.33-refused'));
    expect(parser.outcome({ exitCode: 1, signal: null })).toEqual({
      status: 'FAILED',
      reason: 'Incorrect API key provided: sk-agent-pool-test.',
    });
  });
});
