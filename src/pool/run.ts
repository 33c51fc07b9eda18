import { randomUUID } from 'node:crypto';
import type { AgentPoolConfig, AgentProfile } from '../config/config.js';
import { renderTemplate } from '../config/placeholders.js';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Worktrees } from '../worktree/worktrees.js';
import type { AgentAdapter, ApprovalDecision, ControlProtocol, RunOutcome, RunParser } from './agent-adapter.js';
import {
  AgentNotInteractiveError,
  AgentNotRunningError,
  ApprovalAlreadyAnsweredError,
  ApprovalNotFoundError,
  InputBacklogFullError,
} from './pool-errors.js';
import type { AgentProcess, SpawnAgentProcess } from './agent-process.js';
import { resolveCommand } from './command-path.js';
import type { EventLog } from './event-log.js';
import type { AgentEvent, AgentEventPayload, AgentStatus, TypedEventPayload, Usage } from './events.js';
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

/** An approval request that waits for a person's answer. */
export interface PendingApproval {
  requestId: string;
  tool: string;
  input: unknown;
  suggestions: unknown;
  requestedAt: Date;
}

/** What an agent waits for from a person. */
export type WaitReason = 'APPROVAL' | 'INPUT';

/** A person's answer to an approval request, as respondToApproval takes it. */
export interface ApprovalAnswer {
  allow: boolean;
  /** Denied: what the model is told (a default otherwise); allowed: kept in the event only. */
  message?: string;
  /** Allowed: the input that runs instead of the requested one (a JSON object). */
  updatedInput?: unknown;
  /** Allowed: answer with the agent's own suggested rules, so the same request is not asked again in the run. */
  remember?: boolean;
}

/** What the model is told of a denial that gave no message. */
export const DENIED_MESSAGE = 'A person denied this tool call through agent-pool.';

function isTyped(payload: AgentEventPayload): payload is TypedEventPayload {
  return payload.type === 'tool_call' || payload.type === 'tool_result' || payload.type === 'usage' || payload.type === 'approval_request';
}

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
  /** The control channel, for runs that use one. */
  readonly #control: ControlProtocol | undefined;
  readonly #approvals = new Map<string, PendingApproval>();
  readonly #answered = new Set<string>();
  /** Messages that wait for the running turn to end. */
  readonly #messages: string[] = [];
  #turnRunning = false;
  #turnsSeen = 0;
  #waitingForInput = false;
  #keepOpen: NodeJS.Timeout | undefined;
  #stdinClosed = false;
  #lastTurnInterrupted = false;
  #interrupts = 0;
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
    this.#control = context.adapter.controlChannel?.({ permissionMode: context.profile.permission_mode });
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
    if (this.#control) {
      // The agent's own interrupt, on its channel, and the end of its input: it exits.
      if (this.#turnRunning) agentProcess.writeStdin(`${this.#control.interrupt(`stop-${++this.#interrupts}`)}\n`);
      this.#closeStdin();
    } else {
      const signal = this.#context.adapter.interruptSignal;
      if (signal) agentProcess.signalGroup(signal);
    }
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
    const argsOptions = {
      prompt,
      extraArgs: profile.args.map((arg) => renderTemplate(arg, values)),
      resumeSessionId: this.resumeSessionId,
      permissionMode: profile.permission_mode,
      maxBudgetUsd: profile.max_budget_usd,
      maxTurns: profile.max_turns,
    };
    const args = adapter.args(argsOptions);

    const agent = this.#context.spawn({
      file,
      args,
      cwd: worktree.path,
      env: { ...env, PWD: worktree.path },
      ...TERMINAL_SIZE,
      stdin: this.#control ? 'pipe' : 'terminal',
    });
    this.#process = agent;
    this.pid = agent.pid;
    this.status = 'RUNNING';
    this.#emit([{ type: 'status', status: 'RUNNING' }]);
    // On the control channel, the prompt is the first turn's message.
    if (this.#control) this.#startTurn(prompt);
    this.#context.onChange(this);

    const parser = adapter.createRunParser({
      sessionUsage: this.#context.sessionUsage,
      maxBudgetUsd: profile.max_budget_usd,
      maxTurns: profile.max_turns,
    });
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
    clearTimeout(this.#keepOpen);
    scheduled?.cancel();
    flush();
    this.#readLines(parser, reader.end(), parser.end());
    this.#refusePending('the run ended before it was answered');
    this.#escalation?.cancel();
    this.exitCode = exit.exitCode ?? undefined;
    this.pid = undefined;
    if (this.#stopReason) return STOPPED;
    if (this.#idleFailure) return { status: 'FAILED', reason: this.#idleFailure };
    // A person interrupted the last turn and sent nothing more: the run was stopped, not failed.
    if (this.#lastTurnInterrupted && exit.exitCode !== null) return STOPPED;
    return parser.outcome(exit);
  }

  /** Whether the run talks to its agent through a control channel (approvals, messages, interrupts). */
  get interactive(): boolean {
    return this.#control !== undefined;
  }

  /** The approval requests waiting for an answer, oldest first. */
  get pendingApprovals(): PendingApproval[] {
    return [...this.#approvals.values()];
  }

  /** What the agent waits for from a person, if anything. */
  get waitingFor(): WaitReason | undefined {
    if (this.#approvals.size > 0) return 'APPROVAL';
    return this.#waitingForInput ? 'INPUT' : undefined;
  }

  /**
   * Answers an approval request, once: the answer goes to the agent and an
   * approval_resolved event records it. Allowed, the request's own input runs unless
   * `updatedInput` replaces it; `remember` adds the agent's own suggestions (the rules
   * that stop it asking again in this run).
   * @throws AgentNotInteractiveError, ApprovalAlreadyAnsweredError, ApprovalNotFoundError.
   */
  answerApproval(requestId: string, answer: ApprovalAnswer): void {
    const control = this.#requireControl();
    if (this.#answered.has(requestId)) throw new ApprovalAlreadyAnsweredError(this.storyId, requestId);
    const pending = this.#approvals.get(requestId);
    if (!pending) throw new ApprovalNotFoundError(this.storyId, requestId);
    // Stopping: the agent reads no more, and what waits is refused when it exits.
    if (this.#stdinClosed) throw new AgentNotRunningError(this.storyId, this.status, 'it is being stopped, and its pending approvals will be refused');
    const message = answer.message ?? null;
    const decision: ApprovalDecision = answer.allow
      ? {
          allow: true,
          updatedInput: answer.updatedInput ?? pending.input,
          ...(answer.remember && pending.suggestions != null ? { updatedPermissions: pending.suggestions } : {}),
        }
      : { allow: false, message: message ?? DENIED_MESSAGE };
    this.#process!.writeStdin(`${control.answer(requestId, decision)}\n`);
    this.#resolve(requestId, answer.allow, answer.allow ? message : (message ?? DENIED_MESSAGE));
    this.#context.onChange(this);
  }

  /**
   * A new turn in the live session: sent at once when the agent waits for one, queued
   * behind the running turn otherwise.
   * @throws AgentNotInteractiveError, AgentNotRunningError.
   */
  sendMessage(text: string): void {
    this.#requireControl();
    if (this.ended || this.#stdinClosed) throw new AgentNotRunningError(this.storyId, this.status);
    if (this.#turnRunning || this.status === 'PENDING') {
      const queued = this.#messages.reduce((sum, message) => sum + Buffer.byteLength(message), 0);
      if (queued + Buffer.byteLength(text) > MAX_QUEUED_MESSAGE_BYTES) throw new InputBacklogFullError(queued, MAX_QUEUED_MESSAGE_BYTES);
      this.#messages.push(text);
    } else {
      this.#startTurn(text);
    }
    this.#context.onChange(this);
  }

  /**
   * Ends the current turn at once (its commands killed by the agent); the session stays
   * and the agent waits for the next message. Pending approvals of the turn are refused.
   * @throws AgentNotInteractiveError, AgentNotRunningError.
   */
  interrupt(): void {
    const control = this.#requireControl();
    if (this.status !== 'RUNNING' || this.#stdinClosed) throw new AgentNotRunningError(this.storyId, this.status);
    if (!this.#turnRunning) return;
    this.#lastTurnInterrupted = true;
    this.#process!.writeStdin(`${control.interrupt(`interrupt-${++this.#interrupts}`)}\n`);
    this.#refusePending('the turn was interrupted');
    this.#context.onChange(this);
  }

  #requireControl(): ControlProtocol {
    if (!this.#control) throw new AgentNotInteractiveError(this.storyId);
    return this.#control;
  }

  #startTurn(text: string): void {
    clearTimeout(this.#keepOpen);
    this.#waitingForInput = false;
    this.#turnRunning = true;
    this.#lastTurnInterrupted = false;
    this.#process!.writeStdin(`${this.#control!.userMessage(text)}\n`);
  }

  /** A turn ended: the next queued message goes, else the run waits keep_open_seconds for one, else it ends. */
  #onTurnEnded(): void {
    this.#turnRunning = false;
    if (!this.#control || this.#stdinClosed || this.#stopReason || this.#idleFailure) return;
    const next = this.#messages.shift();
    if (next !== undefined) {
      this.#startTurn(next);
      return;
    }
    const keepOpen = this.#context.profile.keep_open_seconds;
    if (keepOpen <= 0) {
      this.#closeStdin();
      return;
    }
    this.#waitingForInput = true;
    this.#keepOpen = setTimeout(() => {
      this.#waitingForInput = false;
      this.#closeStdin();
      this.#context.onChange(this);
    }, keepOpen * 1000);
    this.#keepOpen.unref();
  }

  /** The end of the agent's input: idle, it exits. */
  #closeStdin(): void {
    this.#stdinClosed = true;
    this.#process?.closeStdin();
  }

  #resolve(requestId: string, allowed: boolean, reason: string | null): void {
    this.#approvals.delete(requestId);
    this.#answered.add(requestId);
    this.#emit([{ type: 'approval_resolved', requestId, allowed, reason }]);
  }

  /** Refuses every pending approval (the turn or the run ended first), each with an event. */
  #refusePending(message: string): void {
    for (const requestId of [...this.#approvals.keys()]) this.#resolve(requestId, false, message);
  }

  /**
   * Ends the run FAILED when the agent prints nothing for `seconds` (0: never): some CLIs
   * retry a failing API for ever without a word. One timer per run, not one per chunk.
   */
  #watchIdleness(seconds: number): { sawOutput(): void; cancel(): void } {
    let lastOutput = performance.now();
    if (seconds <= 0) return { sawOutput() {}, cancel() {} };
    const timer = setInterval(() => {
      // An agent that waits for a person is quiet by design: its wait does not count.
      if (this.waitingFor !== undefined) lastOutput = performance.now();
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
      else if (lineSeq !== undefined && isTyped(payload)) payload.lineSeq = lineSeq;
      payloads.push(payload);
    };
    for (const line of lines) {
      lineSeq = undefined;
      for (const payload of parser.parseLine(line)) take(payload);
    }
    for (const payload of held) take(payload);
    if (payloads.length === 0) return;
    let changed = parser.sessionId !== this.sessionId || parser.usage !== this.usage;
    this.sessionId = parser.sessionId;
    this.usage = parser.usage;
    const events = this.#emit(payloads);
    for (const event of events) {
      if (event.type !== 'approval_request') continue;
      const { requestId, tool, input, suggestions, at } = event;
      this.#approvals.set(requestId, { requestId, tool, input, suggestions, requestedAt: at });
      changed = true;
    }
    if (parser.turnsEnded > this.#turnsSeen) {
      this.#turnsSeen = parser.turnsEnded;
      this.#onTurnEnded();
      changed = true;
    }
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

  #emit(payloads: readonly AgentEventPayload[]): AgentEvent[] {
    const events = this.#context.log.append(this.storyId, this.number, payloads);
    if (events.length === 0) return events;
    this.firstSeq ??= events[0]!.seq;
    this.lastSeq = events.at(-1)!.seq;
    return events;
  }
}

/**
 * The most bytes of messages that may wait behind a running turn (sendMessage).
 * @default 4 MiB
 */
export const MAX_QUEUED_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The shortest secret value looked for in other variables: shorter ones would match by
 * chance (a port, a flag).
 */
const MIN_SECRET_LENGTH = 8;

/** What agents, setup commands and services must never get from the server's environment. */
export interface ServerSecrets {
  /** Variables that hold secrets (beyond `AGENT_POOL_TOKEN`, always removed). */
  names?: readonly string[];
  /** Secret values (the server's token): any variable that holds one is removed too. */
  values?: readonly string[];
}

/**
 * The server's environment as agents inherit it: without agent-pool's secrets (the token,
 * by name and wherever its value is; the variables `secrets` names) and npm's script
 * variables.
 */
export function inheritedEnvironment(env: NodeJS.ProcessEnv, secrets: ServerSecrets = {}): Record<string, string> {
  const secretNames = new Set(['AGENT_POOL_TOKEN', ...(secrets.names ?? [])]);
  const secretValues = (secrets.values ?? []).filter((value) => value.length >= MIN_SECRET_LENGTH);
  const inherited: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (secretNames.has(name) || name === RUN_MARKER_VARIABLE) continue;
    if (secretValues.some((secret) => value.includes(secret))) continue;
    // How the server itself was started (npm start), not how an agent's commands should run.
    if (name.startsWith('npm_') || name === 'INIT_CWD') continue;
    // Agents print plain text for the parser; NO_COLOR is set, and FORCE_COLOR would win.
    if (name === 'FORCE_COLOR') continue;
    inherited[name] = value;
  }
  return inherited;
}
