/** Where an agent is in its life. A run ends in exactly one of the last three. */
export type AgentStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'STOPPED';

/** The statuses a run ends in. */
export const FINAL_STATUSES: ReadonlySet<AgentStatus> = new Set(['COMPLETED', 'FAILED', 'STOPPED']);

/** Whether a story with this status has a run in progress (queued or running). */
export function isActive(status: AgentStatus): boolean {
  return status === 'PENDING' || status === 'RUNNING';
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
  | { type: 'error'; message: string };

/** Where an event stands in its story's log. */
export interface EventPlace {
  /** 1, 2, 3, … per story, across runs, without gaps. */
  seq: number;
  storyId: string;
  /** The run (1, 2, … per story) the event belongs to. */
  run: number;
  at: Date;
}

/** An event of a story's log: what it says, which run it belongs to, its seq and time. */
export type AgentEvent = AgentEventPayload & Readonly<EventPlace>;
