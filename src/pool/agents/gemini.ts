import { type AgentAdapter, toolKind } from '../agent-adapter.js';
import type { AgentEventPayload, ToolKind } from '../events.js';
import { type JsonObject, JsonLinesParser, numberField, stringField } from './json-lines.js';

/** The flags that make Gemini CLI print stream-json and run unattended. */
const GEMINI_FLAGS = ['-o', 'stream-json', '--yolo', '--skip-trust'] as const;

/** Gemini CLI's tools by what they do. */
const GEMINI_TOOLS: Readonly<Record<string, ToolKind>> = {
  read_file: 'READ',
  read_many_files: 'READ',
  write_file: 'EDIT',
  replace: 'EDIT',
  run_shell_command: 'COMMAND',
  glob: 'SEARCH',
  grep_search: 'SEARCH',
  search_file_content: 'SEARCH',
  list_directory: 'SEARCH',
  web_fetch: 'WEB',
  google_web_search: 'WEB',
  invoke_agent: 'TASK',
};

/**
 * The prompt as Gemini CLI (0.61.0) takes it whole: one word, `--prompt=<prompt>`. Its
 * parser (yargs) reads a separate word that starts with "-" (a markdown list) as an option
 * ("Not enough arguments following: p"), and drops the words after `--` (they are not its
 * `query`). Only `-p`/`--prompt` makes it run headless in a terminal: an empty prompt stays
 * `--prompt ""` (the bare `--prompt=` would open the interactive UI, which waits for ever).
 */
function geminiPrompt(prompt: string): string[] {
  return prompt === '' ? ['--prompt', ''] : [`--prompt=${prompt}`];
}

/**
 * `kind = "gemini"`: Gemini CLI's `-o stream-json` lines. `init` gives the session id; the
 * assistant's text comes in pieces (`message` lines with `delta`), joined into one
 * AgentOutputEvent when the next other line (or the end) comes; `tool_use` and
 * `tool_result` are tool calls and results; `result` gives the token counts (Gemini reports
 * no cost) and, with `status: "error"`, the failure. The model is the profile's `args`
 * (`-m`).
 */
export const geminiAdapter: AgentAdapter = {
  args: ({ prompt, extraArgs, resumeSessionId }) => [
    ...geminiPrompt(prompt),
    ...GEMINI_FLAGS,
    ...(resumeSessionId === undefined ? [] : ['--resume', resumeSessionId]),
    ...extraArgs,
  ],
  interruptSignal: 'SIGINT',
  createRunParser: () => new GeminiRunParser(),
};

class GeminiRunParser extends JsonLinesParser {
  #text = '';
  #sawResult = false;

  protected readObject(data: JsonObject): AgentEventPayload[] {
    if (data.type === 'message' && data.role === 'assistant') {
      const content = stringField(data, 'content') ?? '';
      if (data.delta === true) {
        this.#text += content;
        return [];
      }
      return [...this.#flush(), ...(content === '' ? [] : [{ type: 'output' as const, text: content }])];
    }
    const events = this.#flush();
    switch (data.type) {
      case 'init':
        this.sessionId = stringField(data, 'session_id') ?? this.sessionId;
        break;
      case 'tool_use': {
        const tool = stringField(data, 'tool_name') ?? 'unknown';
        events.push({ type: 'tool_call', callId: stringField(data, 'tool_id') ?? '', tool, kind: toolKind(GEMINI_TOOLS, tool), input: data.parameters ?? null });
        break;
      }
      case 'tool_result':
        events.push({
          type: 'tool_result',
          callId: stringField(data, 'tool_id') ?? '',
          isError: data.status !== 'success',
          output: stringField(data, 'output') ?? stringField(data.error, 'message') ?? null,
        });
        break;
      case 'result': {
        this.#sawResult = true;
        const stats = data.stats;
        this.usage = {
          inputTokens: numberField(stats, 'input_tokens'),
          outputTokens: numberField(stats, 'output_tokens'),
          cachedInputTokens: numberField(stats, 'cached'),
        };
        events.push({ type: 'usage', ...this.usage });
        if (data.status !== 'success') this.failure ??= stringField(data.error, 'message') ?? `Gemini ended with status ${String(data.status)}`;
        break;
      }
      case 'error':
        if (data.severity !== 'warning') this.failure ??= stringField(data, 'message');
        break;
    }
    return events;
  }

  #flush(): AgentEventPayload[] {
    if (this.#text === '') return [];
    const text = this.#text;
    this.#text = '';
    return [{ type: 'output', text }];
  }

  protected override beforePlainText(): AgentEventPayload[] {
    return this.#flush();
  }

  override end(): AgentEventPayload[] {
    return this.#flush();
  }

  protected override missingEnd(): string | undefined {
    return this.#sawResult ? undefined : 'agent exited without printing a result';
  }
}
