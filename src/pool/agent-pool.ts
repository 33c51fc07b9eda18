import { type AgentKind, type AgentPoolConfig, DEFAULT_PROFILE, loadConfig, type PermissionMode } from '../config/config.js';
import { secretVariables } from '../config/secret-variables.js';
import { type Logger, silentLogger } from '../logger.js';
import type { RunRecord, Store } from '../store/store.js';
import { assertValidStoryId } from '../worktree/story-id.js';
import { Worktrees } from '../worktree/worktrees.js';
import type { CommitInfo } from '../worktree/git-output.js';
import { type GitReadLimits, GitReads } from '../worktree/git-reads.js';
import { readChanges, readCommits, readDiff, type StoryWork, type WorktreeChanges } from '../worktree/story-changes.js';
import type { AgentProcess, SpawnAgentProcess } from './agent-process.js';
import { adapterFor } from './agents/adapters.js';
import { AgentUpdates } from './agent-updates.js';
import { EventLog, MemoryEventStorage } from './event-log.js';
import { addUsage, type AgentEvent, type AgentStatus, isActive, type Usage } from './events.js';
import {
  AgentAlreadyRunningError,
  AgentNotFoundError,
  AgentNotRunningError,
  ApprovalAlreadyAnsweredError,
  ApprovalNotFoundError,
  InvalidArgumentError,
  NoSessionToResumeError,
  PoolClosedError,
  UnknownAgentError,
} from './pool-errors.js';
import { spawnPtyProcess } from './pty-process.js';
import {
  type ApprovalAnswer,
  inheritedEnvironment,
  type PendingApproval,
  Run,
  type RunState,
  type ServerSecrets,
  type StopReason,
  type WaitReason,
} from './run.js';
import { terminateRunProcesses } from './run-processes.js';
import { StoredEventStorage } from './stored-event-storage.js';

/** `env` without the variables named (the secrets the configuration names, read at each start). */
function withoutVariables(env: Record<string, string>, names: readonly string[]): Record<string, string> {
  if (names.length === 0) return env;
  const kept = { ...env };
  for (const name of names) delete kept[name];
  return kept;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * While a story's events flow, its agent is pushed to update readers at most this often
 * (its lastSeq and lastEventAt), besides every change of its state, which goes at once.
 */
export const ACTIVITY_UPDATE_MS = 1000;

/**
 * The most bytes one sendInput writes to an agent's terminal.
 * @default 64 KiB
 */
export const MAX_INPUT_BYTES = 64 * 1024;

/** The error of a run that was PENDING or RUNNING when its server stopped without stopping it. */
export const INTERRUPTED_RUN_ERROR = 'server stopped while the agent was running';

const STATUSES: ReadonlySet<string> = new Set<AgentStatus>(['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'STOPPED']);

function runState(record: RunRecord): RunState {
  if (!STATUSES.has(record.status)) throw new Error(`stored run ${record.storyId}#${record.number} has status ${record.status}`);
  return { ...record, status: record.status as AgentStatus };
}

function runRecord(run: RunState): RunRecord {
  return {
    storyId: run.storyId,
    number: run.number,
    agent: run.agent,
    prompt: run.prompt,
    status: run.status,
    sessionId: run.sessionId,
    pid: run.pid,
    exitCode: run.exitCode,
    error: run.error,
    usage: run.usage,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    firstSeq: run.firstSeq,
    lastSeq: run.lastSeq,
    worktreePath: run.worktreePath,
    branch: run.branch,
    marker: run.marker,
  };
}

/** One run of a story, as callers see it. */
export interface RunInfo {
  number: number;
  /** The agent profile the run used. */
  agent: string;
  prompt: string | undefined;
  status: AgentStatus;
  sessionId: string | undefined;
  exitCode: number | undefined;
  /** What the agent reported the run cost. */
  costUsd: number | undefined;
  usage: Usage | undefined;
  startedAt: Date;
  finishedAt: Date | undefined;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
}

/** A story's agent, as callers see it: the contract's `Agent`. */
export interface AgentInfo {
  storyId: string;
  /** The story's agent profile. */
  agent: string;
  /** The status of the story's latest run. */
  status: AgentStatus;
  /** The newest session id any run of the story reported. */
  sessionId: string | undefined;
  worktreePath: string | undefined;
  branch: string | undefined;
  /** The pid leading the run's process group, while it runs. */
  pid: number | undefined;
  exitCode: number | undefined;
  /** Why the latest run FAILED. */
  error: string | undefined;
  /** The sum of the runs' costs; undefined when no run reported one. */
  costUsd: number | undefined;
  /** The sum of the runs' usage. */
  usage: Usage | undefined;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  /** The seq of the story's newest event, 0 if none. */
  lastSeq: number;
  /** When the story's newest event was recorded. */
  lastEventAt: Date | undefined;
  runs: RunInfo[];
  /** The latest run's approval requests that wait for an answer, oldest first. */
  pendingApprovals: PendingApproval[];
  /** What the latest run waits for from a person, if anything. */
  waitingFor: WaitReason | undefined;
  /** Whether the latest run has a control channel (approvals, messages, interrupts). */
  interactive: boolean;
}

/** An agent profile of the configuration, as callers see it. */
export interface AgentProfileInfo {
  name: string;
  kind: AgentKind;
  /** Claude's permission mode: all but bypassPermissions ask a person to approve tool calls. */
  permissionMode: PermissionMode;
  /** Whether a new story gets it when startAgent names none. */
  isDefault: boolean;
}

/** What an {@link AgentPool} is built from; everything but the project has a default. */
export interface AgentPoolOptions {
  /** The top level of the project's main work tree. */
  projectRoot: string;
  /** Reads the configuration; called at each start. Default: `agent-pool.toml` at the root. */
  loadConfig?: () => AgentPoolConfig;
  /** Starts agent processes. Default: node-pty through the run helper. */
  spawn?: SpawnAgentProcess;
  /**
   * The state database: stories, runs and events are kept there and read back at start,
   * and runs that a crash interrupted are ended. Default: none (everything in memory).
   */
  store?: Store;
  logger?: Logger;
  /** The environment agents inherit (agent-pool's own secrets are removed). Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /**
   * The server's secrets, kept from agents and setup commands: its token's value, and
   * variables beyond those the configuration names (which are removed at each start).
   */
  secrets?: ServerSecrets;
  /** How reads of stories' git work are bounded. Default: 4 at once, 60 s each. */
  gitReads?: GitReadLimits;
}

/** What a read of a story's git work may be given. */
export interface GitReadOptions {
  /** The asking client's: aborted when it leaves, which ends the read and its git. */
  signal?: AbortSignal;
}

interface Story {
  readonly storyId: string;
  /** The story's agent profile: the one it was last started with. */
  agent: string;
  /** The story's runs; the latest is a live {@link Run} while it is PENDING or RUNNING. */
  readonly runs: RunState[];
}

/**
 * The agents of one project: it starts a story's agent in its worktree, queues starts
 * beyond `max_concurrent`, stops runs with every process they started, and keeps each
 * story's event log. It knows nothing of GraphQL.
 */
export class AgentPool {
  readonly projectRoot: string;
  readonly #loadConfig: () => AgentPoolConfig;
  readonly #spawn: SpawnAgentProcess;
  readonly #log: EventLog;
  readonly #logger: Logger;
  readonly #worktrees: Worktrees;
  readonly #gitReads: GitReads;
  readonly #baseEnv: Record<string, string>;
  readonly #stories = new Map<string, Story>();
  readonly #queue: Run[] = [];
  readonly #holdingSlot = new Set<Run>();
  readonly #changeListeners = new Set<(agent: AgentInfo) => void>();
  readonly #updateReaders = new Set<AgentUpdates<AgentInfo>>();
  /** Stories whose events flowed since their agent was last pushed to update readers. */
  readonly #activityTimers = new Map<string, NodeJS.Timeout>();
  readonly #store: Store | undefined;
  /** The markers of runs a crash interrupted, whose processes {@link AgentPool.open} ends. */
  readonly #orphanMarkers: string[] = [];
  readonly #graceMs: number;
  #maxConcurrent: number;
  #closed = false;

  /**
   * Builds a pool. With a store, the stories, runs and events it holds come back, and runs
   * it shows as PENDING or RUNNING (the server died under them) are ended FAILED; use
   * {@link AgentPool.open} so that their surviving processes are ended too.
   */
  constructor(options: AgentPoolOptions) {
    this.projectRoot = options.projectRoot;
    this.#loadConfig = options.loadConfig ?? (() => loadConfig(options.projectRoot));
    const config = this.#loadConfig();
    this.#maxConcurrent = config.pool.max_concurrent;
    this.#graceMs = config.pool.stop_grace_seconds * 1000;
    this.#spawn = options.spawn ?? spawnPtyProcess;
    this.#store = options.store;
    const maxEvents = config.store.max_events_per_story;
    this.#log = new EventLog(
      options.store ? new StoredEventStorage(options.store, maxEvents) : new MemoryEventStorage(maxEvents),
    );
    this.#logger = options.logger ?? silentLogger;
    this.#worktrees = new Worktrees(options.projectRoot);
    this.#gitReads = new GitReads(options.gitReads);
    this.#baseEnv = inheritedEnvironment(options.env ?? process.env, options.secrets);
    if (options.store) this.#restore(options.store);
    this.#log.onAppend((storyId) => this.#noteActivity(storyId));
  }

  /**
   * Builds a pool over a store and ends every process that survived a crash of the previous
   * server (found by its run's marker, so a reused pid is never touched).
   */
  static async open(options: AgentPoolOptions & { store: Store }): Promise<AgentPool> {
    const pool = new AgentPool(options);
    await pool.#endOrphans();
    return pool;
  }

  /** The project's worktrees. */
  get worktrees(): Worktrees {
    return this.#worktrees;
  }

  /**
   * Starts a new run of a story: it is PENDING at once; making the worktree, running
   * `setup` and spawning the agent happen in the run (a failure there ends it FAILED).
   * The config file is read again here, so edits apply without a restart.
   * @param prompt the prompt; the configured `[agent] prompt` when omitted.
   * @throws InvalidStoryIdError, AgentAlreadyRunningError, ConfigError (nothing changes).
   */
  start(storyId: string, prompt?: string, agent?: string): AgentInfo {
    return this.#startRun(storyId, prompt, { agent });
  }

  /**
   * Starts a follow-up run of a finished story that resumes the agent's own session: the
   * session id of the latest run that reported one (never "the latest session in the
   * folder"), in the same worktree, with the story's configuration.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentAlreadyRunningError,
   *   NoSessionToResumeError, ConfigError.
   */
  continue(storyId: string, prompt: string): AgentInfo {
    const story = this.#story(storyId);
    const latest = story.runs.at(-1)!;
    if (isActive(latest.status)) throw new AgentAlreadyRunningError(storyId, latest.status);
    const resumed = story.runs.findLast((run) => run.sessionId !== undefined);
    if (resumed?.sessionId === undefined) throw new NoSessionToResumeError(storyId);
    const sessionUsage = story.runs
      .filter((run) => run.sessionId === resumed.sessionId)
      .reduce<Usage | undefined>((sum, run) => addUsage(sum, run.usage), undefined);
    // The same CLI, with the same profile (the same config dir): it alone has that session.
    return this.#startRun(storyId, prompt, { agent: resumed.agent, resume: { sessionId: resumed.sessionId, sessionUsage } });
  }

  /**
   * Writes to a running agent's terminal, as typing would: at most {@link MAX_INPUT_BYTES}
   * at a time, and at most 1 MiB waiting for an agent that does not read it.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotRunningError,
   *   InvalidArgumentError (too much at once), InputBacklogFullError.
   */
  sendInput(storyId: string, data: string): void {
    if (Buffer.byteLength(data) > MAX_INPUT_BYTES) {
      throw new InvalidArgumentError(`data is limited to ${MAX_INPUT_BYTES} bytes per sendInput, got ${Buffer.byteLength(data)}: send it in parts`);
    }
    const latest = this.#story(storyId).runs.at(-1);
    if (latest instanceof Run && latest.interactive) {
      throw new InvalidArgumentError(
        `story ${storyId} talks to its agent through a control channel on stdin, where typed bytes would end the agent: use sendMessage (a new turn), respondToApproval or interruptAgent`,
      );
    }
    this.#runningProcess(storyId).write(data);
  }

  /**
   * Answers one of the approval requests of a story's running agent, once.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotInteractiveError,
   *   ApprovalNotFoundError, ApprovalAlreadyAnsweredError, InvalidArgumentError.
   */
  respondToApproval(storyId: string, requestId: string, answer: ApprovalAnswer): AgentInfo {
    const story = this.#story(storyId);
    if (answer.updatedInput !== undefined && !isPlainObject(answer.updatedInput)) {
      throw new InvalidArgumentError(
        `updatedInput must be a JSON object, the tool's whole input (as the request's input), got ${JSON.stringify(answer.updatedInput)}`,
      );
    }
    if (!answer.allow && (answer.updatedInput !== undefined || answer.remember)) {
      throw new InvalidArgumentError('updatedInput and remember go with allow: true; a denial takes only a message');
    }
    const latest = story.runs.at(-1)!;
    if (latest instanceof Run) latest.answerApproval(requestId, answer);
    else if (this.#answeredApprovals(latest).has(requestId)) throw new ApprovalAlreadyAnsweredError(storyId, requestId);
    else throw new ApprovalNotFoundError(storyId, requestId);
    return this.#info(story);
  }

  /**
   * A new turn in the live session of a story's running agent; queued behind the turn that
   * is running, if one is.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotRunningError,
   *   AgentNotInteractiveError, InvalidArgumentError (an empty text).
   */
  sendMessage(storyId: string, text: string): AgentInfo {
    const story = this.#story(storyId);
    if (text.trim() === '') throw new InvalidArgumentError('text must not be empty: it is the message the agent gets');
    const latest = story.runs.at(-1)!;
    if (!(latest instanceof Run) || latest.ended) {
      throw new AgentNotRunningError(storyId, latest.status, 'use continueAgent to resume its session in a new run');
    }
    latest.sendMessage(text);
    return this.#info(story);
  }

  /**
   * Interrupts the running turn of a story's agent; the session stays, and the agent
   * waits for the next message (or, with nothing to wait for, the run ends STOPPED).
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotRunningError, AgentNotInteractiveError.
   */
  interrupt(storyId: string): AgentInfo {
    const story = this.#story(storyId);
    const latest = story.runs.at(-1)!;
    if (!(latest instanceof Run)) throw new AgentNotRunningError(storyId, latest.status);
    latest.interrupt();
    return this.#info(story);
  }

  /** The request ids of a run's approval requests that were answered or refused, read from its events. */
  #answeredApprovals(run: RunState): Set<string> {
    const answered = new Set<string>();
    for (const event of this.#runEvents(run)) if (event.type === 'approval_resolved') answered.add(event.requestId);
    return answered;
  }

  /** A run's kept events, oldest first. */
  *#runEvents(run: RunState): Generator<AgentEvent> {
    if (run.firstSeq === undefined || run.lastSeq === undefined) return;
    let after = Math.max(run.firstSeq, this.#log.bounds(run.storyId).firstSeq) - 1;
    while (after < run.lastSeq) {
      const page = this.#log.page(run.storyId, after, 1000);
      if (page.length === 0) return;
      for (const event of page) {
        if (event.seq > run.lastSeq) return;
        yield event;
      }
      after = page.at(-1)!.seq;
    }
  }

  /**
   * Resizes a running agent's terminal (1 to 1000 columns and rows).
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotRunningError, InvalidArgumentError.
   */
  resizeTerminal(storyId: string, cols: number, rows: number): void {
    for (const [name, value] of [['cols', cols], ['rows', rows]] as const) {
      if (!Number.isInteger(value) || value < 1 || value > 1000) {
        throw new InvalidArgumentError(`${name} must be a whole number from 1 to 1000, got ${value}`);
      }
    }
    this.#runningProcess(storyId).resize(cols, rows);
  }

  /**
   * What a story changed against its base commit; undefined before it has a worktree.
   * Reads of git work run a few at a time, each with a time limit, and end when
   * `options.signal` aborts or the pool is disposed.
   * @throws GitReadError when the read was cut short.
   */
  async changes(storyId: string, options: GitReadOptions = {}): Promise<WorktreeChanges | undefined> {
    const work = await this.#work(storyId);
    return work && this.#gitReads.run(options.signal, (signal) => readChanges(this.projectRoot, work, { signal }));
  }

  /**
   * The unified diff of a story's changes (one file, or all), read as {@link changes} is.
   * @throws PathNotChangedError for a path not among the changes; GitReadError.
   */
  async diff(storyId: string, filePath?: string, options: GitReadOptions = {}): Promise<string | undefined> {
    const work = await this.#work(storyId);
    return work && this.#gitReads.run(options.signal, (signal) => readDiff(this.projectRoot, work, filePath, { signal }));
  }

  /**
   * The commits on a story's branch since its base commit, newest first, read as {@link changes} is.
   * @throws GitReadError.
   */
  async commits(storyId: string, options: GitReadOptions = {}): Promise<CommitInfo[]> {
    const work = await this.#work(storyId);
    return work ? this.#gitReads.run(options.signal, (signal) => readCommits(this.projectRoot, work, { signal })) : [];
  }

  /** The reads of git work running or waiting (for tests and diagnostics). */
  get pendingGitReads(): number {
    return this.#gitReads.pending;
  }

  #runningProcess(storyId: string): AgentProcess {
    const latest = this.#story(storyId).runs.at(-1)!;
    const agentProcess = latest instanceof Run ? latest.process : undefined;
    if (!agentProcess) throw new AgentNotRunningError(storyId, latest.status);
    return agentProcess;
  }

  async #work(storyId: string): Promise<StoryWork | undefined> {
    const agent = this.get(storyId);
    if (!agent?.branch) return undefined;
    return this.#worktrees.storyWork(storyId, agent.branch, agent.worktreePath);
  }

  #startRun(
    storyId: string,
    prompt: string | undefined,
    options: { agent: string | undefined; resume?: { sessionId: string; sessionUsage: Usage | undefined } },
  ): AgentInfo {
    if (this.#closed) throw new PoolClosedError();
    assertValidStoryId(storyId);
    const story = this.#stories.get(storyId);
    const latest = story?.runs.at(-1);
    if (latest && isActive(latest.status)) throw new AgentAlreadyRunningError(storyId, latest.status);
    const config = this.#loadConfig();
    const profileName = options.agent ?? story?.agent ?? config.pool.default_agent;
    const profile = config.agents[profileName];
    if (!profile) throw new UnknownAgentError(profileName, Object.keys(config.agents));

    const entry: Story = story ?? { storyId, agent: profileName, runs: [] };
    if (!story) {
      this.#stories.set(storyId, entry);
      this.#store?.addStory(storyId, new Date(), profileName);
    } else if (story.agent !== profileName) {
      story.agent = profileName;
      this.#store?.setStoryAgent(storyId, profileName);
    }
    const run = new Run(storyId, entry.runs.length + 1, { prompt, resumeSessionId: options.resume?.sessionId }, {
      projectRoot: this.projectRoot,
      config,
      profileName,
      profile,
      adapter: adapterFor(profile.kind),
      sessionUsage: options.resume?.sessionUsage,
      worktrees: this.#worktrees,
      spawn: this.#spawn,
      log: this.#log,
      logger: this.#logger,
      baseEnv: withoutVariables(this.#baseEnv, secretVariables(config)),
      onChange: (changed) => {
        this.#store?.saveRun(runRecord(changed));
        this.#changed(storyId);
      },
    });
    entry.runs.push(run);
    this.#store?.saveRun(runRecord(run));
    this.#maxConcurrent = config.pool.max_concurrent;
    this.#queue.push(run);
    this.#changed(storyId);
    this.#drainQueue();
    return this.#info(entry);
  }

  /**
   * Stops a story's current run (queued or running) and returns once every process of it
   * is gone; the run ends STOPPED. A story that is not running is returned unchanged.
   * With `[worktree] remove_on_stop`, the worktree is then removed (its work saved first).
   * @throws InvalidStoryIdError, AgentNotFoundError.
   */
  async stop(storyId: string): Promise<AgentInfo> {
    const story = this.#story(storyId);
    const run = story.runs.at(-1);
    if (run instanceof Run && isActive(run.status)) await this.#stopRun(run, 'stopped');
    return this.#info(story);
  }

  /**
   * A story's agent, or undefined when it was never started.
   * @throws InvalidStoryIdError.
   */
  get(storyId: string): AgentInfo | undefined {
    assertValidStoryId(storyId);
    const story = this.#stories.get(storyId);
    return story && this.#info(story);
  }

  /** How many stories there are, optionally only those whose latest run has a status ({@link list} without building them). */
  count(status?: AgentStatus): number {
    if (!status) return this.#stories.size;
    let count = 0;
    for (const story of this.#stories.values()) if (story.runs.at(-1)!.status === status) count++;
    return count;
  }

  /** Every story's agent, optionally only those with a status, in the order they were first started. */
  list(status?: AgentStatus): AgentInfo[] {
    const agents = [...this.#stories.values()].map((story) => this.#info(story));
    return status ? agents.filter((agent) => agent.status === status) : agents;
  }

  /**
   * A story's events with `seq > afterSeq`: the stored ones, then live ones, with no gap
   * and no duplicate. May be opened before the story has ever started; stays open across
   * runs until `return()` or {@link dispose}.
   * @throws InvalidStoryIdError.
   */
  events(storyId: string, afterSeq?: number): AsyncIterableIterator<AgentEvent> {
    assertValidStoryId(storyId);
    return this.#log.read(storyId, afterSeq);
  }

  /**
   * Up to `first` stored events of a story with `seq > afterSeq`, in seq order.
   * @throws InvalidStoryIdError; EventsTruncatedError when retention dropped events after `afterSeq`.
   */
  eventPage(storyId: string, afterSeq: number, first: number): AgentEvent[] {
    assertValidStoryId(storyId);
    return this.#log.page(storyId, afterSeq, first);
  }

  /** The event log (for diagnostics and tests: how many readers are open). */
  get eventLog(): EventLog {
    return this.#log;
  }

  /**
   * Every story's agent as it changes (status, run, session, cost, approvals, what it
   * waits for; and, at most once a second while its events flow, lastSeq), newest state
   * per story: a slow reader skips states already replaced, never the latest. Ends at
   * `return()` or {@link dispose}.
   */
  updates(): AsyncIterableIterator<AgentInfo> {
    const reader: AgentUpdates<AgentInfo> = new AgentUpdates(() => this.#updateReaders.delete(reader));
    if (this.#closed) void reader.return();
    else this.#updateReaders.add(reader);
    return reader;
  }

  /** The agent profiles of the configuration as it is now, `default` first. */
  profiles(): AgentProfileInfo[] {
    const config = this.#loadConfig();
    return Object.entries(config.agents).map(([name, profile]) => ({
      name,
      kind: profile.kind,
      permissionMode: profile.permission_mode,
      isDefault: name === config.pool.default_agent,
    }));
  }

  /** Calls `listener` with a story's agent whenever its status or facts change. */
  onAgentChange(listener: (agent: AgentInfo) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /**
   * Stops every agent (each recorded STOPPED, every process of it gone), ends every read of
   * git work (its git gone), ends every event reader, and takes no more starts. The server calls it on SIGINT and SIGTERM.
   */
  async dispose(): Promise<void> {
    this.#closed = true;
    const active = [...this.#stories.values()]
      .map((story) => story.runs.at(-1))
      .filter((run): run is Run => run instanceof Run && isActive(run.status));
    await Promise.all([...active.map((run) => this.#stopRun(run, 'shutdown')), this.#gitReads.close()]);
    await this.#worktrees.settled();
    for (const timer of this.#activityTimers.values()) clearTimeout(timer);
    this.#activityTimers.clear();
    for (const reader of [...this.#updateReaders]) void reader.return();
    this.#log.close();
  }

  /** `await using pool = new AgentPool(…)` disposes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /** Brings back what the store holds, ending FAILED the runs a crash left PENDING or RUNNING. */
  #restore(store: Store): void {
    for (const { storyId, agent } of store.stories()) {
      this.#stories.set(storyId, { storyId, agent: agent ?? DEFAULT_PROFILE, runs: [] });
    }
    for (const record of store.runs()) this.#stories.get(record.storyId)?.runs.push(runState(record));
    for (const story of this.#stories.values()) {
      const latest = story.runs.at(-1);
      if (!latest) {
        this.#stories.delete(story.storyId);
        continue;
      }
      if (!isActive(latest.status)) continue;
      const events = this.#log.append(story.storyId, latest.number, [
        ...this.#unansweredApprovals(latest).map((requestId) => ({
          type: 'approval_resolved' as const,
          requestId,
          allowed: false,
          reason: INTERRUPTED_RUN_ERROR,
        })),
        { type: 'status', status: 'FAILED' },
        { type: 'error', message: INTERRUPTED_RUN_ERROR },
      ]);
      latest.status = 'FAILED';
      latest.error = INTERRUPTED_RUN_ERROR;
      latest.pid = undefined;
      latest.finishedAt = new Date();
      latest.firstSeq ??= events[0]!.seq;
      latest.lastSeq = events.at(-1)!.seq;
      store.saveRun(runRecord(latest));
      this.#orphanMarkers.push(latest.marker);
      this.#logger.warn(`story ${story.storyId} run ${latest.number}: ${INTERRUPTED_RUN_ERROR}; it is now FAILED`);
    }
  }

  /** The request ids of a run's approval requests that no event answered. */
  #unansweredApprovals(run: RunState): string[] {
    const unanswered = new Set<string>();
    for (const event of this.#runEvents(run)) {
      if (event.type === 'approval_request') unanswered.add(event.requestId);
      else if (event.type === 'approval_resolved') unanswered.delete(event.requestId);
    }
    return [...unanswered];
  }

  async #endOrphans(): Promise<void> {
    const markers = this.#orphanMarkers.splice(0);
    await Promise.all(markers.map((marker) => terminateRunProcesses(marker, this.#graceMs)));
  }

  #story(storyId: string): Story {
    assertValidStoryId(storyId);
    const story = this.#stories.get(storyId);
    if (!story) throw new AgentNotFoundError(storyId);
    return story;
  }

  async #stopRun(run: Run, reason: StopReason): Promise<void> {
    const queued = this.#queue.indexOf(run);
    if (queued !== -1) this.#queue.splice(queued, 1);
    await run.stop(reason);
    const { worktree } = run.config;
    if (reason === 'stopped' && worktree.remove_on_stop && run.worktreePath) {
      await this.#worktrees.remove(run.storyId, worktree).catch((error: unknown) => {
        this.#logger.warn(`story ${run.storyId}: its worktree could not be removed after the stop`, error);
      });
    }
  }

  /** Starts queued runs, oldest first, while slots are free. */
  #drainQueue(): void {
    while (this.#holdingSlot.size < this.#maxConcurrent && this.#queue.length > 0) {
      const run = this.#queue.shift()!;
      if (run.ended) continue;
      this.#holdingSlot.add(run);
      void run.execute().finally(() => {
        this.#holdingSlot.delete(run);
        this.#drainQueue();
      });
    }
  }

  #changed(storyId: string): void {
    if (this.#changeListeners.size === 0 && this.#updateReaders.size === 0) return;
    const story = this.#stories.get(storyId);
    if (!story) return;
    const agent = this.#info(story);
    for (const listener of this.#changeListeners) listener(agent);
    for (const reader of this.#updateReaders) reader.push(agent);
  }

  /** Events were appended: update readers hear of it within ACTIVITY_UPDATE_MS, once per window. */
  #noteActivity(storyId: string): void {
    if (this.#updateReaders.size === 0 || this.#activityTimers.has(storyId)) return;
    const timer = setTimeout(() => {
      this.#activityTimers.delete(storyId);
      this.#changed(storyId);
    }, ACTIVITY_UPDATE_MS);
    timer.unref();
    this.#activityTimers.set(storyId, timer);
  }

  #info(story: Story): AgentInfo {
    const latest = story.runs.at(-1)!;
    const usage = story.runs.reduce<Usage | undefined>((sum, run) => addUsage(sum, run.usage), undefined);
    const withPlace = story.runs.findLast((run) => run.worktreePath !== undefined);
    return {
      storyId: story.storyId,
      agent: story.agent,
      status: latest.status,
      sessionId: story.runs.findLast((run) => run.sessionId !== undefined)?.sessionId,
      worktreePath: withPlace?.worktreePath,
      branch: withPlace?.branch,
      pid: latest.pid,
      exitCode: latest.exitCode,
      error: latest.error,
      costUsd: usage?.costUsd,
      usage,
      startedAt: latest.startedAt,
      finishedAt: latest.finishedAt,
      lastSeq: this.#log.lastSeq(story.storyId),
      lastEventAt: this.#log.lastEventAt(story.storyId),
      pendingApprovals: latest instanceof Run ? latest.pendingApprovals : [],
      waitingFor: latest instanceof Run ? latest.waitingFor : undefined,
      interactive: latest instanceof Run && latest.interactive,
      runs: story.runs.map((run) => ({
        number: run.number,
        agent: run.agent,
        prompt: run.prompt,
        status: run.status,
        sessionId: run.sessionId,
        exitCode: run.exitCode,
        costUsd: run.usage?.costUsd,
        usage: run.usage,
        startedAt: run.startedAt,
        finishedAt: run.finishedAt,
        firstSeq: run.firstSeq,
        lastSeq: run.lastSeq,
      })),
    };
  }
}
