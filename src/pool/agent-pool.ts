import { type AgentPoolConfig, loadConfig } from '../config/config.js';
import { type Logger, silentLogger } from '../logger.js';
import { assertValidStoryId } from '../worktree/story-id.js';
import { Worktrees } from '../worktree/worktrees.js';
import type { SpawnAgentProcess } from './agent-process.js';
import { adapterFor } from './agents/adapters.js';
import { EventLog, MemoryEventStorage } from './event-log.js';
import { type AgentEvent, type AgentStatus, isActive } from './events.js';
import { AgentAlreadyRunningError, AgentNotFoundError, PoolClosedError } from './pool-errors.js';
import { spawnPtyProcess } from './pty-process.js';
import { inheritedEnvironment, Run, type StopReason } from './run.js';

/** One run of a story, as callers see it. */
export interface RunInfo {
  number: number;
  prompt: string | undefined;
  status: AgentStatus;
  sessionId: string | undefined;
  exitCode: number | undefined;
  costUsd: number | undefined;
  startedAt: Date;
  finishedAt: Date | undefined;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
}

/** A story's agent, as callers see it: the contract's `Agent`. */
export interface AgentInfo {
  storyId: string;
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
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  /** The seq of the story's newest event, 0 if none. */
  lastSeq: number;
  runs: RunInfo[];
}

/** What an {@link AgentPool} is built from; everything but the project has a default. */
export interface AgentPoolOptions {
  /** The top level of the project's main work tree. */
  projectRoot: string;
  /** Reads the configuration; called at each start. Default: `agent-pool.toml` at the root. */
  loadConfig?: () => AgentPoolConfig;
  /** Starts agent processes. Default: node-pty through the run helper. */
  spawn?: SpawnAgentProcess;
  /** The event log. Default: in memory, keeping `[store] max_events_per_story` per story. */
  eventLog?: EventLog;
  logger?: Logger;
  /** The environment agents inherit (agent-pool's own secrets are removed). Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
}

interface Story {
  readonly storyId: string;
  readonly runs: Run[];
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
  readonly #baseEnv: Record<string, string>;
  readonly #stories = new Map<string, Story>();
  readonly #queue: Run[] = [];
  readonly #holdingSlot = new Set<Run>();
  readonly #changeListeners = new Set<(agent: AgentInfo) => void>();
  #maxConcurrent: number;
  #closed = false;

  constructor(options: AgentPoolOptions) {
    this.projectRoot = options.projectRoot;
    this.#loadConfig = options.loadConfig ?? (() => loadConfig(options.projectRoot));
    const config = this.#loadConfig();
    this.#maxConcurrent = config.pool.max_concurrent;
    this.#spawn = options.spawn ?? spawnPtyProcess;
    this.#log = options.eventLog ?? new EventLog(new MemoryEventStorage(config.store.max_events_per_story));
    this.#logger = options.logger ?? silentLogger;
    this.#worktrees = new Worktrees(options.projectRoot);
    this.#baseEnv = inheritedEnvironment(options.env ?? process.env);
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
  start(storyId: string, prompt?: string): AgentInfo {
    if (this.#closed) throw new PoolClosedError();
    assertValidStoryId(storyId);
    const story = this.#stories.get(storyId);
    const latest = story?.runs.at(-1);
    if (latest && isActive(latest.status)) throw new AgentAlreadyRunningError(storyId, latest.status);
    const config = this.#loadConfig();

    const entry = story ?? { storyId, runs: [] };
    this.#stories.set(storyId, entry);
    const run = new Run(storyId, entry.runs.length + 1, prompt, {
      projectRoot: this.projectRoot,
      config,
      adapter: adapterFor(config.agent.format),
      worktrees: this.#worktrees,
      spawn: this.#spawn,
      log: this.#log,
      logger: this.#logger,
      baseEnv: this.#baseEnv,
      onChange: () => this.#changed(storyId),
    });
    entry.runs.push(run);
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
    const run = story.runs.at(-1)!;
    if (!isActive(run.status)) return this.#info(story);
    await this.#stopRun(run, 'stopped');
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

  /** Up to `first` stored events of a story with `seq > afterSeq`, in seq order. */
  eventPage(storyId: string, afterSeq: number, first: number): AgentEvent[] {
    assertValidStoryId(storyId);
    return this.#log.page(storyId, afterSeq, first);
  }

  /** The event log (for diagnostics and tests: how many readers are open). */
  get eventLog(): EventLog {
    return this.#log;
  }

  /** Calls `listener` with a story's agent whenever its status or facts change. */
  onAgentChange(listener: (agent: AgentInfo) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /**
   * Stops every agent (each recorded STOPPED, every process of it gone), ends every event
   * reader, and takes no more starts. The server calls it on SIGINT and SIGTERM.
   */
  async dispose(): Promise<void> {
    this.#closed = true;
    const active = [...this.#stories.values()]
      .map((story) => story.runs.at(-1)!)
      .filter((run) => isActive(run.status));
    await Promise.all(active.map((run) => this.#stopRun(run, 'shutdown')));
    await this.#worktrees.settled();
    this.#log.close();
  }

  /** `await using pool = new AgentPool(…)` disposes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
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
    if (this.#changeListeners.size === 0) return;
    const story = this.#stories.get(storyId);
    if (!story) return;
    const agent = this.#info(story);
    for (const listener of this.#changeListeners) listener(agent);
  }

  #info(story: Story): AgentInfo {
    const latest = story.runs.at(-1)!;
    const costs = story.runs.map((run) => run.costUsd).filter((cost): cost is number => cost !== undefined);
    const withPlace = story.runs.findLast((run) => run.worktreePath !== undefined);
    return {
      storyId: story.storyId,
      status: latest.status,
      sessionId: story.runs.findLast((run) => run.sessionId !== undefined)?.sessionId,
      worktreePath: withPlace?.worktreePath,
      branch: withPlace?.branch,
      pid: latest.pid,
      exitCode: latest.exitCode,
      error: latest.error,
      costUsd: costs.length === 0 ? undefined : costs.reduce((sum, cost) => sum + cost, 0),
      startedAt: latest.startedAt,
      finishedAt: latest.finishedAt,
      lastSeq: this.#log.lastSeq(story.storyId),
      runs: story.runs.map((run) => ({
        number: run.number,
        prompt: run.prompt,
        status: run.status,
        sessionId: run.sessionId,
        exitCode: run.exitCode,
        costUsd: run.costUsd,
        startedAt: run.startedAt,
        finishedAt: run.finishedAt,
        firstSeq: run.firstSeq,
        lastSeq: run.lastSeq,
      })),
    };
  }
}
