import stripAnsi from 'strip-ansi';
import type { ProcessExit } from './agent-process.js';
import type { AgentEventPayload } from './events.js';

/** How a run ended, as the agent's adapter judges it from its output and exit. */
export type RunOutcome = { status: 'COMPLETED' } | { status: 'FAILED'; reason: string };

/** What one run's output told about it so far. */
export interface RunFacts {
  /** The agent's own session id (Claude's `system/init`), once it reported one. */
  readonly sessionId: string | undefined;
  /** The run's cost in USD (Claude's `result.total_cost_usd`), once reported. */
  readonly costUsd: number | undefined;
}

/** Reads one run's output, line by line, and judges its end. */
export interface RunParser extends RunFacts {
  /** The events one line of output makes (none for a line that is empty once stripped). */
  parseLine(line: string): AgentEventPayload[];
  /** COMPLETED or FAILED with the reason, from the exit and what was printed. */
  outcome(exit: ProcessExit): RunOutcome;
}

/**
 * What agent-pool knows about one kind of agent CLI: its argv, how to read its output,
 * how to judge the end of a run and how to ask it politely to stop. The pool, the event
 * log and the schema know nothing more of any agent.
 */
export interface AgentAdapter {
  /**
   * The arguments after the command, for a run with this prompt; with `resumeSessionId`,
   * a follow-up that resumes that session of the agent's own.
   */
  args(options: { prompt: string; extraArgs: readonly string[]; resumeSessionId?: string }): string[];
  /**
   * The signal a stop sends to the run's process group first, as a terminal's Ctrl-C
   * would, so that the agent can clean up after itself; null to go straight to SIGTERM.
   */
  readonly interruptSignal: NodeJS.Signals | null;
  /** A parser for one run's output. */
  createRunParser(): RunParser;
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
