import { type AgentAdapter, type RunParserOptions, toolKind } from '../agent-adapter.js';
import type { AgentEventPayload, ToolKind, Usage } from '../events.js';
import { isObject, type JsonObject, JsonLinesParser, numberField, stringField } from './json-lines.js';

/** The flags that make `codex exec` print JSON lines and run unattended. */
const CODEX_FLAGS = ['--json', '--dangerously-bypass-approvals-and-sandbox'] as const;

/** Codex's tool items by what they do. */
const CODEX_ITEMS: Readonly<Record<string, ToolKind>> = {
  command_execution: 'COMMAND',
  file_change: 'EDIT',
  web_search: 'WEB',
  mcp_tool_call: 'OTHER',
};

/** What a tool item was asked to do. */
function itemInput(item: JsonObject): unknown {
  switch (item.type) {
    case 'command_execution':
      return { command: item.command };
    case 'file_change':
      return { changes: item.changes };
    case 'web_search':
      return { query: item.query };
    default:
      return { server: item.server, tool: item.tool, arguments: item.arguments };
  }
}

function itemOutput(item: JsonObject): string | null {
  if (typeof item.aggregated_output === 'string') return item.aggregated_output;
  if (item.type === 'file_change' && Array.isArray(item.changes)) {
    return item.changes.map((change) => (isObject(change) ? `${change.kind} ${change.path}` : '')).join('\n');
  }
  return item.result === undefined ? null : JSON.stringify(item.result);
}

function usageOf(report: unknown): Usage {
  return {
    inputTokens: numberField(report, 'input_tokens'),
    outputTokens: numberField(report, 'output_tokens'),
    cachedInputTokens: numberField(report, 'cached_input_tokens'),
  };
}

function minus(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? undefined : Math.max(0, a - (b ?? 0));
}

/**
 * `kind = "codex"`: `codex exec --json` lines. `thread.started` gives the session (thread)
 * id; an `agent_message` item is the assistant's text; command, file change, web search and
 * MCP items are tool calls and results; `turn.completed` reports usage, summed over the whole
 * thread (so a resumed run subtracts what earlier runs used); `turn.failed` is a failure.
 * `error` lines are notices (Codex prints its retries that way), not the end. Codex reports
 * no cost.
 */
export const codexAdapter: AgentAdapter = {
  args: ({ prompt, extraArgs, resumeSessionId }) =>
    resumeSessionId === undefined
      ? ['exec', ...CODEX_FLAGS, ...extraArgs, '--', prompt]
      : ['exec', 'resume', ...CODEX_FLAGS, ...extraArgs, '--', resumeSessionId, prompt],
  interruptSignal: 'SIGINT',
  createRunParser: (options?: RunParserOptions) => new CodexRunParser(options?.sessionUsage),
};

class CodexRunParser extends JsonLinesParser {
  /** The thread's usage as last reported (or, at the start, what earlier runs of it used). */
  #threadUsage: Usage;
  readonly #started = new Set<string>();
  #turnCompleted = false;

  constructor(sessionUsage: Usage | undefined) {
    super();
    this.#threadUsage = sessionUsage ?? {};
  }

  protected readObject(data: JsonObject): AgentEventPayload[] {
    switch (data.type) {
      case 'thread.started':
        this.sessionId = stringField(data, 'thread_id') ?? this.sessionId;
        return [];
      case 'item.started':
      case 'item.completed':
        return isObject(data.item) ? this.#readItem(data.item, data.type === 'item.completed') : [];
      case 'turn.completed': {
        this.#turnCompleted = true;
        const thread = usageOf(data.usage);
        const turn: Usage = {
          inputTokens: minus(thread.inputTokens, this.#threadUsage.inputTokens),
          outputTokens: minus(thread.outputTokens, this.#threadUsage.outputTokens),
          cachedInputTokens: minus(thread.cachedInputTokens, this.#threadUsage.cachedInputTokens),
        };
        this.#threadUsage = thread;
        this.usage = {
          inputTokens: (this.usage?.inputTokens ?? 0) + (turn.inputTokens ?? 0),
          outputTokens: (this.usage?.outputTokens ?? 0) + (turn.outputTokens ?? 0),
          cachedInputTokens: (this.usage?.cachedInputTokens ?? 0) + (turn.cachedInputTokens ?? 0),
        };
        return [{ type: 'usage', ...turn }];
      }
      case 'turn.failed':
        this.failure ??= stringField(data.error, 'message') ?? 'Codex ended its turn with an error';
        return [];
      default:
        return [];
    }
  }

  #readItem(item: JsonObject, completed: boolean): AgentEventPayload[] {
    const id = stringField(item, 'id') ?? '';
    const type = stringField(item, 'type') ?? '';
    if (type === 'agent_message') {
      const text = stringField(item, 'text');
      return completed && text ? [{ type: 'output', text }] : [];
    }
    if (!Object.hasOwn(CODEX_ITEMS, type)) return [];
    const events: AgentEventPayload[] = [];
    if (!this.#started.has(id)) {
      this.#started.add(id);
      const tool = type === 'mcp_tool_call' ? `${stringField(item, 'server') ?? 'mcp'}.${stringField(item, 'tool') ?? 'tool'}` : type;
      events.push({ type: 'tool_call', callId: id, tool, kind: toolKind(CODEX_ITEMS, type), input: itemInput(item) });
    }
    if (completed) {
      const exitCode = numberField(item, 'exit_code');
      const isError = item.status === 'failed' || (exitCode !== undefined && exitCode !== 0);
      events.push({ type: 'tool_result', callId: id, isError, output: itemOutput(item) });
    }
    return events;
  }

  protected override missingEnd(): string | undefined {
    return this.#turnCompleted ? undefined : 'agent exited before it completed its turn';
  }
}
