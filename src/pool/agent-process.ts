/** How an agent's process ended. */
export interface ProcessExit {
  /** The exit code, or null when the process was killed by a signal. */
  exitCode: number | null;
  /** The signal that killed it, if one did. */
  signal: NodeJS.Signals | null;
}

/** What to start. The argv goes to the program as it is: never through a shell. */
export interface SpawnRequest {
  /** The executable's absolute path. */
  file: string;
  args: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  cols: number;
  rows: number;
  /**
   * Where the agent reads its stdin: the terminal (as typing would), or a pipe of its own
   * (a control channel that must not be a terminal, as Claude's stream-json input).
   * @default "terminal"
   */
  stdin?: 'terminal' | 'pipe';
}

/**
 * A running agent, as the pool sees it. The node-pty implementation is the real one; the
 * seam lets the pool's logic be read (and the parser tested) without a terminal.
 */
export interface AgentProcess {
  /** The pid of the process that leads the run's session and process group. */
  readonly pid: number;
  /** Output, in chunks as the terminal delivers them. */
  onData(listener: (chunk: Buffer) => void): void;
  /** Writes to the agent's terminal, as typing would. */
  write(data: string): void;
  /** Writes to the agent's stdin pipe (only with `stdin: "pipe"`). */
  writeStdin(data: string): void;
  /** Closes the agent's stdin pipe: the end of its input. */
  closeStdin(): void;
  /** Changes the terminal's size. */
  resize(cols: number, rows: number): void;
  /** Sends a signal to the run's process group (as a terminal's Ctrl-C does for SIGINT). */
  signalGroup(signal: NodeJS.Signals): void;
  /**
   * Settles once the agent has exited and every byte it wrote before exiting has been
   * delivered to `onData`: never at the bare exit.
   */
  readonly exited: Promise<ProcessExit>;
}

/** Starts an agent process. */
export type SpawnAgentProcess = (request: SpawnRequest) => AgentProcess;

/** "exited with code 1", "was killed by SIGKILL". */
export function describeExit(exit: ProcessExit): string {
  if (exit.exitCode !== null) return `exited with code ${exit.exitCode}`;
  return `was killed by ${exit.signal ?? 'a signal'}`;
}
