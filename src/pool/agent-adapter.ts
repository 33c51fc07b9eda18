import stripAnsi from 'strip-ansi';
import type { ProcessExit } from './agent-process.js';
import type { AgentEventPayload, ToolKind, Usage } from './events.js';

/** How a run ended, as the agent's adapter judges it from its output and exit. */
export type RunOutcome = { status: 'COMPLETED' } | { status: 'FAILED'; reason: string };

/** What one run's output told about it so far. */
export interface RunFacts {
  /** The agent's own session id (Claude's `system/init`, Codex's thread id, …), once reported. */
  readonly sessionId: string | undefined;
  /** What the run used so far: tokens and, where the CLI reports it, cost. */
  readonly usage: Usage | undefined;
}

/** Reads one run's output, line by line, and judges its end. */
export interface RunParser extends RunFacts {
  /** How many turns have ended so far (the control channel's next message waits for this). */
  readonly turnsEnded: number;
  /**
   * The events one line of output makes (none for a line that is empty once stripped). A
   * JSON line gives its json event first, then the typed events derived from it.
   */
  parseLine(line: string): AgentEventPayload[];
  /** The events still held when the output ends (text that arrived in pieces). */
  end(): AgentEventPayload[];
  /** COMPLETED or FAILED with the reason, from the exit and what was printed. */
  outcome(exit: ProcessExit): RunOutcome;
}

/** A person's answer to an approval request: the option chosen, and what Claude's channel also takes. */
export type ApprovalDecision =
  | { allow: true; optionId: string; updatedInput: unknown; updatedPermissions?: unknown }
  | { allow: false; optionId: string; message: string };

/**
 * The lines of a control channel on an agent's stdin (Claude's stream-json input): user
 * messages, answers to approval requests, interrupts.
 */
export interface ControlProtocol {
  /** The line that starts a turn with a message from the user. */
  userMessage(text: string): string;
  /** The line that answers an approval request. */
  answer(requestId: string, decision: ApprovalDecision): string;
  /** The line that interrupts the current turn. */
  interrupt(requestId: string): string;
}

/** What a run's parser may need to know beforehand. */
export interface RunParserOptions {
  /**
   * What the earlier runs of the resumed session used, for CLIs that report usage summed
   * over the whole session (Codex), so that a follow-up does not count it twice.
   */
  sessionUsage?: Usage;
  /** The budgets the run was given, named in the failure that reaching one causes. */
  maxBudgetUsd?: number;
  maxTurns?: number;
}

/** How a run of a profile is started. */
export interface RunArgsOptions {
  prompt: string;
  extraArgs: readonly string[];
  /** The agent session a follow-up resumes. */
  resumeSessionId?: string;
  /** Claude's permission mode: all but bypassPermissions use the control channel, and the prompt goes there. */
  permissionMode?: string;
  /** 0 or undefined: none. */
  maxBudgetUsd?: number;
  /** 0 or undefined: none. */
  maxTurns?: number;
  /**
   * Whether the agent gets agent-pool's MCP tools: its environment holds the endpoint and a
   * token (src/pool/mcp-access.ts); an adapter whose CLI takes an MCP configuration names them.
   */
  mcp?: boolean;
}

/**
 * What agent-pool knows about one kind of agent CLI: its argv for a first run and for a
 * resumed one, how to read its output, how to judge the end of a run and how to ask it
 * politely to stop. The pool, the event log and the schema know nothing more of any agent.
 */
export interface AgentAdapter {
  /**
   * The arguments after the command, for a run with this prompt; with `resumeSessionId`,
   * a follow-up that resumes that session of the agent's own.
   */
  args(options: RunArgsOptions): string[];
  /**
   * The control channel, for the runs that use one (Claude outside bypassPermissions): they
   * get stdin as a pipe, and their prompt is its first message.
   */
  controlChannel?(options: Pick<RunArgsOptions, 'permissionMode'>): ControlProtocol | undefined;
  /**
   * How the agent is driven: in a terminal (the default), or over the Agent Client Protocol
   * on pipes (`acp`: the prompt, messages, approvals and interrupts go through the protocol).
   */
  readonly transport?: 'terminal' | 'acp';
  /**
   * The signal a stop sends to the run's process group first, as a terminal's Ctrl-C
   * would, so that the agent can clean up after itself; null to go straight to SIGTERM.
   */
  readonly interruptSignal: NodeJS.Signals | null;
  /** A parser for one run's output. */
  createRunParser(options?: RunParserOptions): RunParser;
}

/** Removes ANSI escape sequences (colours, cursor movement, terminal resets). */
export function stripTerminalCodes(line: string): string {
  return stripAnsi(line);
}

/** How many lines of plain output a failure message quotes. */
const TAIL_LINES = 5;

/** The last few lines of plain output, quoted when a run fails without saying why. */
export class OutputTail {
  readonly #lines: string[] = [];

  add(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > TAIL_LINES) this.#lines.shift();
  }

  /** "exited with code 1: <last lines>" or just the exit when nothing was printed. */
  describe(what: string): string {
    return this.#lines.length === 0 ? what : `${what}; its last output:\n${this.#lines.join('\n')}`;
  }
}

/** The kind of a tool, from a table of a CLI's tool names; OTHER for the rest. */
export function toolKind(table: Readonly<Record<string, ToolKind>>, tool: string): ToolKind {
  return Object.hasOwn(table, tool) ? table[tool]! : 'OTHER';
}
