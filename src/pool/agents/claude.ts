import {
  type AgentAdapter,
  type ControlProtocol,
  type RunArgsOptions,
  type RunOutcome,
  type RunParserOptions,
  toolKind,
} from '../agent-adapter.js';
import type { ProcessExit } from '../agent-process.js';
import { type AgentEventPayload, claudeApprovalOptions, type ToolKind } from '../events.js';
import { MCP_SERVER_NAME, MCP_TOKEN_VARIABLE, MCP_URL_VARIABLE } from '../mcp-access.js';
import { isObject, type JsonObject, JsonLinesParser, numberField, stringField } from './json-lines.js';

/** The flags that make Claude Code print stream-json and run unattended (contract section 3). */
export const CLAUDE_STREAM_JSON_FLAGS = [
  '--output-format',
  'stream-json',
  '--verbose',
  '--permission-mode',
  'bypassPermissions',
] as const;

/**
 * The flags of a run on the control channel: user messages (the prompt first) come as
 * stream-json on stdin, and tool calls that need permission are asked there.
 */
export function claudeControlFlags(permissionMode: string): string[] {
  return [
    '--input-format',
    'stream-json',
    '--output-format',
    'stream-json',
    '--verbose',
    '--permission-mode',
    permissionMode,
    '--permission-prompt-tool',
    'stdio',
  ];
}

/**
 * agent-pool's tools for a run with `mcp = true`, over streamable HTTP. Claude Code expands
 * `${VAR}` in an MCP configuration from its environment, so that the token is never on the
 * command line (where `ps` shows it to every user).
 */
const CLAUDE_MCP_CONFIG = JSON.stringify({
  mcpServers: {
    [MCP_SERVER_NAME]: {
      type: 'http',
      url: `\${${MCP_URL_VARIABLE}}`,
      headers: { Authorization: `Bearer \${${MCP_TOKEN_VARIABLE}}` },
    },
  },
});

/** Whether a run of this permission mode uses the control channel. */
function usesControl(options: Pick<RunArgsOptions, 'permissionMode'>): boolean {
  return options.permissionMode !== undefined && options.permissionMode !== 'bypassPermissions';
}

function budgetFlags(options: RunArgsOptions): string[] {
  return [
    ...(options.maxBudgetUsd ? ['--max-budget-usd', String(options.maxBudgetUsd)] : []),
    ...(options.maxTurns ? ['--max-turns', String(options.maxTurns)] : []),
  ];
}

/** Claude Code's control channel, as measured with 2.1.197: one JSON object per line on stdin. */
const CLAUDE_CONTROL: ControlProtocol = {
  userMessage: (text) => JSON.stringify({ type: 'user', message: { role: 'user', content: text } }),
  answer: (requestId, decision) =>
    JSON.stringify({
      type: 'control_response',
      response: {
        subtype: 'success',
        request_id: requestId,
        response: decision.allow
          ? {
              behavior: 'allow',
              // Mandatory: the input given here is what runs.
              updatedInput: decision.updatedInput,
              ...(decision.updatedPermissions === undefined ? {} : { updatedPermissions: decision.updatedPermissions }),
            }
          : { behavior: 'deny', message: decision.message },
      },
    }),
  interrupt: (requestId) => JSON.stringify({ type: 'control_request', request_id: requestId, request: { subtype: 'interrupt' } }),
};

/** What a failure that ends at a budget says, by the result's subtype. */
const BUDGET_FAILURES: Readonly<Record<string, (options: RunParserOptions) => string>> = {
  error_max_budget_usd: ({ maxBudgetUsd }) =>
    `the run reached its budget, ${maxBudgetUsd ? `max_budget_usd = ${maxBudgetUsd} USD` : '--max-budget-usd of its args'} ` +
    '(Claude ended with error_max_budget_usd)',
  error_max_turns: ({ maxTurns }) =>
    `the run reached its limit of turns, ${maxTurns ? `max_turns = ${maxTurns}` : '--max-turns of its args'} ` +
    '(Claude ended with error_max_turns)',
};

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
  args: (options) => [
    '-p',
    ...(usesControl(options) ? claudeControlFlags(options.permissionMode!) : []),
    ...options.extraArgs,
    ...(usesControl(options) ? [] : CLAUDE_STREAM_JSON_FLAGS),
    ...budgetFlags(options),
    ...(options.mcp ? ['--mcp-config', CLAUDE_MCP_CONFIG] : []),
    // Always the stored id: "continue the latest session in this folder" can pick another conversation.
    ...(options.resumeSessionId === undefined ? [] : ['--resume', options.resumeSessionId]),
    // On the control channel the prompt goes in on stdin, as the first message. Otherwise it is
    // the last word, after `--`: Claude Code (2.1.197) takes a prompt that starts with "-" (a
    // markdown list) for an option and exits with "error: unknown option".
    ...(usesControl(options) ? [] : ['--', options.prompt]),
  ],
  controlChannel: (options) => (usesControl(options) ? CLAUDE_CONTROL : undefined),
  interruptSignal: 'SIGINT',
  createRunParser: (options) => new ClaudeRunParser(options ?? {}),
};

/**
 * Claude's refusals that agent-pool's own settings cause, and what fixes each: the failure
 * keeps Claude's words and adds the fix. (Only the message changes: what the agent prints
 * is never taken as a control signal.)
 */
const CLAUDE_REFUSAL_FIXES: ReadonlyArray<{ says: string; fix: string }> = [
  {
    says: '--dangerously-skip-permissions cannot be used with root',
    fix:
      'agent-pool runs as root, where Claude Code takes permission_mode "bypassPermissions" only in a sandbox. If this ' +
      'machine is one (a container or a VM), set IS_SANDBOX=1 in agent-pool\'s environment or in the profile\'s env ' +
      '(env = { IS_SANDBOX = "1" }); otherwise run agent-pool as another user, or set permission_mode = "default" to ' +
      'approve tool calls from the dashboard.',
  },
  {
    says: 'Not logged in',
    fix:
      'Claude Code needs a login or an API key: run `claude` once as the user that runs agent-pool and log in with ' +
      '/login, or set ANTHROPIC_API_KEY in agent-pool\'s environment or in the profile\'s env.',
  },
];

class ClaudeRunParser extends JsonLinesParser {
  #sawResult = false;

  constructor(private readonly options: RunParserOptions) {
    super();
  }

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
      case 'control_request': {
        const request = isObject(data.request) ? data.request : {};
        if (request.subtype === 'can_use_tool') {
          events.push({
            type: 'approval_request',
            requestId: stringField(data, 'request_id') ?? '',
            tool: stringField(request, 'tool_name') ?? 'unknown',
            input: request.input ?? null,
            suggestions: request.permission_suggestions ?? null,
            options: claudeApprovalOptions(request.permission_suggestions),
          });
        }
        break;
      }
      case 'result': {
        this.#sawResult = true;
        this.turnsEnded++;
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
        // In one live process (the control channel) there is a result per turn: the last decides.
        this.failure = data.is_error === true ? this.#failureOf(data) : undefined;
        break;
      }
    }
    return events;
  }

  #failureOf(result: JsonObject): string {
    const subtype = stringField(result, 'subtype') ?? 'an error';
    const budget = BUDGET_FAILURES[subtype];
    if (budget) return budget(this.options);
    const text = stringField(result, 'result');
    return text && text.trim() !== '' ? text : `Claude ended with ${subtype}`;
  }

  protected override missingEnd(): string | undefined {
    return this.#sawResult ? undefined : 'agent exited without printing a result';
  }

  override outcome(exit: ProcessExit): RunOutcome {
    const outcome = super.outcome(exit);
    if (outcome.status !== 'FAILED') return outcome;
    const known = CLAUDE_REFUSAL_FIXES.find((refusal) => outcome.reason.includes(refusal.says));
    return known ? { status: 'FAILED', reason: `${outcome.reason}\n${known.fix}` } : outcome;
  }
}
