import { type AgentAdapter, OutputTail, type RunParser, stripTerminalCodes } from '../agent-adapter.js';
import { describeExit } from '../agent-process.js';
import type { AgentEventPayload } from '../events.js';

/** The flags that make Claude Code print stream-json and run unattended (contract section 3). */
export const CLAUDE_STREAM_JSON_FLAGS = [
  '--output-format',
  'stream-json',
  '--verbose',
  '--permission-mode',
  'bypassPermissions',
] as const;

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseObject(text: string): { data: JsonObject; raw: string } | undefined {
  const raw = text.trim();
  if (!raw.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(raw);
    return isObject(value) ? { data: value, raw } : undefined;
  } catch {
    return undefined;
  }
}

/** A JSON object line, or undefined. Lines under a terminal may carry escape codes around it. */
function parseJsonLine(line: string): { data: JsonObject; raw: string } | undefined {
  return parseObject(line) ?? (line.includes('\u001b') ? parseObject(stripTerminalCodes(line)) : undefined);
}

/** What Claude's `result` line said. */
interface ClaudeResult {
  isError: boolean;
  text: string | undefined;
  subtype: string | undefined;
}

/**
 * `format = "claude-stream-json"`: Claude Code's `--output-format stream-json` lines.
 * Every JSON line is an AgentJsonEvent, unchanged; `system/init` gives the session id;
 * each text block of an `assistant` message is an AgentOutputEvent (the CLI prints one
 * `assistant` line per content block); `result` gives the cost and whether the run failed.
 * A line that is not JSON is an AgentOutputEvent without its escape codes.
 */
export const claudeAdapter: AgentAdapter = {
  args: ({ prompt, extraArgs, resumeSessionId }) => [
    '-p',
    prompt,
    ...extraArgs,
    ...CLAUDE_STREAM_JSON_FLAGS,
    // Always the stored id: "continue the latest session in this folder" can pick another conversation.
    ...(resumeSessionId === undefined ? [] : ['--resume', resumeSessionId]),
  ],
  interruptSignal: 'SIGINT',
  createRunParser: () => new ClaudeRunParser(),
};

class ClaudeRunParser implements RunParser {
  sessionId: string | undefined;
  costUsd: number | undefined;
  #result: ClaudeResult | undefined;
  readonly #tail = new OutputTail();

  parseLine(line: string): AgentEventPayload[] {
    const json = parseJsonLine(line);
    if (json === undefined) {
      const text = stripTerminalCodes(line);
      if (text.trim() === '') return [];
      this.#tail.add(text);
      return [{ type: 'output', text }];
    }

    const { data, raw } = json;
    const events: AgentEventPayload[] = [{ type: 'json', data, raw }];
    switch (data.type) {
      case 'system':
        if (data.subtype === 'init' && typeof data.session_id === 'string') this.sessionId = data.session_id;
        break;
      case 'assistant': {
        const content = isObject(data.message) ? data.message.content : undefined;
        if (Array.isArray(content)) {
          for (const block of content) {
            if (isObject(block) && block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
              events.push({ type: 'output', text: block.text });
            }
          }
        }
        break;
      }
      case 'result':
        if (typeof data.session_id === 'string') this.sessionId ??= data.session_id;
        if (typeof data.total_cost_usd === 'number') this.costUsd = data.total_cost_usd;
        this.#result = {
          isError: data.is_error === true,
          text: typeof data.result === 'string' && data.result.trim() !== '' ? data.result : undefined,
          subtype: typeof data.subtype === 'string' ? data.subtype : undefined,
        };
        break;
    }
    return events;
  }

  outcome(exit: { exitCode: number | null; signal: NodeJS.Signals | null }) {
    const result = this.#result;
    if (result?.isError) {
      return { status: 'FAILED' as const, reason: result.text ?? `Claude ended with ${result.subtype ?? 'an error'}` };
    }
    if (exit.exitCode !== 0) {
      return { status: 'FAILED' as const, reason: this.#tail.describe(`agent ${describeExit(exit)}`) };
    }
    if (!result) {
      return { status: 'FAILED' as const, reason: this.#tail.describe('agent exited without printing a result') };
    }
    return { status: 'COMPLETED' as const };
  }
}
