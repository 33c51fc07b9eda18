import { type AgentAdapter, toolKind } from '../agent-adapter.js';
import { addUsage, type AgentEventPayload, type ToolKind } from '../events.js';
import { isObject, type JsonObject, JsonLinesParser, numberField, stringField } from './json-lines.js';

/** opencode's tools by what they do. */
const OPENCODE_TOOLS: Readonly<Record<string, ToolKind>> = {
  read: 'READ',
  write: 'EDIT',
  edit: 'EDIT',
  multiedit: 'EDIT',
  patch: 'EDIT',
  bash: 'COMMAND',
  grep: 'SEARCH',
  glob: 'SEARCH',
  list: 'SEARCH',
  webfetch: 'WEB',
  websearch: 'WEB',
  task: 'TASK',
};

/**
 * `kind = "opencode"`: `opencode run --format json` lines. Every line carries the
 * `sessionID`; `text` parts are the assistant's text; `tool_use` parts are tool calls and,
 * once completed or failed, their results; each `step_finish` reports tokens and cost, summed
 * over the run; an `error` line is a failure. There is no final line: the exit ends the run.
 */
export const opencodeAdapter: AgentAdapter = {
  args: ({ prompt, extraArgs, resumeSessionId }) => [
    'run',
    '--format',
    'json',
    ...(resumeSessionId === undefined ? [] : ['--session', resumeSessionId]),
    ...extraArgs,
    '--',
    // opencode (1.18.33) joins its message words with spaces and wraps each word that holds one
    // in double quotes (escaping those inside): given words without spaces, it joins them back
    // into the prompt exactly as it was written.
    ...prompt.split(' '),
  ],
  interruptSignal: 'SIGINT',
  createRunParser: () => new OpencodeRunParser(),
};

class OpencodeRunParser extends JsonLinesParser {
  readonly #called = new Set<string>();
  readonly #answered = new Set<string>();

  protected readObject(data: JsonObject): AgentEventPayload[] {
    this.sessionId = stringField(data, 'sessionID') ?? this.sessionId;
    const part = isObject(data.part) ? data.part : {};
    switch (data.type) {
      case 'text': {
        const text = stringField(part, 'text');
        return text ? [{ type: 'output', text }] : [];
      }
      case 'tool_use':
        return this.#readTool(part);
      case 'step_finish': {
        const tokens = part.tokens;
        const cache = isObject(tokens) ? tokens.cache : undefined;
        const read = numberField(cache, 'read') ?? 0;
        const step = {
          inputTokens: (numberField(tokens, 'input') ?? 0) + read + (numberField(cache, 'write') ?? 0),
          outputTokens: (numberField(tokens, 'output') ?? 0) + (numberField(tokens, 'reasoning') ?? 0),
          cachedInputTokens: read,
          costUsd: numberField(part, 'cost'),
        };
        this.usage = addUsage(this.usage, step);
        return [{ type: 'usage', ...step }];
      }
      case 'error': {
        const error = data.error;
        this.failure ??=
          stringField(isObject(error) ? error.data : undefined, 'message') ?? stringField(error, 'name') ?? 'opencode reported an error';
        return [];
      }
      default:
        return [];
    }
  }

  #readTool(part: JsonObject): AgentEventPayload[] {
    const callId = stringField(part, 'callID') ?? stringField(part, 'id') ?? '';
    const tool = stringField(part, 'tool') ?? 'unknown';
    const state = isObject(part.state) ? part.state : {};
    const events: AgentEventPayload[] = [];
    if (!this.#called.has(callId)) {
      this.#called.add(callId);
      events.push({ type: 'tool_call', callId, tool, kind: toolKind(OPENCODE_TOOLS, tool), input: state.input ?? null });
    }
    if ((state.status === 'completed' || state.status === 'error') && !this.#answered.has(callId)) {
      this.#answered.add(callId);
      events.push({
        type: 'tool_result',
        callId,
        isError: state.status === 'error',
        output: stringField(state, 'output') ?? stringField(state, 'error') ?? null,
      });
    }
    return events;
  }
}
