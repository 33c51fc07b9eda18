import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../logger.js';
import { type AgentProcess, describeExit, type ProcessExit, type SpawnRequest } from './agent-process.js';
import { RUN_MARKER_VARIABLE, terminateRunProcesses } from './run-processes.js';

/**
 * Why a run is ended by agent-pool rather than by its agent: a person stopped it, the
 * server shut down, or agent-pool judged it failed (it printed nothing for too long). The
 * first reason given is the one that stays.
 */
export type EndReason = { kind: 'stopped' } | { kind: 'shutdown' } | { kind: 'failed'; reason: string };

/** How much of a failed setup command's output its error quotes. */
const OUTPUT_TAIL_BYTES = 2000;

/** A `[worktree] setup` command failed; the worktree stays, and setup runs again next time. */
export class SetupCommandError extends Error {
  constructor(
    readonly command: string,
    readonly exit: ProcessExit,
    readonly outputTail: string,
  ) {
    const output = outputTail.trim() === '' ? ' and printed nothing' : `; its last output:\n${outputTail.trimEnd()}`;
    super(`setup command ${JSON.stringify(command)} ${describeExit(exit)}${output}`);
    this.name = 'SetupCommandError';
  }
}

/** The run was ended (stopped, or judged failed) while a setup command ran. */
export class RunEndedError extends Error {
  constructor(readonly reason: EndReason) {
    super(reason.kind === 'failed' ? reason.reason : `the run was ${reason.kind === 'shutdown' ? 'ended by a shutdown' : 'stopped'}`);
    this.name = 'RunEndedError';
  }
}

/** The process a run waits for now (a setup command, then the agent), and its polite way to stop. */
interface Foreground {
  readonly exited: Promise<unknown>;
  /** The first step of a stop: the agent's own interrupt, or SIGINT as a terminal's Ctrl-C. */
  polite(): void;
}

/** The last `bytes` of a file (a setup command's output). */
function readTail(file: string, bytes: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * The one owner of a run's processes, from the first setup command to the last reaped
 * descendant of the agent. It is the only code that spawns a run's processes or signals
 * them.
 *
 * - Every process it starts carries the run's marker in its environment
 *   ({@link RUN_MARKER_VARIABLE}), so that the whole tree is found even where it left the
 *   run's process group or session.
 * - Exits travel out of band (a child's exit status, as the operating system reports it),
 *   never as text the agent could print, read or write.
 * - One AbortController: {@link signal} aborts when the run is being ended (stopped, or
 *   failed by agent-pool) or is over, and every timer and wait of the run listens to it.
 * - One escalation, in {@link stop}: the foreground process's polite stop (SIGINT, or the
 *   agent's own interrupt), then after `graceMs` SIGTERM to every process of the run, then
 *   after `graceMs` again SIGKILL.
 * - One end, {@link end}: whatever is left of the tree (a server a setup command started
 *   in the background, a shell an agent's tool left) is ended the same way.
 */
export class RunSupervisor {
  /** The value of `AGENT_POOL_RUN` that every process of the run carries. */
  readonly marker: string;
  readonly #graceMs: number;
  readonly #logger: Logger;
  readonly #label: string;
  readonly #abort = new AbortController();
  #reason: EndReason | undefined;
  #foreground: Foreground | undefined;
  #stopping: Promise<void> | undefined;
  #ending: Promise<number[]> | undefined;

  constructor(options: { graceMs: number; logger: Logger; label: string; marker?: string }) {
    this.marker = options.marker ?? randomUUID();
    this.#graceMs = options.graceMs;
    this.#logger = options.logger;
    this.#label = options.label;
  }

  /** Aborts when the run is being ended from outside or is over: every timer and wait of the run listens to it. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Why agent-pool ended the run, if it did: the first reason given. */
  get endReason(): EndReason | undefined {
    return this.#reason;
  }

  /** `env` with the run's marker, which every process of the run must carry. */
  environment(env: Readonly<Record<string, string>>): Record<string, string> {
    return { ...env, [RUN_MARKER_VARIABLE]: this.marker };
  }

  /**
   * Runs a shell command (`sh -c`; a setup command, the user's own configuration) in `cwd`
   * and waits for its exit, not for its output pipes to close: what it leaves running in the
   * background keeps running until the run ends, and does not hold the run up. Its output
   * goes to a private file, of which an error quotes the end.
   * @throws SetupCommandError when it exits non-zero or is killed; RunEndedError when the
   *   run was ended before or while it ran.
   */
  async runCommand(command: string, options: { cwd: string; env: Readonly<Record<string, string>> }): Promise<void> {
    if (this.#reason) throw new RunEndedError(this.#reason);
    const dir = mkdtempSync(path.join(tmpdir(), 'agent-pool-setup-'));
    const outputFile = path.join(dir, 'output');
    const output = openSync(outputFile, 'w', 0o600);
    try {
      const child = spawn('sh', ['-c', command], {
        cwd: options.cwd,
        env: this.environment(options.env),
        // A process group of its own, so that the polite SIGINT reaches its children.
        detached: true,
        stdio: ['ignore', output, output],
      });
      const exited = new Promise<ProcessExit>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
      });
      this.#foreground = { exited, polite: () => child.pid !== undefined && signalGroup(child.pid, 'SIGINT') };
      const exit = await exited.finally(() => {
        this.#foreground = undefined;
      });
      if (this.#reason) throw new RunEndedError(this.#reason);
      if (exit.exitCode !== 0) throw new SetupCommandError(command, exit, readTail(outputFile, OUTPUT_TAIL_BYTES));
    } finally {
      closeSync(output);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Starts the agent with `spawn` (its environment gains the run's marker).
   * @param polite the agent's own way to be asked to stop (its interrupt), the first step of a stop.
   */
  spawnAgent<Agent extends AgentProcess>(spawnAgent: (request: SpawnRequest) => Agent, request: SpawnRequest, polite: (agent: Agent) => void): Agent {
    const agent = spawnAgent({ ...request, env: this.environment(request.env) });
    this.#foreground = { exited: agent.exited, polite: () => polite(agent) };
    void agent.exited.finally(() => {
      if (this.#foreground?.exited === agent.exited) this.#foreground = undefined;
    });
    return agent;
  }

  /**
   * Ends the run from outside, keeping the first reason given: the foreground process is
   * asked politely, every process of the run gets SIGTERM after the grace period and
   * SIGKILL after another. Resolves once no process of the run is left.
   */
  stop(reason: EndReason): Promise<void> {
    this.#reason ??= reason;
    this.#abort.abort();
    this.#stopping ??= this.#escalate();
    return this.#stopping;
  }

  async #escalate(): Promise<void> {
    const foreground = this.#foreground;
    if (foreground) {
      try {
        foreground.polite();
      } catch (error) {
        this.#logger.warn(`${this.#label}: the polite stop failed`, error);
      }
      const grace = new AbortController();
      await Promise.race([foreground.exited.catch(() => undefined), sleep(this.#graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
      grace.abort();
    }
    await this.end();
  }

  /**
   * The run is over: ends every process of it that is left (SIGTERM, then SIGKILL after
   * the grace period) and aborts {@link signal}. Done once, whoever asks first.
   * @returns the pids that even SIGKILL did not end (normally none).
   */
  end(): Promise<number[]> {
    this.#ending ??= terminateRunProcesses(this.marker, this.#graceMs).then((left) => {
      this.#abort.abort();
      if (left.length > 0) this.#logger.error(`${this.#label}: processes ${left.join(', ')} did not end even after SIGKILL`);
      return left;
    });
    return this.#ending;
  }
}
