import { type AgentAdapter, toolKind } from '../agent-adapter.js';
import type { AgentEventPayload, ToolKind } from '../events.js';
import { isObject, type JsonObject, JsonLinesParser, numberField, stringField } from './json-lines.js';

/** The flags that make Claude Code print stream-json and run unattended (contract section 3). */
export const CLAUDE_STREAM_JSON_FLAGS = [
  '--output-format',
  'stream-json',
  '--verbose',
  '--permission-mode',
  'bypassPermissions',
] as const;

/** Claude Code's tools by what they do. */
const CLAUDE_TOOLS: Readonly<Record<string, ToolKind>> = {
  Read: 'READ',
  NotebookRead: 'READ',
  Write: 'EDIT',
  Edit: 'EDIT',
  MultiEdit: 'EDIT',
  NotebookEdit: 'EDIT',
  Bash: 'COMMAND',
  BashOutput: 'COMMAND',
  KillShell: 'COMMAND',
  Grep: 'SEARCH',
  Glob: 'SEARCH',
  LS: 'SEARCH',
  WebFetch: 'WEB',
  WebSearch: 'WEB',
  Task: 'TASK',
  Agent: 'TASK',
};

/** A tool result's content as text: a string, or the text blocks of a list. */
function resultText(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((block) => (isObject(block) && typeof block.text === 'string' ? block.text : JSON.stringify(block))).join('\n');
  }
  return content === undefined || content === null ? null : JSON.stringify(content);
}

/**
 * `kind = "claude"`: Claude Code's `--output-format stream-json` lines. `system/init` gives
 * the session id; each text block of an `assistant` message is an AgentOutputEvent (the CLI
 * prints one `assistant` line per content block) and each tool_use block a tool call; the
 * tool_result blocks of a `user` line are tool results; `result` gives the usage and cost,
 * and whether the run failed (`is_error`, with its text).
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

class ClaudeRunParser extends JsonLinesParser {
  #sawResult = false;

  protected readObject(data: JsonObject): AgentEventPayload[] {
    const events: AgentEventPayload[] = [];
    const content = isObject(data.message) && Array.isArray(data.message.content) ? data.message.content : [];
    switch (data.type) {
      case 'system':
        if (data.subtype === 'init') this.sessionId = stringField(data, 'session_id') ?? this.sessionId;
        break;
      case 'assistant':
        for (const block of content) {
          if (!isObject(block)) continue;
          if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
            events.push({ type: 'output', text: block.text });
          } else if (block.type === 'tool_use') {
            const tool = stringField(block, 'name') ?? 'unknown';
            events.push({ type: 'tool_call', callId: stringField(block, 'id') ?? '', tool, kind: toolKind(CLAUDE_TOOLS, tool), input: block.input ?? null });
          }
        }
        break;
      case 'user':
        for (const block of content) {
          if (!isObject(block) || block.type !== 'tool_result') continue;
          events.push({
            type: 'tool_result',
            callId: stringField(block, 'tool_use_id') ?? '',
            isError: block.is_error === true,
            output: resultText(block.content),
          });
        }
        break;
      case 'result': {
        this.#sawResult = true;
        this.sessionId ??= stringField(data, 'session_id');
        const usage = data.usage;
        const cached = numberField(usage, 'cache_read_input_tokens');
        const input = [numberField(usage, 'input_tokens'), numberField(usage, 'cache_creation_input_tokens'), cached];
        this.usage = {
          inputTokens: input.some((n) => n !== undefined) ? input.reduce<number>((sum, n) => sum + (n ?? 0), 0) : undefined,
          outputTokens: numberField(usage, 'output_tokens'),
          cachedInputTokens: cached,
          costUsd: numberField(data, 'total_cost_usd'),
        };
        events.push({ type: 'usage', ...this.usage });
        if (data.is_error === true) {
          const text = stringField(data, 'result');
          this.failure ??= text && text.trim() !== '' ? text : `Claude ended with ${stringField(data, 'subtype') ?? 'an error'}`;
        }
        break;
      }
    }
    return events;
  }

  protected override missingEnd(): string | undefined {
    return this.#sawResult ? undefined : 'agent exited without printing a result';
  }
}
