/** Where an agent is in its life. A run ends in exactly one of the last three. */
export type AgentStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'STOPPED';

/** The statuses a run ends in. */
export const FINAL_STATUSES: ReadonlySet<AgentStatus> = new Set(['COMPLETED', 'FAILED', 'STOPPED']);

/** Whether a story with this status has a run in progress (queued or running). */
export function isActive(status: AgentStatus): boolean {
  return status === 'PENDING' || status === 'RUNNING';
}

/** What a tool call does, whichever CLI made it. */
export type ToolKind = 'READ' | 'EDIT' | 'COMMAND' | 'SEARCH' | 'WEB' | 'TASK' | 'OTHER';

/** Tokens and cost, as much of it as an agent reports (a CLI that reports no cost leaves costUsd out). */
export interface Usage {
  /** All input tokens, those read from a cache included. */
  inputTokens?: number;
  outputTokens?: number;
  /** The part of the input tokens read from a cache. */
  cachedInputTokens?: number;
  costUsd?: number;
}

/**
 * What an event says, before the log gives it a seq and a time. The GraphQL types of the
 * contract map one to one: `status` → AgentStatusEvent, `output` → AgentOutputEvent,
 * `json` → AgentJsonEvent, `done` → AgentDoneEvent, `error` → AgentErrorEvent.
 */
export type AgentEventPayload =
  /** The story's status changed. */
  | { type: 'status'; status: AgentStatus }
  /** Text the agent said, or a line of output that is not JSON (ANSI codes removed). */
  | { type: 'output'; text: string }
  /**
   * A JSON line the agent printed, parsed and otherwise unchanged; `raw` is its text as
   * printed (stored as it is, so that it need not be serialized again).
   */
  | { type: 'json'; data: unknown; raw?: string }
  /** The run ended COMPLETED: its terminal event. */
  | { type: 'done'; sessionId: string | null; exitCode: number | null }
  /** The run ended FAILED or STOPPED: its terminal event, with the reason. */
  | { type: 'error'; message: string }
  /**
   * The agent called a tool. Like the other typed events it follows the json event of the
   * line it came from, whose seq is `lineSeq`.
   */
  | { type: 'tool_call'; lineSeq?: number; callId: string; tool: string; kind: ToolKind; input: unknown }
  /** A tool call's result. */
  | { type: 'tool_result'; lineSeq?: number; callId: string; isError: boolean; output: string | null }
  /** What the agent reported it used (per turn or for the run, as its CLI reports it). */
  | ({ type: 'usage'; lineSeq?: number } & Usage)
  /**
   * The agent asks a person to allow a tool call (Claude's control channel, ACP's
   * `session/request_permission`), offering these options (none stored: an event recorded
   * before options were, read as Claude's).
   */
  | {
      type: 'approval_request';
      lineSeq?: number;
      requestId: string;
      tool: string;
      input: unknown;
      suggestions: unknown;
      options?: ApprovalOption[];
    }
  /** The agent's plan of the turn (ACP's `plan` update): its entries as the agent sent them. */
  | { type: 'plan'; lineSeq?: number; entries: unknown }
  /**
   * An approval request was answered (or, the run having ended, refused with a message):
   * with the option chosen, when a person or the permission mode chose one.
   */
  | { type: 'approval_resolved'; requestId: string; allowed: boolean; reason: string | null; optionId?: string };

/** What an approval option does: ACP's four kinds, which Claude's approvals use too. */
export type ApprovalOptionKind = 'allow_once' | 'allow_always' | 'reject_once' | 'reject_always';

/** One answer an approval request offers (respondToApproval's `optionId` names it). */
export interface ApprovalOption {
  id: string;
  name: string;
  /** One of {@link ApprovalOptionKind}, or what an agent sent that is none of them. */
  kind: string;
}

/** Whether choosing an option of this kind lets the tool call run. */
export function allowsToolCall(kind: string): boolean {
  return kind === 'allow_once' || kind === 'allow_always';
}

/**
 * The options of a Claude approval request: allow once, always (when Claude suggested rules
 * that stop it asking again), or deny. The ids are the kinds.
 */
export function claudeApprovalOptions(suggestions: unknown): ApprovalOption[] {
  const suggested = Array.isArray(suggestions) ? suggestions.length > 0 : suggestions != null;
  return [
    { id: 'allow_once', name: 'Allow', kind: 'allow_once' },
    ...(suggested ? [{ id: 'allow_always', name: 'Allow, and apply its suggested rules', kind: 'allow_always' }] : []),
    { id: 'reject_once', name: 'Deny', kind: 'reject_once' },
  ];
}

/** Where an event stands in its story's log. */
export interface EventPlace {
  /** 1, 2, 3, … per story, across runs, without gaps. */
  seq: number;
  storyId: string;
  /** The run (1, 2, … per story) the event belongs to. */
  run: number;
  at: Date;
}

/** The events that an adapter derives from a JSON line, after that line's own json event. */
export type TypedEventPayload = Extract<AgentEventPayload, { type: 'tool_call' | 'tool_result' | 'usage' | 'approval_request' | 'plan' }>;

/** Adds two usages (a field stays undefined only when neither reports it). */
export function addUsage(a: Usage | undefined, b: Usage | undefined): Usage | undefined {
  if (!a) return b && { ...b };
  if (!b) return { ...a };
  // Each figure is finite (the parsers check), but an agent can print two that overflow
  // together: the sum stops at the largest finite number, which every client can read.
  const sum = (x: number | undefined, y: number | undefined) =>
    x === undefined && y === undefined ? undefined : Math.max(-Number.MAX_VALUE, Math.min((x ?? 0) + (y ?? 0), Number.MAX_VALUE));
  return {
    inputTokens: sum(a.inputTokens, b.inputTokens),
    outputTokens: sum(a.outputTokens, b.outputTokens),
    cachedInputTokens: sum(a.cachedInputTokens, b.cachedInputTokens),
    costUsd: sum(a.costUsd, b.costUsd),
  };
}

/** An event of a story's log: what it says, which run it belongs to, its seq and time. */
export type AgentEvent = AgentEventPayload & Readonly<EventPlace>;
