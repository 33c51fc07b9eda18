import { type AgentAdapter, OutputTail, type RunOutcome, type RunParser, stripTerminalCodes, toolKind } from '../agent-adapter.js';
import { describeExit, type ProcessExit } from '../agent-process.js';
import { addUsage, type AgentEventPayload, type ApprovalOption, type ToolKind, type Usage } from '../events.js';
import { isObject, type JsonObject, numberField, parseJsonLine, stringField } from './json-lines.js';

/**
 * `kind = "acp"`: any agent that speaks the Agent Client Protocol on stdin and stdout
 * (`gemini --acp`, `opencode acp`, the Codex and Claude adapters). Its argv is the profile's
 * `args` alone: the prompt is the first `session/prompt` of the session. The run drives it
 * through {@link AcpConnection}; this adapter only says so.
 */
export const acpAdapter: AgentAdapter = {
  args: ({ extraArgs }) => [...extraArgs],
  transport: 'acp',
  // The stop's first step is the protocol's own: session/cancel, then the end of its input.
  interruptSignal: null,
  // A live run makes its own parser, numbered by the run (its approvals' ids carry it), and
  // drives the connection with it; this one reads a recorded run's lines as run 1.
  createRunParser: () => new AcpRunParser(1),
};

/** ACP's tool kinds as ours. */
const ACP_TOOL_KINDS: Readonly<Record<string, ToolKind>> = {
  read: 'READ',
  edit: 'EDIT',
  delete: 'EDIT',
  move: 'EDIT',
  search: 'SEARCH',
  execute: 'COMMAND',
  fetch: 'WEB',
};

/** How a turn may end that is not a failure: done, or cancelled by a person. */
const CLEAN_STOPS = new Set(['end_turn', 'cancelled']);

/** A message of JSON-RPC 2.0, as an ACP peer sends it. */
export type JsonRpcMessage = JsonObject & { jsonrpc: '2.0' };

/** What is known of one tool call, gathered from its updates until its event goes out. */
interface ToolCallState {
  title: string;
  kind: string | undefined;
  rawInput: unknown;
  content: unknown;
  announced: boolean;
  finished: boolean;
}

/** The text of ACP content blocks (`{type: "content", content: {type: "text", text}}`, or text blocks), joined. */
function contentText(content: unknown): string | undefined {
  if (!Array.isArray(content)) return undefined;
  const texts = content.flatMap((block) => {
    const inner = isObject(block) && block.type === 'content' ? block.content : block;
    const text = stringField(inner, 'text');
    return text === undefined ? [] : [text];
  });
  return texts.length === 0 ? undefined : texts.join('\n');
}

/** Whether a rawInput says anything (opencode's first tool_call has `{}`). */
function hasInput(value: unknown): boolean {
  return value !== undefined && value !== null && !(isObject(value) && Object.keys(value).length === 0);
}

/**
 * The events of an ACP run, read from the messages the agent sent, each of which stays an
 * AgentJsonEvent. Message chunks are joined into one AgentOutputEvent per message (it ends
 * at the next update that is not a chunk of it, or at the prompt's answer); tool calls and
 * their updates become one tool_call and one tool_result; `plan` updates plans; permission
 * requests approval requests; the answer to each prompt ends a turn, with its usage. What the
 * agent replays when a session loads (its updates from session/load to the first prompt) is
 * not recorded again.
 *
 * It sees what the client sends too ({@link sent}): which answers are of prompts, of the
 * session's start, or of the load whose replay is skipped.
 */
export class AcpRunParser implements RunParser {
  sessionId: string | undefined;
  usage: Usage | undefined;
  turnsEnded = 0;
  /** The client ended the agent after its input ended (it did not exit by itself): not a failure. */
  endedAfterInput = false;
  /** Whether the agent can resume or load a session, once its answer to initialize said so. */
  resumes: boolean | undefined;
  /**
   * Each message the agent sent, once its events are made (replayed ones too): the
   * connection's input, which hands to the SDK those marked `forward`.
   */
  onMessage: ((message: JsonRpcMessage, forward: boolean) => void) | undefined;
  readonly #run: number;
  readonly #tail = new OutputTail();
  /** The ids of the client's requests that are awaited, by method. */
  readonly #requests = new Map<unknown, string>();
  #promptsSent = 0;
  #replaying = false;
  #sessionStarted = false;
  /** Why the session could not be started, if it could not. */
  #setupFailure: string | undefined;
  /** Why the last turn failed, if it did. */
  #turnFailure: string | undefined;
  #message: { id: string | undefined; text: string } | undefined;
  readonly #toolCalls = new Map<string, ToolCallState>();
  /** The approval of each permission request not yet answered, by its JSON-RPC id. */
  readonly #approvals = new Map<unknown, string>();
  #permissionRequests = 0;

  constructor(run: number) {
    this.#run = run;
  }

  /** Whether the agent has started its session (answered session/new with a session id, session/resume or session/load). */
  get sessionStarted(): boolean {
    return this.#sessionStarted;
  }

  /**
   * The approval (its request id, unique in the story: `<run>-<n>`) of the agent's
   * permission request with this JSON-RPC id, while it waits for its answer.
   */
  approvalFor(jsonRpcId: unknown): string | undefined {
    return this.#approvals.get(jsonRpcId);
  }

  /** A message the client sends the agent. */
  sent(message: JsonObject): void {
    const method = stringField(message, 'method');
    // An answer to the agent: its permission request is answered, and its id free again.
    if (method === undefined) this.#approvals.delete(message.id);
    if (method === undefined || message.id === undefined) return;
    this.#requests.set(message.id, method);
    // A load's replay lasts until the first prompt: Gemini CLI (0.61) answers session/load
    // before it has streamed the history, which it sends on without waiting.
    if (method === 'session/load') this.#replaying = true;
    if (method === 'session/prompt') {
      this.#promptsSent++;
      this.#replaying = false;
    }
  }

  /** A line the agent wrote on stdout: one JSON-RPC message (any other line is plain output). */
  parseLine(line: string): AgentEventPayload[] {
    const json = parseJsonLine(line);
    if (json?.data.jsonrpc !== '2.0') {
      const plain = this.stderrLine(line);
      return plain.length === 0 ? [] : [...this.#endMessage(), ...plain];
    }
    const message = json.data as JsonRpcMessage;
    // The SDK gets what it must answer or act on: the agent's requests and notifications
    // ($/cancel_request), and the answers to the client's own requests. Not the updates, which
    // it does nothing with (and would print on the server's stderr, were one invalid), nor
    // answers to requests never made.
    const forward = message.method !== undefined ? message.method !== 'session/update' : this.#requests.has(message.id);
    const events = this.#read(message, json.raw);
    this.onMessage?.(message, forward);
    return events;
  }

  /** One message's events: its json event, then what it makes. */
  #read(message: JsonRpcMessage, raw: string): AgentEventPayload[] {
    const method = stringField(message, 'method');
    if (method === 'session/update' && this.#replaying) return [];
    const events: AgentEventPayload[] = [];
    // An update of another session than the run's is recorded, and read as nothing.
    const otherSession = this.sessionId !== undefined && stringField(message.params, 'sessionId') !== this.sessionId;
    if (method === 'session/update' && !otherSession) this.#update(message.params, events);
    else if (method === 'session/request_permission') this.#permission(message, events);
    else if (method === undefined && message.id !== undefined) this.#answer(message, events);
    return [{ type: 'json', data: message, raw }, ...events];
  }

  /** A line the agent wrote on stderr (or one on stdout that is no message): plain output, never read as anything else. */
  stderrLine(line: string): AgentEventPayload[] {
    const text = stripTerminalCodes(line);
    if (text.trim() === '') return [];
    this.#tail.add(text);
    return [{ type: 'output', text }];
  }

  end(): AgentEventPayload[] {
    return this.#endMessage();
  }

  outcome(exit: ProcessExit): RunOutcome {
    if (this.#setupFailure !== undefined) return { status: 'FAILED', reason: this.#setupFailure };
    if (!this.#sessionStarted) {
      return { status: 'FAILED', reason: this.#tail.describe(`agent ${describeExit(exit)} before its ACP session started`) };
    }
    // Every run has a prompt: a run none of whose turns ended did not do its work.
    if (this.turnsEnded === 0 || this.turnsEnded < this.#promptsSent) {
      return { status: 'FAILED', reason: this.#tail.describe(`agent ${describeExit(exit)} before it answered the prompt`) };
    }
    if (this.#turnFailure !== undefined) return { status: 'FAILED', reason: this.#turnFailure };
    if (exit.exitCode !== 0 && !this.endedAfterInput) return { status: 'FAILED', reason: this.#tail.describe(`agent ${describeExit(exit)}`) };
    return { status: 'COMPLETED' };
  }

  #update(params: unknown, events: AgentEventPayload[]): void {
    const update = isObject(params) && isObject(params.update) ? params.update : undefined;
    const kind = stringField(update, 'sessionUpdate');
    if (!update || kind === undefined) return;
    if (kind === 'agent_message_chunk') {
      const id = stringField(update, 'messageId');
      if (this.#message && this.#message.id !== id) events.push(...this.#endMessage());
      this.#message ??= { id, text: '' };
      this.#message.text += stringField(update.content, 'text') ?? '';
      return;
    }
    events.push(...this.#endMessage());
    switch (kind) {
      case 'tool_call':
      case 'tool_call_update':
        this.#toolCall(update, events);
        break;
      case 'plan':
        events.push({ type: 'plan', entries: update.entries ?? [] });
        break;
    }
  }

  /** A tool call's fields, merged into what is known of it; its call goes out once it is under way, its result once done. */
  #toolCall(update: JsonObject, events: AgentEventPayload[], announce = false): string {
    const id = stringField(update, 'toolCallId') ?? '';
    let call = this.#toolCalls.get(id);
    if (!call) {
      call = { title: 'unknown', kind: undefined, rawInput: undefined, content: undefined, announced: false, finished: false };
      this.#toolCalls.set(id, call);
    }
    // The first title names the tool (opencode: "write"); later ones describe its result.
    if (!call.announced) call.title = stringField(update, 'title') ?? call.title;
    call.kind = stringField(update, 'kind') ?? call.kind;
    if (hasInput(update.rawInput)) call.rawInput = update.rawInput;
    if (update.content !== undefined && !call.announced) call.content = update.content;
    const status = stringField(update, 'status');
    if (!call.announced && (announce || (status !== undefined && status !== 'pending'))) {
      call.announced = true;
      events.push({
        type: 'tool_call',
        callId: id,
        tool: call.title,
        kind: toolKind(ACP_TOOL_KINDS, call.kind ?? ''),
        input: call.rawInput ?? call.content ?? null,
      });
    }
    if (!call.finished && (status === 'completed' || status === 'failed')) {
      call.finished = true;
      const raw = isObject(update.rawOutput) ? update.rawOutput : undefined;
      const output = contentText(update.content) ?? stringField(raw, 'output') ?? (update.rawOutput === undefined ? null : JSON.stringify(update.rawOutput));
      events.push({ type: 'tool_result', callId: id, isError: status === 'failed', output });
    }
    return id;
  }

  #permission(message: JsonObject, events: AgentEventPayload[]): void {
    events.push(...this.#endMessage());
    const params = isObject(message.params) ? message.params : {};
    const toolCall = isObject(params.toolCall) ? params.toolCall : {};
    const callId = this.#toolCall(toolCall, events, true);
    const call = this.#toolCalls.get(callId)!;
    const options: ApprovalOption[] = (Array.isArray(params.options) ? params.options : []).flatMap((option) => {
      const id = stringField(option, 'optionId');
      return id === undefined ? [] : [{ id, name: stringField(option, 'name') ?? id, kind: stringField(option, 'kind') ?? 'other' }];
    });
    // Nothing a person could choose, or an id already waiting for its answer (JSON-RPC
    // forbids both): no approval; the SDK answers it (cancelled, or invalid).
    if (options.length === 0 || this.#approvals.has(message.id)) return;
    const requestId = `${this.#run}-${++this.#permissionRequests}`;
    this.#approvals.set(message.id, requestId);
    events.push({
      type: 'approval_request',
      requestId,
      tool: call.title,
      input: hasInput(toolCall.rawInput) ? toolCall.rawInput : (toolCall.content ?? call.rawInput ?? null),
      suggestions: null,
      options,
    });
  }

  /** The agent's answer to one of the client's requests. */
  #answer(message: JsonObject, events: AgentEventPayload[]): void {
    const method = this.#requests.get(message.id);
    if (method === undefined) return;
    this.#requests.delete(message.id);
    const error = isObject(message.error) ? message.error : undefined;
    const result = isObject(message.result) ? message.result : {};
    switch (method) {
      case 'session/prompt': {
        events.push(...this.#endMessage());
        this.turnsEnded++;
        const usage = error ? undefined : turnUsage(result);
        if (usage) {
          this.usage = addUsage(this.usage, usage);
          events.push({ type: 'usage', ...usage });
        }
        const stopReason = stringField(result, 'stopReason');
        this.#turnFailure = error
          ? `the agent failed the prompt: ${errorText(error)}`
          : stopReason === undefined
            ? 'the agent answered the prompt without a stopReason'
            : CLEAN_STOPS.has(stopReason)
              ? undefined
              : `the agent ended its turn with stopReason "${stopReason}"`;
        break;
      }
      case 'session/new': {
        const sessionId = stringField(result, 'sessionId');
        if (sessionId) {
          this.sessionId = sessionId;
          this.#sessionStarted = true;
        } else {
          this.#setupFailure ??= 'the agent answered session/new without a sessionId';
        }
        break;
      }
      case 'session/resume':
      case 'session/load':
        if (!error) this.#sessionStarted = true;
        break;
      case 'initialize': {
        const capabilities = isObject(result.agentCapabilities) ? result.agentCapabilities : {};
        const sessions = isObject(capabilities.sessionCapabilities) ? capabilities.sessionCapabilities : {};
        this.resumes = capabilities.loadSession === true || isObject(sessions.resume);
        break;
      }
    }
    if (error && method !== 'session/prompt') this.#setupFailure ??= `the agent refused ${method}: ${errorText(error)}`;
  }

  /** The message being said, as one AgentOutputEvent: it ended. */
  #endMessage(): AgentEventPayload[] {
    const message = this.#message;
    this.#message = undefined;
    return message && message.text !== '' ? [{ type: 'output', text: message.text }] : [];
  }
}

/** A JSON-RPC error's message, with its data where it says more. */
export function errorText(error: JsonObject): string {
  const message = stringField(error, 'message') ?? 'unknown error';
  const data = error.data;
  if (data === undefined || data === null) return message;
  const detail = typeof data === 'string' ? data : (stringField(data, 'details') ?? stringField(data, 'message') ?? JSON.stringify(data));
  return detail === message ? message : `${message} (${detail})`;
}

/**
 * A prompt's usage, as agents report it: ACP's `usage` (opencode: input without the cached
 * part, which is counted apart), else Gemini CLI's `_meta.quota.token_count`.
 */
function turnUsage(result: JsonObject): Usage | undefined {
  const usage = result.usage;
  if (isObject(usage)) {
    const input = numberField(usage, 'inputTokens');
    const cached = numberField(usage, 'cachedReadTokens');
    return {
      inputTokens: input === undefined && cached === undefined ? undefined : (input ?? 0) + (cached ?? 0),
      outputTokens: numberField(usage, 'outputTokens'),
      cachedInputTokens: cached,
    };
  }
  const meta = isObject(result._meta) && isObject(result._meta.quota) ? result._meta.quota.token_count : undefined;
  if (!isObject(meta)) return undefined;
  return { inputTokens: numberField(meta, 'input_tokens'), outputTokens: numberField(meta, 'output_tokens') };
}
