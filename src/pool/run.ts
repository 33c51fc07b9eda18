import { randomUUID } from 'node:crypto';
import type { AgentPoolConfig, AgentProfile } from '../config/config.js';
import { renderTemplate } from '../config/placeholders.js';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Worktrees } from '../worktree/worktrees.js';
import type { AgentAdapter, RunOutcome, RunParser } from './agent-adapter.js';
import type { AgentProcess, SpawnAgentProcess } from './agent-process.js';
import { resolveCommand } from './command-path.js';
import type { EventLog } from './event-log.js';
import type { AgentEventPayload, AgentStatus, Usage } from './events.js';
import { LineReader } from './line-reader.js';
import { RUN_MARKER_VARIABLE, terminateRunProcesses } from './run-processes.js';

/** The terminal size an agent starts with. */
export const TERMINAL_SIZE = { cols: 200, rows: 50 } as const;


/**
 * How output is batched into events. A trickle goes out at once (in the next turn of the
 * event loop); a flood (a full chunk soon after the last batch) is gathered for up to
 * `OUTPUT_BATCH_MS` since the last batch, as VS Code coalesces terminal data, so that a
 * batch is one storage transaction and one wake-up of the readers, not one per chunk.
 * Measured: a fixed 5 ms window gave p99 latency 17 ms at 1,000 lines/s; batching per
 * turn alone halved the stored flood throughput (a Linux terminal delivers 4 KB chunks).
 * @default 5
 */
export const OUTPUT_BATCH_MS = 5;
/** A chunk this large soon after a batch means a flood. */
const FLOOD_CHUNK_BYTES = 1024;

/** What a run needs from its pool. */
export interface RunContext {
  readonly projectRoot: string;
  /** The configuration as read when the run was started. */
  readonly config: AgentPoolConfig;
  /** The name of the agent profile the run uses. */
  readonly profileName: string;
  /** That profile. */
  readonly profile: AgentProfile;
  readonly adapter: AgentAdapter;
  /** What earlier runs of a resumed session used (for CLIs that report usage per session). */
  readonly sessionUsage?: Usage;
  readonly worktrees: Worktrees;
  readonly spawn: SpawnAgentProcess;
  readonly log: EventLog;
  readonly logger: Logger;
  /** The environment agents inherit (the server's, without its own secrets). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** Called whenever the run's status or facts change. */
  readonly onChange: (run: Run) => void;
}

/** Why a run is being ended by agent-pool rather than by the agent itself. */
export type StopReason = 'stopped' | 'shutdown';

/** How a run ends: as its adapter judges it, or stopped from outside. */
type Ending = RunOutcome | { status: 'STOPPED' };
const STOPPED: Ending = { status: 'STOPPED' };

function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/**
 * What is kept and shown of a run. A live {@link Run} has it, and so does a run read back
 * from the state database.
 */
export interface RunState {
  readonly storyId: string;
  readonly number: number;
  /** The name of the agent profile the run used. */
  readonly agent: string;
  /** The prompt as given to startAgent, or undefined for the configured one. */
  readonly prompt: string | undefined;
  status: AgentStatus;
  sessionId: string | undefined;
  pid: number | undefined;
  exitCode: number | undefined;
  error: string | undefined;
  /** What the run used: tokens, and cost where the CLI reports it. */
  usage: Usage | undefined;
  readonly startedAt: Date;
  finishedAt: Date | undefined;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  worktreePath: string | undefined;
  branch: string | undefined;
  /** The value of `AGENT_POOL_RUN` that every process of the run carries. */
  readonly marker: string;
}

/**
 * One start of a story's agent: it owns its worktree preparation, its process, its timers
 * and its output, records the first reason it ended, and emits exactly one terminal event.
 * `execute()` drives it from PENDING to the end; `stop()` ends it from outside.
 */
export class Run implements RunState {
  status: AgentStatus = 'PENDING';
  pid: number | undefined;
  exitCode: number | undefined;
  error: string | undefined;
  sessionId: string | undefined;
  usage: Usage | undefined;
  readonly startedAt = new Date();
  finishedAt: Date | undefined;
  worktreePath: string | undefined;
  branch: string | undefined;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  readonly marker = randomUUID();
  /** Settles when the run has ended and every one of its processes is gone. */
  readonly finished: Promise<void>;

  readonly #context: RunContext;
  readonly #abort = new AbortController();
  #stopReason: StopReason | undefined;
  #process: AgentProcess | undefined;
  #executing = false;
  #endProcesses: Promise<number[]> | undefined;
  #escalation: { cancel: () => void } | undefined;
  /** Why the run is ended for printing nothing, if it is. */
  #idleFailure: string | undefined;
  #markFinished!: () => void;

  readonly prompt: string | undefined;
  /** The agent session this run resumes (continueAgent), if any. */
  readonly resumeSessionId: string | undefined;

  constructor(
    readonly storyId: string,
    readonly number: number,
    options: {
      /** The prompt as given to startAgent, or undefined for the configured one. */
      prompt: string | undefined;
      resumeSessionId?: string;
    },
    context: RunContext,
  ) {
    this.prompt = options.prompt;
    this.resumeSessionId = options.resumeSessionId;
    this.#context = context;
    this.finished = new Promise((resolve) => {
      this.#markFinished = resolve;
    });
    this.#emit([{ type: 'status', status: 'PENDING' }]);
  }

  /** The configuration the run was started with. */
  get config(): AgentPoolConfig {
    return this.#context.config;
  }

  /** The name of the agent profile the run uses. */
  get agent(): string {
    return this.#context.profileName;
  }

  /** Whether the run has ended. */
  get ended(): boolean {
    return this.finishedAt !== undefined;
  }

  /** Whether the agent's process is running and can take input. */
  get process(): AgentProcess | undefined {
    return this.status === 'RUNNING' ? this.#process : undefined;
  }

  /**
   * Prepares the worktree, starts the agent, reads its output until it exits and ends the
   * run with its outcome. Called by the pool once a slot is free; never throws: whatever
   * goes wrong ends the run FAILED with the reason.
   */
  async execute(): Promise<void> {
    if (this.ended || this.#executing) return;
    this.#executing = true;
    let ending: Ending;
    try {
      ending = await this.#runAgent();
    } catch (error) {
      ending = this.#stopReason ? STOPPED : { status: 'FAILED', reason: describeError(error) };
    }
    await this.#endAllProcesses();
    this.#finish(ending);
  }

  /**
   * Ends the run from outside: a queued run ends at once; a running agent is first asked
   * politely (the adapter's interrupt, as Ctrl-C would), then every process of the run gets
   * SIGTERM after `stop_grace_seconds`, then SIGKILL after the same grace again. Resolves
   * once the run has ended and all its processes are gone.
   */
  async stop(reason: StopReason = 'stopped'): Promise<void> {
    if (this.ended) return;
    this.#stopReason ??= reason;
    this.#abort.abort();
    if (!this.#executing) {
      this.#finish(STOPPED);
      return;
    }
    this.#terminate();
    await this.finished;
  }

  /** The agent's own interrupt now, then SIGTERM and SIGKILL to every process of the run. */
  #terminate(): void {
    const agentProcess = this.#process;
    if (!agentProcess || this.#escalation) return;
    const signal = this.#context.adapter.interruptSignal;
    if (signal) agentProcess.signalGroup(signal);
    const grace = delay(this.#graceMs());
    this.#escalation = grace;
    void grace.promise.then(() => this.#endAllProcesses());
  }

  #graceMs(): number {
    return this.#context.config.pool.stop_grace_seconds * 1000;
  }

  async #runAgent(): Promise<Ending> {
    const { config, profile, adapter, projectRoot } = this.#context;
    const env = this.#environment();
    const worktree = await this.#context.worktrees.ensure(this.storyId, config.worktree, {
      env,
      signal: this.#abort.signal,
    });
    this.worktreePath = worktree.path;
    this.branch = worktree.branch;
    this.#context.onChange(this);
    if (this.#stopReason) return STOPPED;

    const values = {
      story_id: this.storyId,
      worktree_path: worktree.path,
      branch: worktree.branch,
      project_root: projectRoot,
    };
    const file = resolveCommand(profile.command, { path: env.PATH, projectRoot });
    if (!file) {
      return {
        status: 'FAILED',
        reason: `agent command '${profile.command}' not found on PATH or in agent-pool's node_modules/.bin: install it, or set command of the agent profile in agent-pool.toml`,
      };
    }
    const prompt = this.prompt ?? renderTemplate(profile.prompt, values);
    const args = adapter.args({
      prompt,
      extraArgs: profile.args.map((arg) => renderTemplate(arg, values)),
      resumeSessionId: this.resumeSessionId,
    });

    const agent = this.#context.spawn({
      file,
      args,
      cwd: worktree.path,
      env: { ...env, PWD: worktree.path },
      ...TERMINAL_SIZE,
    });
    this.#process = agent;
    this.pid = agent.pid;
    this.status = 'RUNNING';
    this.#emit([{ type: 'status', status: 'RUNNING' }]);
    this.#context.onChange(this);

    const parser = adapter.createRunParser({ sessionUsage: this.#context.sessionUsage });
    const idle = this.#watchIdleness(profile.idle_timeout_seconds);
    const reader = new LineReader();
    const pending: Buffer[] = [];
    let scheduled: { cancel(): void } | undefined;
    let lastFlush = 0;
    const flush = (): void => {
      scheduled = undefined;
      lastFlush = performance.now();
      const lines: string[] = [];
      for (const chunk of pending) for (const line of reader.push(chunk)) lines.push(line);
      pending.length = 0;
      this.#readLines(parser, lines);
    };
    agent.onData((chunk) => {
      idle.sawOutput();
      pending.push(chunk);
      if (scheduled) return;
      const sinceFlush = performance.now() - lastFlush;
      if (sinceFlush < OUTPUT_BATCH_MS && chunk.length >= FLOOD_CHUNK_BYTES) {
        const timer = setTimeout(flush, OUTPUT_BATCH_MS - sinceFlush);
        scheduled = { cancel: () => clearTimeout(timer) };
      } else {
        const immediate = setImmediate(flush);
        scheduled = { cancel: () => clearImmediate(immediate) };
      }
    });

    const exit = await agent.exited;
    idle.cancel();
    scheduled?.cancel();
    flush();
    this.#readLines(parser, reader.end(), parser.end());
    this.#escalation?.cancel();
    this.exitCode = exit.exitCode ?? undefined;
    this.pid = undefined;
    if (this.#stopReason) return STOPPED;
    return this.#idleFailure ? { status: 'FAILED', reason: this.#idleFailure } : parser.outcome(exit);
  }

  /**
   * Ends the run FAILED when the agent prints nothing for `seconds` (0: never): some CLIs
   * retry a failing API for ever without a word. One timer per run, not one per chunk.
   */
  #watchIdleness(seconds: number): { sawOutput(): void; cancel(): void } {
    let lastOutput = performance.now();
    if (seconds <= 0) return { sawOutput() {}, cancel() {} };
    const timer = setInterval(() => {
      if (performance.now() - lastOutput < seconds * 1000 || this.#idleFailure) return;
      this.#idleFailure = `agent printed nothing for ${seconds} seconds (idle_timeout_seconds): it was stopped`;
      this.#terminate();
    }, Math.min(1000, (seconds * 1000) / 4));
    timer.unref();
    return {
      sawOutput: () => {
        lastOutput = performance.now();
      },
      cancel: () => clearInterval(timer),
    };
  }

  /**
   * Turns lines into events and appends them, in order, as one batch. The typed events an
   * adapter derives from a JSON line name that line's json event (`lineSeq`): its seq is
   * known here, as the run is its story's only writer while it runs.
   */
  #readLines(parser: RunParser, lines: readonly string[], held: AgentEventPayload[] = []): void {
    const payloads: AgentEventPayload[] = [];
    let seq = this.#context.log.lastSeq(this.storyId);
    let lineSeq: number | undefined;
    const take = (payload: AgentEventPayload): void => {
      seq++;
      if (payload.type === 'json') lineSeq = seq;
      else if ((payload.type === 'tool_call' || payload.type === 'tool_result' || payload.type === 'usage') && lineSeq !== undefined) {
        payload.lineSeq = lineSeq;
      }
      payloads.push(payload);
    };
    for (const line of lines) {
      lineSeq = undefined;
      for (const payload of parser.parseLine(line)) take(payload);
    }
    for (const payload of held) take(payload);
    if (payloads.length === 0) return;
    const changed = parser.sessionId !== this.sessionId || parser.usage !== this.usage;
    this.sessionId = parser.sessionId;
    this.usage = parser.usage;
    this.#emit(payloads);
    if (changed) this.#context.onChange(this);
  }

  /** The agent's environment: the server's without its secrets, NO_COLOR, `[agent] env`, the run marker. */
  #environment(): Record<string, string> {
    return {
      ...this.#context.baseEnv,
      NO_COLOR: '1',
      ...this.#context.profile.env,
      [RUN_MARKER_VARIABLE]: this.marker,
    };
  }

  /** Ends every process that carries this run's marker; done once, whoever asks first. */
  #endAllProcesses(): Promise<number[]> {
    this.#endProcesses ??= terminateRunProcesses(this.marker, this.#graceMs()).then((left) => {
      if (left.length > 0) {
        this.#context.logger.error(
          `story ${this.storyId} run ${this.number}: processes ${left.join(', ')} did not end even after SIGKILL`,
        );
      }
      return left;
    });
    return this.#endProcesses;
  }

  #finish(ending: Ending): void {
    if (this.ended) return;
    this.#escalation?.cancel();
    this.finishedAt = new Date();
    this.pid = undefined;
    if (ending.status === 'STOPPED') {
      this.status = 'STOPPED';
      const message = this.#stopReason === 'shutdown' ? 'stopped because the server shut down' : 'stopped by request';
      this.#emit([
        { type: 'status', status: 'STOPPED' },
        { type: 'error', message },
      ]);
    } else if (ending.status === 'COMPLETED') {
      this.status = 'COMPLETED';
      this.#emit([
        { type: 'status', status: 'COMPLETED' },
        { type: 'done', sessionId: this.sessionId ?? null, exitCode: this.exitCode ?? null },
      ]);
    } else {
      this.status = 'FAILED';
      this.error = ending.reason;
      this.#emit([
        { type: 'status', status: 'FAILED' },
        { type: 'error', message: ending.reason },
      ]);
    }
    this.#context.onChange(this);
    this.#markFinished();
  }

  #emit(payloads: readonly AgentEventPayload[]): void {
    const events = this.#context.log.append(this.storyId, this.number, payloads);
    if (events.length === 0) return;
    this.firstSeq ??= events[0]!.seq;
    this.lastSeq = events.at(-1)!.seq;
  }
}

/** The server's environment as agents inherit it: without agent-pool's own secrets and npm's script variables. */
export function inheritedEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  const inherited: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (name === 'AGENT_POOL_TOKEN' || name === RUN_MARKER_VARIABLE) continue;
    // How the server itself was started (npm start), not how an agent's commands should run.
    if (name.startsWith('npm_') || name === 'INIT_CWD') continue;
    // Agents print plain text for the parser; NO_COLOR is set, and FORCE_COLOR would win.
    if (name === 'FORCE_COLOR') continue;
    inherited[name] = value;
  }
  return inherited;
}
