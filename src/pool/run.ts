import type { AgentPoolConfig, AgentProfile } from '../config/config.js';
import { portEnvironment } from '../config/placeholders.js';
import { describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RunRecord } from '../store/state-store.js';
import type { StoryWorktree, Worktrees } from '../worktree/worktrees.js';
import type { AgentAdapter, RunOutcome, RunParser } from './agent-adapter.js';
import type { AgentProcess, ProcessExit, SpawnAgentProcess } from './agent-process.js';
import { AcpRunParser } from './agents/acp.js';
import { AcpConnection, acpEnvironment } from './agents/acp-connection.js';
import { type ApprovalAnswer, ControlSession, type PendingApproval, stdinChannel, type WaitReason } from './control-session.js';
import type { EventLog } from './event-log.js';
import type { AgentEvent, AgentEventPayload, AgentStatus, TypedEventPayload, Usage } from './events.js';
import { type LaunchPlan, planLaunch, TERMINAL_SIZE } from './launch-plan.js';
import { type McpAccess, type McpEndpoint, mcpEnvironment } from './mcp-access.js';
import { OutputBatcher } from './output-batcher.js';
import { AgentNotInteractiveError, AgentNotRunningError } from './pool-errors.js';
import { spawnPipeProcess } from './pipe-process.js';
import { type EndReason, RunSupervisor } from './run-supervisor.js';

/**
 * What is kept and shown of a run: the stored record, with its status typed. A live
 * {@link Run} keeps its own in `state` and changes it as it goes; a past run is only this.
 */
export type RunState = Omit<RunRecord, 'status'> & { status: AgentStatus };

/** What a run needs from its pool. */
export interface RunContext {
  readonly projectRoot: string;
  /** The configuration as read when the run was started. */
  readonly config: AgentPoolConfig;
  /** The agent profile the run uses. */
  readonly profile: AgentProfile;
  readonly adapter: AgentAdapter;
  /** What earlier runs of a resumed session used (for CLIs that report usage per session). */
  readonly sessionUsage?: Usage;
  readonly worktrees: Worktrees;
  readonly spawn: SpawnAgentProcess;
  readonly log: EventLog;
  readonly logger: Logger;
  /** The environment of the run's processes (the server's, without its secrets). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** The ports of the story's services, by name: `{{port:NAME}}` and `AGENT_POOL_PORT_NAME`. */
  readonly ports?: Readonly<Record<string, number>>;
  /** agent-pool's MCP endpoint, for a profile with `mcp = true`; undefined when no server offers one. */
  readonly mcp?: () => McpAccess | undefined;
  /** Called whenever the run's status or facts change. */
  readonly onChange: (run: Run) => void;
  /**
   * Called once the run's processes are all gone, before its end is recorded: work that
   * must be done before anyone can see the run ended (removing the worktree on a stop).
   */
  readonly beforeEnd?: (run: Run) => Promise<void>;
  /** Resolves when the run may touch the story's worktree (no landing of the story is under way). */
  readonly beforeWorktree?: () => Promise<void>;
  /** Called when the run has made the story's worktree (or found it), before setup runs. */
  readonly onWorktree?: (worktree: StoryWorktree) => void;
}

function isTyped(payload: AgentEventPayload): payload is TypedEventPayload {
  return (
    payload.type === 'tool_call' ||
    payload.type === 'tool_result' ||
    payload.type === 'usage' ||
    payload.type === 'approval_request' ||
    payload.type === 'plan'
  );
}

/**
 * A run's state as it begins, PENDING: a prompt given is the agent's as it is (the
 * configured one is rendered at launch), and nothing else is known yet.
 */
export function pendingRunState(
  storyId: string,
  number: number,
  options: { agent: string; prompt: string | undefined; marker: string; runner: string | undefined },
): RunState {
  return {
    storyId,
    number,
    agent: options.agent,
    prompt: options.prompt,
    renderedPrompt: options.prompt,
    status: 'PENDING',
    sessionId: undefined,
    pid: undefined,
    exitCode: undefined,
    error: undefined,
    usage: undefined,
    startedAt: new Date(),
    finishedAt: undefined,
    firstSeq: undefined,
    lastSeq: undefined,
    worktreePath: undefined,
    branch: undefined,
    marker: options.marker,
    runner: options.runner,
  };
}

/** What the approvals of a run that allows every request say (ACP's bypassPermissions). */
const APPROVED_BY_MODE = 'allowed by agent-pool: permission_mode = "bypassPermissions"';

/** How a run ends: as its adapter judges it, or stopped from outside. */
export type Ending = RunOutcome | { status: 'STOPPED' };
const STOPPED: Ending = { status: 'STOPPED' };

function endingFor(reason: EndReason): Ending {
  return reason.kind === 'failed' ? { status: 'FAILED', reason: reason.reason } : STOPPED;
}

/** The log's line for a run's end: its status, how long it took from its start, what it cost, and why it failed. */
function finishLine(state: RunState, reason: EndReason | undefined): string {
  const seconds = ((state.finishedAt ?? new Date()).getTime() - state.startedAt.getTime()) / 1000;
  const parts = [`story ${state.storyId} run ${state.number}: ${state.status} after ${seconds.toFixed(1)} s`];
  if (state.usage?.costUsd !== undefined) parts.push(`cost $${state.usage.costUsd.toFixed(4)}`);
  if (state.exitCode !== undefined) parts.push(`exit code ${state.exitCode}`);
  if (state.status === 'STOPPED') parts.push(reason?.kind === 'shutdown' ? 'the server shut down' : 'by request');
  if (state.status === 'FAILED' && state.error !== undefined) parts.push(state.error);
  return parts.join(', ');
}

/**
 * One start of a story's agent, from PENDING to its end: it prepares the worktree (setup
 * included), starts the agent, reads its output and records exactly one end. Its processes
 * belong to its {@link RunSupervisor}; its conversation, where the agent has a control
 * channel, to its {@link ControlSession}. `execute()` drives it; `stop()` ends it from
 * outside.
 */
export class Run {
  /** The run's fields as stored; changed in place as the run goes. */
  readonly state: RunState;
  /** Settles when the run has ended and every one of its processes is gone. */
  readonly finished: Promise<void>;

  readonly #context: RunContext;
  readonly #supervisor: RunSupervisor;
  readonly #control: ControlSession | undefined;
  /** The agent's session id, as given to continueAgent. */
  readonly #resumeSessionId: string | undefined;
  #process: AgentProcess | undefined;
  #acpParser: AcpRunParser | undefined;
  #executing = false;
  #turnsSeen = 0;
  #markFinished!: () => void;

  constructor(
    storyId: string,
    number: number,
    options: {
      /** The name of the agent profile the run uses. */
      agent: string;
      /** The prompt as given to startAgent, or undefined for the configured one. */
      prompt: string | undefined;
      resumeSessionId?: string;
      /** The server that runs it, in a cluster (`--runner-name`). */
      runner?: string;
      /** A run another server queued (see AgentPool.runClaimed): when, and from which event, it began. */
      queued?: Pick<RunState, 'startedAt' | 'firstSeq' | 'lastSeq'>;
    },
    context: RunContext,
  ) {
    this.#context = context;
    this.#resumeSessionId = options.resumeSessionId;
    this.#supervisor = new RunSupervisor({
      graceMs: context.config.pool.stop_grace_seconds * 1000,
      logger: context.logger,
      label: `story ${storyId} run ${number}`,
    });
    this.state = {
      ...pendingRunState(storyId, number, { agent: options.agent, prompt: options.prompt, marker: this.#supervisor.marker, runner: options.runner }),
      ...(options.queued && { startedAt: options.queued.startedAt, firstSeq: options.queued.firstSeq, lastSeq: options.queued.lastSeq }),
    };
    // Claude talks on a control channel outside bypassPermissions; an ACP agent always does.
    const acp = context.adapter.transport === 'acp';
    const interactive = acp || context.adapter.controlChannel?.({ permissionMode: context.profile.permission_mode }) !== undefined;
    this.#control = interactive
      ? new ControlSession({
          storyId,
          approveAll: acp && context.profile.permission_mode === 'bypassPermissions' ? APPROVED_BY_MODE : undefined,
          keepOpenSeconds: context.profile.keep_open_seconds,
          signal: this.#supervisor.signal,
          emit: (payloads) => this.#emit(payloads),
          changed: () => context.onChange(this),
        })
      : undefined;
    this.finished = new Promise((resolve) => {
      this.#markFinished = resolve;
    });
  }

  /**
   * Records the run's first event, PENDING: called by the pool once the run's record is on
   * its way to the store, so that in a cluster the record (which says whose run it is)
   * comes before any of its events.
   */
  announce(): void {
    if (this.state.firstSeq === undefined) this.#emit([{ type: 'status', status: 'PENDING' }]);
  }

  get storyId(): string {
    return this.state.storyId;
  }

  get status(): AgentStatus {
    return this.state.status;
  }

  /** The configuration the run was started with. */
  get config(): AgentPoolConfig {
    return this.#context.config;
  }

  /** Why agent-pool ended the run (stopped, shut down, failed), if it did: the first reason given. */
  get endReason(): EndReason | undefined {
    return this.#supervisor.endReason;
  }

  /** Whether the run has ended. */
  get ended(): boolean {
    return this.state.finishedAt !== undefined;
  }

  /**
   * Whether the agent can take its session back in a follow-up, where it said so when the
   * run began (an ACP agent's capabilities); undefined where it did not say.
   */
  get agentResumes(): boolean | undefined {
    return this.#acpParser?.resumes;
  }

  /** Whether the run talks to its agent through a control channel (approvals, messages, interrupts). */
  get interactive(): boolean {
    return this.#control !== undefined;
  }

  /** The approval requests waiting for an answer, oldest first. */
  get pendingApprovals(): PendingApproval[] {
    return this.#control?.pendingApprovals ?? [];
  }

  /** What the agent waits for from a person, if anything. */
  get waitingFor(): WaitReason | undefined {
    return this.#control?.waitingFor;
  }

  /**
   * Prepares the worktree, starts the agent, reads its output until it exits and ends the
   * run with its outcome. Called by the pool once a slot is free. Whatever goes wrong, a
   * store that refuses a write included, ends the run FAILED with the reason; it rejects
   * only if even that could not be recorded (the caller logs it).
   */
  async execute(): Promise<void> {
    if (this.ended || this.#executing) return;
    this.#executing = true;
    let ending: Ending;
    try {
      ending = await this.#runAgent();
    } catch (error) {
      const reason = this.#supervisor.endReason;
      ending = reason ? endingFor(reason) : { status: 'FAILED', reason: describeError(error) };
    }
    await this.#end(ending);
  }

  /**
   * Ends the run from outside: a queued run ends at once; a running one through its
   * supervisor (the agent's own interrupt, then SIGTERM and SIGKILL to every process of the
   * run, `stop_grace_seconds` apart). The first reason given stays. Resolves once the run
   * has ended and all its processes are gone.
   */
  async stop(reason: EndReason = { kind: 'stopped' }): Promise<void> {
    if (this.ended) return;
    if (!this.#executing) {
      // Queued: nothing was started.
      this.#executing = true;
      void this.#supervisor.stop(reason);
      await this.#end(endingFor(reason));
      return;
    }
    await this.#supervisor.stop(reason);
    await this.finished;
  }

  /** The store refused the run's events: the run ends FAILED, saying so (its first end reason stays). */
  recordingFailed(error: unknown): void {
    void this.stop({ kind: 'failed', reason: `its events could not be recorded: ${describeError(error)}` });
  }

  /**
   * Writes to the agent's terminal, as typing would.
   * @throws AgentNotRunningError, InputBacklogFullError.
   */
  writeTerminal(data: string): void {
    this.#runningProcess().write(data);
  }

  /**
   * Resizes the agent's terminal.
   * @throws AgentNotRunningError.
   */
  resize(cols: number, rows: number): void {
    this.#runningProcess().resize(cols, rows);
  }

  /**
   * Answers an approval request, once (see {@link ControlSession.answer}).
   * @throws AgentNotInteractiveError, ApprovalAlreadyAnsweredError, ApprovalNotFoundError, AgentNotRunningError.
   */
  answerApproval(requestId: string, answer: ApprovalAnswer): void {
    this.#requireControl().answer(requestId, answer, this.status);
  }

  /**
   * A new turn in the live session: sent at once when the agent waits for one, queued
   * behind the running turn otherwise.
   * @throws AgentNotInteractiveError, AgentNotRunningError, InputBacklogFullError.
   */
  sendMessage(text: string): void {
    const control = this.#requireControl();
    if (this.ended) throw new AgentNotRunningError(this.storyId, this.status);
    control.send(text, this.status);
  }

  /**
   * Ends the current turn at once (its commands killed by the agent); the session stays
   * and the agent waits for the next message. Pending approvals of the turn are refused.
   * @throws AgentNotInteractiveError, AgentNotRunningError.
   */
  interrupt(): void {
    const control = this.#requireControl();
    if (this.status !== 'RUNNING') throw new AgentNotRunningError(this.storyId, this.status, 'there is no turn to interrupt');
    control.interrupt(this.status);
  }

  #requireControl(): ControlSession {
    if (!this.#control) throw new AgentNotInteractiveError(this.storyId);
    return this.#control;
  }

  #runningProcess(): AgentProcess {
    if (this.status !== 'RUNNING' || !this.#process) throw new AgentNotRunningError(this.storyId, this.status);
    return this.#process;
  }

  async #runAgent(): Promise<Ending> {
    const { config, profile, adapter, projectRoot } = this.#context;
    const supervisor = this.#supervisor;
    const ports = this.#context.ports ?? {};
    const env: Record<string, string> = { ...this.#context.baseEnv, NO_COLOR: '1', ...portEnvironment(ports), ...profile.env };
    let mcp: McpEndpoint | undefined;
    if (profile.mcp) {
      mcp = this.#context.mcp?.()?.endpoint(this.storyId, this.state.number);
      if (!mcp) return { status: 'FAILED', reason: 'mcp = true, but this agent-pool serves no MCP endpoint: run it with agent-pool serve' };
    }
    await this.#context.beforeWorktree?.();
    // A stop while a landing of the story finished.
    if (supervisor.endReason) return endingFor(supervisor.endReason);
    const worktree = await this.#context.worktrees.ensure(this.storyId, config.worktree, {
      // The story's work is there from now on, setup's included, whatever becomes of the run.
      beforeSetup: (made) => {
        this.state.worktreePath = made.path;
        this.state.branch = made.branch;
        this.#context.onWorktree?.(made);
        this.#context.onChange(this);
      },
      runSetup: (command, cwd, variables) => supervisor.runCommand(command, { cwd, env: { ...env, ...variables } }),
    });
    // A stop while git made the worktree (git is not interrupted: a half-made worktree would be worse).
    if (supervisor.endReason) return endingFor(supervisor.endReason);

    const plan = planLaunch({
      profile,
      adapter,
      projectRoot,
      worktree,
      prompt: this.state.prompt,
      resumeSessionId: this.#resumeSessionId,
      path: env.PATH,
      ports,
      mcp: mcp !== undefined,
    });
    if ('failure' in plan) return { status: 'FAILED', reason: plan.failure };
    this.state.renderedPrompt = plan.prompt;
    // Only the agent gets the scoped token, never setup; set last, so that no profile env replaces it.
    const launch = { plan, env: { ...env, ...(mcp ? mcpEnvironment(mcp) : {}), PWD: worktree.path }, cwd: worktree.path, mcp };
    return adapter.transport === 'acp' ? this.#runOverAcp(launch) : this.#runInTerminal(launch);
  }

  /** Runs the agent in a terminal, reading its output line by line; Claude's control channel, if used, on a stdin pipe. */
  async #runInTerminal({ plan, env, cwd }: { plan: LaunchPlan; env: Record<string, string>; cwd: string }): Promise<Ending> {
    const { profile, adapter } = this.#context;
    const supervisor = this.#supervisor;
    const control = this.#control;
    const protocol = adapter.controlChannel?.({ permissionMode: profile.permission_mode });
    const agent = supervisor.spawnAgent(
      this.#context.spawn,
      { file: plan.file, args: plan.args, cwd, env, ...TERMINAL_SIZE, stdin: control ? 'pipe' : 'terminal' },
      (process) => {
        if (control) control.stop();
        else if (adapter.interruptSignal) process.signalGroup(adapter.interruptSignal);
      },
    );
    this.#started(agent);
    // On the control channel, the prompt is the first turn's message.
    if (control && protocol) control.begin(stdinChannel(protocol, agent), plan.prompt);
    this.#context.onChange(this);

    const parser = adapter.createRunParser({
      sessionUsage: this.#context.sessionUsage,
      maxBudgetUsd: profile.max_budget_usd,
      maxTurns: profile.max_turns,
    });
    const exit = await this.#readOutput(agent, parser, [{ read: (line) => parser.parseLine(line), attach: (listener) => agent.onData(listener) }]);
    return this.#ending(exit, parser);
  }

  /**
   * Runs an agent that speaks the Agent Client Protocol, on pipes: its stdout is the
   * protocol (each message recorded, then handed to the SDK's connection), its stderr plain
   * output. The prompt is the session's first turn.
   */
  async #runOverAcp({ plan, env, cwd, mcp }: { plan: LaunchPlan; env: Record<string, string>; cwd: string; mcp: McpEndpoint | undefined }): Promise<Ending> {
    const { profile, config, logger } = this.#context;
    const supervisor = this.#supervisor;
    const control = this.#control!;
    const agent = supervisor.spawnAgent(
      spawnPipeProcess,
      { file: plan.file, args: plan.args, cwd, env: { ...env, ...acpEnvironment(plan.file, profile.permission_mode, env) }, ...TERMINAL_SIZE },
      () => control.stop(),
    );
    this.#started(agent);
    const parser = new AcpRunParser(this.state.number);
    this.#acpParser = parser;
    const connection = new AcpConnection({
      process: agent,
      parser,
      cwd,
      resumeSessionId: this.#resumeSessionId,
      mcp,
      permissionMode: profile.permission_mode,
      graceMs: config.pool.stop_grace_seconds * 1000,
      fail: (reason) => void supervisor.stop({ kind: 'failed', reason }),
      settled: (requestId, reason) => control.settle(requestId, reason),
      logger,
      label: `story ${this.storyId} run ${this.state.number}`,
    });
    control.begin(connection, plan.prompt);
    this.#context.onChange(this);
    const exit = await this.#readOutput(agent, parser, [
      // Each message is recorded first, then handed to the connection (parser.onMessage).
      { read: (line) => parser.parseLine(line), attach: (listener) => agent.onData(listener) },
      { read: (line) => parser.stderrLine(line), attach: (listener) => agent.onStderr(listener) },
    ]);
    connection.dispose();
    return this.#ending(exit, parser);
  }

  /** The agent runs: its status and pid are recorded. */
  #started(agent: AgentProcess): void {
    this.#process = agent;
    this.state.pid = agent.pid;
    this.state.status = 'RUNNING';
    this.#emit([{ type: 'status', status: 'RUNNING' }]);
    this.#context.logger.info(
      `story ${this.storyId} run ${this.state.number}: agent "${this.state.agent}" (${this.#context.profile.kind}) started, pid ${agent.pid}` +
        (this.#resumeSessionId === undefined ? '' : `, resuming session ${this.#resumeSessionId}`),
    );
  }

  /**
   * Reads the agent's output streams into events until it exits (and every byte it wrote
   * is read), watching for idleness; each stream is batched into lines on its own.
   */
  async #readOutput(
    agent: AgentProcess,
    parser: RunParser,
    streams: ReadonlyArray<{ read: (line: string) => AgentEventPayload[]; attach: (listener: (chunk: Buffer) => void) => void }>,
  ): Promise<ProcessExit> {
    const supervisor = this.#supervisor;
    const idle = this.#watchIdleness(this.#context.profile.idle_timeout_seconds);
    /** Why reading the output failed (a parser that threw): the run ends FAILED with it. */
    let readFailure: unknown;
    const batchers = streams.map(({ read, attach }) => {
      const batcher = new OutputBatcher(
        (lines) => this.#readLines(read, parser, lines),
        (error) => {
          readFailure = error;
          void supervisor.stop({ kind: 'failed', reason: `its output could not be read: ${describeError(error)}` });
        },
      );
      attach((chunk) => {
        idle.sawOutput();
        batcher.push(chunk);
      });
      return batcher;
    });
    const exit = await agent.exited;
    idle.cancel();
    for (const batcher of batchers) batcher.end();
    if (readFailure === undefined) this.#readLines(() => [], parser, [], parser.end());
    return exit;
  }

  /** How the run ended, once its agent exited: stopped or failed by agent-pool, interrupted, or as the parser judges it. */
  #ending(exit: ProcessExit, parser: RunParser): Ending {
    const control = this.#control;
    control?.end('the run ended before it was answered');
    this.state.exitCode = exit.exitCode ?? undefined;
    this.state.pid = undefined;
    const supervisor = this.#supervisor;
    if (supervisor.endReason) return endingFor(supervisor.endReason);
    // A person interrupted the last turn and sent nothing more: the run was stopped, not
    // failed (an ACP agent may have been ended after its input closed).
    if (control?.lastTurnInterrupted && (exit.exitCode !== null || this.#acpParser?.endedAfterInput)) return STOPPED;
    return parser.outcome(exit);
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
      if (performance.now() - lastOutput < seconds * 1000 || this.#supervisor.signal.aborted) return;
      void this.#supervisor.stop({
        kind: 'failed',
        reason:
          `agent printed nothing for ${seconds} seconds (idle_timeout_seconds): it was stopped` +
          // An ACP agent that never started its session is likely no ACP agent at all.
          (this.#acpParser && !this.#acpParser.sessionStarted
            ? `; it never started its ACP session: is "${this.#context.profile.command}" an agent that speaks ACP on stdio (gemini needs --acp, opencode the acp subcommand)?`
            : ''),
      });
    }, Math.min(1000, (seconds * 1000) / 4));
    timer.unref();
    const cancel = (): void => clearInterval(timer);
    this.#supervisor.signal.addEventListener('abort', cancel, { once: true });
    return {
      sawOutput: () => {
        lastOutput = performance.now();
      },
      cancel,
    };
  }

  /**
   * Turns lines into events and appends them, in order, as one batch. The typed events an
   * adapter derives from a JSON line name that line's json event (`lineSeq`): its seq is
   * known here, as the run is its story's only writer while it runs.
   */
  #readLines(read: (line: string) => AgentEventPayload[], parser: RunParser, lines: readonly string[], held: AgentEventPayload[] = []): void {
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
      for (const payload of read(line)) take(payload);
    }
    for (const payload of held) take(payload);
    if (payloads.length === 0) return;
    let changed = parser.sessionId !== this.state.sessionId || parser.usage !== this.state.usage;
    this.state.sessionId = parser.sessionId;
    this.state.usage = parser.usage;
    const events = this.#emit(payloads);
    for (const event of events) {
      if (event.type !== 'approval_request') continue;
      this.#control?.requested(event);
      changed = true;
    }
    if (parser.turnsEnded > this.#turnsSeen) {
      this.#turnsSeen = parser.turnsEnded;
      this.#control?.turnEnded();
      changed = true;
    }
    if (changed) this.#context.onChange(this);
  }

  /**
   * The end of the run: every process of it is ended, the pool's last work is done, and
   * exactly one terminal status is recorded.
   */
  async #end(ending: Ending): Promise<void> {
    try {
      await this.#supervisor.end();
      await this.#context.beforeEnd?.(this);
      this.#finish(ending);
    } finally {
      this.state.finishedAt ??= new Date();
      this.#markFinished();
    }
  }

  #finish(ending: Ending): void {
    const state = this.state;
    state.finishedAt = new Date();
    state.pid = undefined;
    if (ending.status === 'STOPPED') {
      state.status = 'STOPPED';
      const reason = this.#supervisor.endReason;
      const message = reason?.kind === 'shutdown' ? 'stopped because the server shut down' : 'stopped by request';
      this.#emit([
        { type: 'status', status: 'STOPPED' },
        { type: 'error', message },
      ]);
    } else if (ending.status === 'COMPLETED') {
      state.status = 'COMPLETED';
      this.#emit([
        { type: 'status', status: 'COMPLETED' },
        { type: 'done', sessionId: state.sessionId ?? null, exitCode: state.exitCode ?? null },
      ]);
    } else {
      state.status = 'FAILED';
      state.error = ending.reason;
      this.#emit([
        { type: 'status', status: 'FAILED' },
        { type: 'error', message: ending.reason },
      ]);
    }
    this.#context.logger.info(finishLine(state, this.#supervisor.endReason));
    this.#context.onChange(this);
  }

  #emit(payloads: readonly AgentEventPayload[]): AgentEvent[] {
    const events = this.#context.log.append(this.storyId, this.state.number, payloads);
    if (events.length === 0) return events;
    this.state.firstSeq ??= events[0]!.seq;
    this.state.lastSeq = events.at(-1)!.seq;
    return events;
  }
}
