import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type AgentKind, type AgentPoolConfig, type AgentProfile, loadConfig, type PermissionMode } from '../config/config.js';
import { portPlaceholders } from '../config/placeholders.js';
import { secretVariables } from '../config/secret-variables.js';
import { type Logger, silentLogger } from '../logger.js';
import { isPlainObject } from '../plain-object.js';
import { StoryNotifications } from '../notify/story-notifications.js';
import { WebhookSender } from '../notify/webhook-sender.js';
import { lostRunnerError } from '../store/cluster-store.js';
import { RunTakenError } from '../store/rows.js';
import { type DeliveryRecord, type DeliveryStatus, newLanding, type StateStore } from '../store/state-store.js';
import type { CommitInfo } from '../worktree/git-output.js';
import { type GitReadLimits, GitReads } from '../worktree/git-reads.js';
import { readChanges, readCommits, readDiff, type StoryWork, type WorktreeChanges } from '../worktree/story-changes.js';
import { type LandingStatus, type LandingWork, landingStatus } from '../worktree/landing.js';
import { fetchBranch, pushBranch } from '../worktree/push.js';
import { assertValidStoryId } from '../worktree/story-id.js';
import { type StoryWorktree, Worktrees } from '../worktree/worktrees.js';
import { inheritedEnvironment, type ServerSecrets, withoutVariables } from './agent-environment.js';
import type { SpawnAgentProcess } from './agent-process.js';
import { adapterFor } from './agents/adapters.js';
import type { ApprovalAnswer } from './control-session.js';
import { EventLog, type EventStorage, MemoryEventStorage, type ObservedBounds } from './event-log.js';
import { addUsage, type AgentEvent, type AgentStatus, isActive, type Usage } from './events.js';
import type { McpAccess } from './mcp-access.js';
import { PoolUpdates } from './pool-updates.js';
import {
  AgentAlreadyRunningError,
  AgentNotFoundError,
  AgentNotRunningError,
  ApprovalAlreadyAnsweredError,
  ApprovalNotFoundError,
  InvalidArgumentError,
  NoSessionToResumeError,
  PoolClosedError,
  NoFreePortError,
  UnknownAgentError,
  UnknownServiceError,
} from './pool-errors.js';
import { spawnPtyProcess } from './pty-process.js';
import { endOrphans, recoverStories, runEvents } from './recovery.js';
import { pendingRunState, Run, type RunState } from './run.js';
import { RunQueue } from './run-queue.js';
import type { EndReason } from './run-supervisor.js';
import { type AgentInfo, agentInfo, type LiveState, Stories, type Story } from './stories.js';
import { StoredEventStorage } from './stored-event-storage.js';
import { type MergeOptions, type PullRequestOptions, StoryLandings } from './story-landing.js';
import { noWorktreeError, type ServiceInfo, StoryServices } from './story-services.js';

/**
 * The most bytes one sendInput writes to an agent's terminal.
 * @default 64 KiB
 */
export const MAX_INPUT_BYTES = 64 * 1024;

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
  store?: StateStore;
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
  /**
   * This server's name in a cluster (`--runner-name`), recorded with every run it starts:
   * at a restart it ends only its own runs that the store shows running.
   */
  runner?: string;
  /**
   * The runs waiting in the cluster's queue (`storyId:number`), PENDING without being run by
   * anyone: recovery leaves them be.
   */
  queuedRuns?: ReadonlySet<string>;
  /**
   * The cluster declared this server lost while it was away (its runs were ended there): what
   * processes of those runs survived it are ended at the start.
   */
  wasLost?: boolean;
  /**
   * In a cluster, whether this server is to send a webhook delivery now (another may hold
   * it): asked before each attempt, from the first one at the start.
   */
  claimDelivery?: (delivery: DeliveryRecord, attemptMs: number) => Promise<boolean>;
}

/**
 * Where a cluster's runs wait for a runner (see src/cluster): a start anywhere is queued
 * there, and a runner with a free slot claims it ({@link AgentPool.runClaimed}).
 */
export interface RunDispatch {
  /** Queues a run whose record (PENDING, without a runner) and first event are stored. */
  enqueue(run: RunState, resumeSessionId: string | undefined, affinity: string | undefined): Promise<void>;
}

/** A queued run this server claimed, to run here. */
export interface ClaimedRunInfo {
  storyId: string;
  number: number;
  resumeSessionId: string | undefined;
}

/** What a read of a story's git work may be given. */
export interface GitReadOptions {
  /** The asking client's: aborted when it leaves, which ends the read and its git. */
  signal?: AbortSignal;
}

/** The story's run that is PENDING or RUNNING, if one is. */
function activeRun(story: Story): Run | undefined {
  const run = story.current;
  return run && !run.ended ? run : undefined;
}

/**
 * The agents of one project: it starts a story's agent in its worktree, queues starts
 * beyond `max_concurrent`, stops runs with every process they started, and keeps each
 * story's event log. It knows nothing of GraphQL. Its parts: {@link Stories} (the
 * registry), {@link RunQueue} (slots), {@link Run} (one run, with its supervisor),
 * {@link PoolUpdates} (who hears of changes), recovery (what a crash left).
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
  readonly #stories: Stories;
  readonly #queue: RunQueue;
  readonly #updates: PoolUpdates;
  readonly #store: StateStore | undefined;
  readonly #storage: EventStorage;
  /** Writes to the store on their way (SQLite's are done at once), so that dispose can wait for them. */
  readonly #writes = new Set<Promise<void>>();
  readonly #graceMs: number;
  readonly #landings: StoryLandings;
  /** Which changes of stories are worth a webhook delivery. */
  readonly #notifications = new StoryNotifications();
  /** Sends the outbox; only over a store, which holds it. */
  readonly #sender: WebhookSender | undefined;
  readonly #env: NodeJS.ProcessEnv;
  /** Every story's services (`[services.NAME]`): their ports and processes. */
  readonly #services: StoryServices;
  /** The configuration as last read without an error. */
  #config: AgentPoolConfig;
  /** The error agent-pool.toml was last read with, logged once. */
  #configProblem: string | undefined;
  /** What the server offers runs with `mcp = true`. */
  #mcp: McpAccess | undefined;
  /** This server's name in a cluster. */
  readonly #runner: string | undefined;
  /** The cluster's queue, when starts wait there for a runner rather than run here. */
  #dispatch: RunDispatch | undefined;
  /** Starts on their way to the queue, by story (their record and first event are being stored first). */
  readonly #queueing = new Map<string, Promise<void>>();
  /** Runs this server ended because the cluster has (or may have) ended them: their work is not shared. */
  readonly #abandoned = new WeakSet<Run>();
  /** Stories being taken up from the remote here (see adoptStory). */
  readonly #adopting = new Map<string, Promise<void>>();
  /** Stories whose run this server is giving up to another's (see #gaveWay). */
  readonly #givingWay = new Set<string>();
  #closed = false;

  /**
   * Builds a pool that keeps everything in memory. A pool over a store is made by
   * {@link AgentPool.open}, which reads the store back first.
   */
  constructor(options: AgentPoolOptions) {
    if (options.store && !AgentPool.#opening) throw new Error('a pool over a store is made with AgentPool.open, which reads the store back');
    this.projectRoot = options.projectRoot;
    this.#loadConfig = options.loadConfig ?? (() => loadConfig(options.projectRoot));
    const config = this.#loadConfig();
    this.#graceMs = config.pool.stop_grace_seconds * 1000;
    this.#config = config;
    this.#env = options.env ?? process.env;
    this.#spawn = options.spawn ?? spawnPtyProcess;
    this.#store = options.store;
    this.#runner = options.runner;
    this.#logger = options.logger ?? silentLogger;
    const maxEvents = config.store.max_events_per_story;
    this.#storage = options.store ? new StoredEventStorage(options.store, maxEvents) : new MemoryEventStorage(maxEvents);
    this.#log = new EventLog(this.#storage);
    this.#worktrees = new Worktrees(options.projectRoot);
    this.#gitReads = new GitReads(options.gitReads);
    this.#baseEnv = inheritedEnvironment(options.env ?? process.env, options.secrets);
    this.#stories = new Stories();
    this.#queue = new RunQueue(config.pool.max_concurrent, this.#logger);
    this.#updates = new PoolUpdates((storyId) => {
      const story = this.#stories.get(storyId);
      return story && agentInfo(story, this.#log);
    });
    this.#log.onAppend((storyId) => this.#updates.eventsFlowed(storyId));
    this.#landings = new StoryLandings({
      projectRoot: options.projectRoot,
      worktrees: this.#worktrees,
      loadConfig: this.#loadConfig,
      env: options.env ?? process.env,
      logger: this.#logger,
      saveLanding: (story) => this.#saveLanding(story),
      pushEnv: (config) => withoutVariables(this.#baseEnv, secretVariables(config)),
      // In a cluster, the target of a landing is the remote's (no user's checkout to land into).
      targetOnRemote: () => this.#dispatch !== undefined,
      // Its services run in the worktree that goes; archived, it gives their ports back.
      beforeWorktreeRemoval: (storyId) => this.#services.close(storyId, { release: true }),
      activeStoryOn: (branch) => {
        for (const story of this.#stories.values()) {
          const run = activeRun(story);
          if (run && (run.state.branch ?? this.#worktrees.branchOf(story.storyId, run.config.worktree)) === branch) return story.storyId;
        }
        return undefined;
      },
    });
    this.#services = new StoryServices({
      logger: this.#logger,
      save: (record) => this.#persist(`story ${record.storyId} service ${record.name}`, (store) => store.saveService(record)),
      forget: (storyId) => this.#persist(`story ${storyId} services`, (store) => store.deleteServices(storyId)),
      changed: (storyId) => this.#updates.changed(storyId),
    });
    this.#sender = options.store && new WebhookSender({ store: options.store, config: () => this.#configNow().notify, env: this.#env, logger: this.#logger });
    // Events the store refused are lost: the run that wrote them ends FAILED, saying why.
    this.#log.onError((storyId, error) => {
      if (error instanceof RunTakenError) return this.#gaveWay(error);
      this.#logger.error(`story ${storyId}: events could not be stored`, error);
      this.#stories.get(storyId)?.current?.recordingFailed(error);
    });
  }

  static #opening = false;

  /**
   * Builds a pool, over a store if one is given: the stories, runs and events it holds come back; runs it
   * shows as PENDING or RUNNING (the server died under them) are ended FAILED, and every
   * process of theirs that survived is ended (found by its run's marker, so a reused pid is
   * never touched).
   */
  static async open(options: AgentPoolOptions): Promise<AgentPool> {
    AgentPool.#opening = true;
    let pool: AgentPool;
    try {
      pool = new AgentPool(options);
    } finally {
      AgentPool.#opening = false;
    }
    const { store } = options;
    if (!store) return pool;
    await (pool.#storage as StoredEventStorage).load((await store.stories()).map((story) => story.storyId));
    // A run the previous server left running ends FAILED here: that is reported as any end is.
    const recovered = await recoverStories(
      store,
      pool.#log,
      pool.#logger,
      (story) => pool.#notifications.deliveries(agentInfo(story, pool.#log), pool.#config.notify, pool.#env),
      options.runner,
      options.queuedRuns,
    );
    for (const story of recovered.stories) pool.#stories.restore(story);
    // Services a crash left running are ended as its runs are; in a cluster, only those of
    // the stories this server ran last (the others run in another server's worktrees).
    const ranHere = (storyId: string): boolean => {
      const runner = pool.runnerOf(storyId);
      return options.runner === undefined || runner === undefined || runner === options.runner;
    };
    const orphanServices = pool.#services.restore((await store.services()).filter((service) => ranHere(service.storyId)));
    // Runs the others ended when they declared this server lost: what of them survived it ends too.
    const lostRuns =
      options.wasLost && options.runner !== undefined
        ? recovered.stories.flatMap((story) =>
            story.runs.filter((run) => run.runner === options.runner && run.error === lostRunnerError(options.runner!) && isRecent(run.finishedAt)).map((run) => run.marker),
          )
        : [];
    await endOrphans([...recovered.orphanMarkers, ...orphanServices, ...lostRuns], pool.#graceMs);
    if (options.claimDelivery) pool.#sender!.claimWith(options.claimDelivery);
    await pool.#sender!.start();
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
   * @param agent the agent profile; the story's own, else `[pool] default_agent`, when omitted.
   * @param title the story's title from now on (empty: none); the story's own when omitted.
   * @throws InvalidStoryIdError, InvalidArgumentError (a title that is not one line of
   *   visible text, a prompt with a NUL), AgentAlreadyRunningError, UnknownAgentError,
   *   ConfigError (nothing changes).
   */
  start(storyId: string, prompt?: string, agent?: string, title?: string, options: { startedBy?: string } = {}): AgentInfo {
    return this.#startRun(storyId, prompt, { agent, title, startedBy: options.startedBy });
  }

  /**
   * Whether git has a worktree or branch for a story the pool has no record of (a person's
   * branch named like a story's): a start would take that work up as the story's.
   * @throws InvalidStoryIdError, ConfigError.
   */
  async hasUnrecordedWork(storyId: string): Promise<boolean> {
    assertValidStoryId(storyId);
    if (this.#stories.get(storyId)) return false;
    return this.#worktrees.hasWork(storyId, this.#loadConfig().worktree);
  }

  /** The prefix of every story's branch (`[worktree] branch_prefix`), as configured now. */
  get branchPrefix(): string {
    return this.#configNow().worktree.branch_prefix;
  }

  /**
   * The server's MCP endpoint, once it listens: runs of profiles with `mcp = true` get it,
   * with a token scoped to their story. Without it such a run ends FAILED, saying why.
   */
  offerMcp(access: McpAccess): void {
    this.#mcp = access;
  }

  /**
   * From now on every start is queued in the cluster's `dispatch` (its record and first
   * event stored, without a runner), for a runner to claim; none runs here unless claimed.
   */
  queueRunsIn(dispatch: RunDispatch): void {
    this.#dispatch = dispatch;
  }

  /**
   * In a cluster, makes readable and landable here a story whose runner is lost: its branch
   * is fetched from the remote (where its runs pushed their work) and its base worked out.
   * @throws AgentNotFoundError; InvalidArgumentError when its work was never pushed; PushFailedError.
   */
  adoptStory(storyId: string): Promise<void> {
    // One at a time per story: the reads of one query ask together.
    const adopting = this.#adopting.get(storyId) ?? this.#adopt(storyId).finally(() => this.#adopting.delete(storyId));
    this.#adopting.set(storyId, adopting);
    return adopting;
  }

  async #adopt(storyId: string): Promise<void> {
    const story = this.#story(storyId);
    const config = this.#configNow();
    const branch = story.runs.findLast((run) => run.branch !== undefined)?.branch ?? this.#worktrees.branchOf(storyId, config.worktree);
    if (story.landing.pushedCommit === undefined) {
      throw new InvalidArgumentError(`story ${storyId}'s work was never pushed from the runner that ran it, which is gone: it can be read there only (start the story again to go on from its base)`);
    }
    // A run of it here has the story's worktree: nothing to take up.
    if (activeRun(story)) return;
    const worktreePath = this.#worktrees.pathOf(storyId, config.worktree);
    const fetched = await fetchBranch(this.projectRoot, {
      storyId,
      remote: config.forge.remote,
      branch,
      worktreePath: existsSync(worktreePath) ? worktreePath : undefined,
      env: withoutVariables(this.#baseEnv, secretVariables(config)),
    });
    if (fetched === undefined) {
      throw new InvalidArgumentError(`story ${storyId}'s branch ${branch} is not on ${config.forge.remote} (deleted there?), and the runner that had it is gone: there is no work of it to read`);
    }
    await this.#worktrees.adoptBranch(storyId, branch, config.worktree.base);
  }

  /** How many more runs this server may execute now (`[pool] max_concurrent` less those it runs). */
  freeSlots(): number {
    if (this.#closed) return 0;
    let active = 0;
    for (const story of this.#stories.values()) if (activeRun(story)) active++;
    return Math.max(this.#configNow().pool.max_concurrent - active, 0);
  }

  /**
   * Runs here a run that another server queued and this one claimed: the story is read back
   * first (see {@link reloadStory}), and its events observed, by the caller. The run keeps
   * its number, its start time and its first event; from here it goes as any run of this
   * server does (a failure to make its worktree or spawn ends it FAILED).
   * @throws AgentNotFoundError, AgentNotRunningError (it is no longer the story's PENDING
   *   latest run), UnknownAgentError, NoFreePortError, PoolClosedError, ConfigError: the
   *   caller ends the run with the error.
   */
  runClaimed(claim: ClaimedRunInfo): AgentInfo {
    if (this.#closed) throw new PoolClosedError();
    const story = this.#story(claim.storyId);
    const queued = story.runs.at(-1)!;
    if (queued.number !== claim.number || queued.status !== 'PENDING' || queued.runner !== this.#runner || story.current) {
      throw new AgentNotRunningError(claim.storyId, queued.status, `its run ${claim.number} is no longer the one that waits`);
    }
    const config = this.#loadConfig();
    const profile = config.agents[queued.agent];
    if (!profile) throw new UnknownAgentError(queued.agent, Object.keys(config.agents));
    const { ports, missing } = this.#services.assignPorts(claim.storyId, config);
    const needed = missing.find((name) => namesPort(profile, config.worktree.setup, name));
    if (needed !== undefined) throw new NoFreePortError(claim.storyId, needed, config.services.ports);
    const sessionUsage =
      claim.resumeSessionId === undefined
        ? undefined
        : story.runs.filter((run) => run.sessionId === claim.resumeSessionId).reduce<Usage | undefined>((sum, run) => addUsage(sum, run.usage), undefined);
    const run = this.#newRun(claim.storyId, claim.number, { agent: queued.agent, prompt: queued.prompt, resumeSessionId: claim.resumeSessionId, queued }, {
      config,
      profile,
      ports,
      sessionUsage,
    });
    story.runs[story.runs.length - 1] = run.state;
    story.current = run;
    story.remote = undefined;
    this.#persist(`story ${claim.storyId} run ${claim.number}`, (store) => store.saveRun(run.state));
    this.#updates.changed(claim.storyId);
    this.#queue.limit = config.pool.max_concurrent;
    this.#queue.add(run);
    return agentInfo(story, this.#log);
  }

  /**
   * Starts a follow-up run of a finished story that resumes the agent's own session: the
   * session id of the latest run that reported one (never "the latest session in the
   * folder"), in the same worktree, with the story's configuration.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentAlreadyRunningError,
   *   NoSessionToResumeError, InvalidArgumentError (a prompt with a NUL), ConfigError.
   */
  continue(storyId: string, prompt: string): AgentInfo {
    const story = this.#story(storyId);
    const latest = story.runs.at(-1)!;
    if (isActive(latest.status)) throw new AgentAlreadyRunningError(storyId, latest.status);
    const resumed = story.runs.findLast((run) => run.sessionId !== undefined);
    if (resumed?.sessionId === undefined) throw new NoSessionToResumeError(storyId);
    // An ACP agent said, when its run began, whether it can take a session back.
    if (story.current?.state.number === resumed.number && story.current.agentResumes === false) {
      throw new NoSessionToResumeError(storyId, `its agent, over ACP, offers neither session/resume nor session/load`);
    }
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
    const run = this.#requireActive(storyId);
    if (run.interactive) {
      throw new InvalidArgumentError(
        `story ${storyId} talks to its agent through a control channel on stdin, where typed bytes would end the agent: use sendMessage (a new turn), respondToApproval or interruptAgent`,
      );
    }
    run.writeTerminal(data);
  }

  /**
   * Answers one of the approval requests of a story's running agent, once.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotInteractiveError,
   *   ApprovalNotFoundError, ApprovalAlreadyAnsweredError, InvalidArgumentError.
   */
  async respondToApproval(storyId: string, requestId: string, answer: ApprovalAnswer): Promise<AgentInfo> {
    const story = this.#story(storyId);
    if ((answer.allow === undefined) === (answer.optionId === undefined)) {
      throw new InvalidArgumentError('give exactly one of allow and optionId: allow: true or false, or the id of one of Approval.options');
    }
    if (answer.optionId !== undefined && answer.remember !== undefined) {
      throw new InvalidArgumentError('remember goes with allow: true; with optionId, choose the option that allows always');
    }
    if (answer.updatedInput !== undefined && !isPlainObject(answer.updatedInput)) {
      throw new InvalidArgumentError(
        `updatedInput must be a JSON object, the tool's whole input (as the request's input), got ${JSON.stringify(answer.updatedInput)}`,
      );
    }
    if (answer.allow === false && (answer.updatedInput !== undefined || answer.remember)) {
      throw new InvalidArgumentError('updatedInput and remember go with allow: true; a denial takes only a message');
    }
    // The latest run, if this server started it, knows its approvals, ended or not; a run of
    // an earlier server is read from its events.
    if (story.current) story.current.answerApproval(requestId, answer);
    else if ((await this.#answeredApprovals(story.runs.at(-1)!)).has(requestId)) throw new ApprovalAlreadyAnsweredError(storyId, requestId);
    else throw new ApprovalNotFoundError(storyId, requestId);
    return agentInfo(story, this.#log);
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
    const run = activeRun(story);
    if (!run) throw new AgentNotRunningError(storyId, story.runs.at(-1)!.status, 'use continueAgent to resume its session in a new run');
    run.sendMessage(text);
    return agentInfo(story, this.#log);
  }

  /**
   * Interrupts the running turn of a story's agent; the session stays, and the agent
   * waits for the next message (or, with nothing to wait for, the run ends STOPPED).
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentNotRunningError, AgentNotInteractiveError.
   */
  interrupt(storyId: string): AgentInfo {
    const story = this.#story(storyId);
    // The run says which comes first: no control channel, or not running.
    const run = story.current;
    if (!run) throw new AgentNotRunningError(storyId, story.runs.at(-1)!.status);
    run.interrupt();
    return agentInfo(story, this.#log);
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
    this.#requireActive(storyId).resize(cols, rows);
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

  /**
   * Stops a story's current run (queued or running) and returns once every process of it
   * is gone; the run ends STOPPED. A story that is not running is returned unchanged.
   * With `[worktree] remove_on_stop`, the worktree is removed (its work saved first)
   * before the run is recorded STOPPED, so that a start that follows gets a new one.
   * @throws InvalidStoryIdError, AgentNotFoundError.
   */
  async stop(storyId: string): Promise<AgentInfo> {
    const story = this.#story(storyId);
    const run = activeRun(story);
    if (run) {
      this.#logger.info(`story ${storyId} run ${run.state.number}: stop requested (${run.state.status})`);
      await this.#stopRun(run, { kind: 'stopped' });
    }
    return agentInfo(story, this.#log);
  }

  /**
   * A story's agent, or undefined when it was never started.
   * @throws InvalidStoryIdError.
   */
  get(storyId: string): AgentInfo | undefined {
    assertValidStoryId(storyId);
    const story = this.#stories.get(storyId);
    return story && agentInfo(story, this.#log);
  }

  /** How many stories {@link list} would return, without building them. */
  count(status?: AgentStatus, includeArchived = false): number {
    let count = 0;
    for (const story of this.#stories.values()) if (listed(story, status, includeArchived)) count++;
    return count;
  }

  /**
   * Every story's agent in the order they were first started, optionally only those with a
   * status; archived stories only with `includeArchived`.
   */
  list(status?: AgentStatus, includeArchived = false): AgentInfo[] {
    return [...this.#stories.values()].filter((story) => listed(story, status, includeArchived)).map((story) => agentInfo(story, this.#log));
  }

  /**
   * How a story stands against its target branch: commits ahead (since its work last
   * landed), commits behind, and the files a merge of its whole work would conflict in.
   * Read as {@link changes} is; zeros without a target.
   * @throws InvalidStoryIdError, AgentNotFoundError, GitReadError.
   */
  async landingStatus(storyId: string, options: GitReadOptions = {}): Promise<LandingStatus> {
    const story = this.#story(storyId);
    const work = await this.#landingWork(story);
    const target = story.landing.baseBranch;
    if (!work || target === undefined) return { aheadBy: 0, behindBy: 0, conflicts: [] };
    return this.#gitReads.run(options.signal, (signal) => landingStatus(this.projectRoot, work, target, { signal }));
  }

  /**
   * Lands a story's work on its target branch (or `into`): SQUASH, MERGE or REBASE. A
   * refusal changes nothing.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentAlreadyRunningError,
   *   InvalidArgumentError, NoTargetBranchError, MergeConflictError, TargetDirtyError,
   *   NothingToMergeError, LandingRaceError.
   */
  async merge(storyId: string, options: MergeOptions): Promise<AgentInfo> {
    const story = this.#story(storyId);
    await this.#landings.merge(story, () => this.#landingWork(story), options);
    return agentInfo(story, this.#log);
  }

  /**
   * Rebases a story's branch onto its target in its worktree; a conflict changes nothing.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentAlreadyRunningError,
   *   NoTargetBranchError, MergeConflictError, InvalidArgumentError (no worktree).
   */
  async rebase(storyId: string): Promise<AgentInfo> {
    const story = this.#story(storyId);
    await this.#landings.rebase(story, () => this.#landingWork(story));
    return agentInfo(story, this.#log);
  }

  /**
   * Pushes a story's branch with a lease and opens its pull request on the configured
   * forge, or updates and re-reads the one it has.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentAlreadyRunningError,
   *   ForgeNotConfiguredError, NoTargetBranchError, PushFailedError, ForgeError.
   */
  async createPullRequest(storyId: string, options: PullRequestOptions): Promise<AgentInfo> {
    const story = this.#story(storyId);
    if (options.title !== undefined) options = { ...options, title: validTitle(options.title) || undefined };
    await this.#landings.createPullRequest(story, () => this.#landingWork(story), options);
    return agentInfo(story, this.#log);
  }

  /**
   * Archives a story: its worktree is removed (uncommitted work committed first), its
   * branch and history stay; with `deleteBranch`, the branch goes too when it is merged.
   * `start` brings it back.
   * @throws InvalidStoryIdError, AgentNotFoundError, AgentAlreadyRunningError, BranchNotMergedError.
   */
  async archive(storyId: string, deleteBranch = false): Promise<AgentInfo> {
    const story = this.#story(storyId);
    const agent = agentInfo(story, this.#log);
    await this.#landings.archive(story, deleteBranch, agent.branch, agent.worktreePath);
    return agentInfo(story, this.#log);
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
  eventPage(storyId: string, afterSeq: number, first: number): Promise<AgentEvent[]> {
    assertValidStoryId(storyId);
    return this.#log.page(storyId, afterSeq, first);
  }

  /** A page of a story's stored events backwards: see {@link EventLog.pageBefore}. */
  eventPageBefore(storyId: string, before: number | undefined, last: number): Promise<AgentEvent[]> {
    assertValidStoryId(storyId);
    return this.#log.pageBefore(storyId, before, last);
  }

  /** The oldest kept event's seq of a story, 0 when it has none. */
  firstSeq(storyId: string): number {
    const { firstSeq, lastSeq } = this.#log.bounds(storyId);
    return firstSeq <= lastSeq ? firstSeq : 0;
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
    return this.#updates.reader();
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

  /**
   * A story's configured services (`[services.NAME]`), in the file's order, each with its
   * port (given when first listed, and kept), status, pid and output.
   * @throws InvalidStoryIdError, AgentNotFoundError, NoFreePortError.
   */
  services(storyId: string): ServiceInfo[] {
    const story = this.#story(storyId);
    return this.#services.list(storyId, this.#configNow(), story.landing.archived);
  }

  /**
   * Starts a story's service in its worktree (unless it runs): STARTING at once (FAILED
   * when its port is in use), READY once it answers.
   * @throws InvalidStoryIdError, AgentNotFoundError, UnknownServiceError, NoFreePortError,
   *   InvalidArgumentError (no worktree), PoolClosedError, ConfigError.
   */
  async startService(storyId: string, name: string): Promise<AgentInfo> {
    if (this.#closed) throw new PoolClosedError();
    const story = this.#story(storyId);
    const config = this.#loadConfig();
    if (!Object.hasOwn(config.services.defined, name)) throw new UnknownServiceError(name, Object.keys(config.services.defined));
    const agent = agentInfo(story, this.#log);
    if (agent.worktreePath === undefined || agent.branch === undefined || !existsSync(agent.worktreePath)) throw noWorktreeError(storyId);
    await this.#services.start(storyId, name, {
      config,
      worktreePath: agent.worktreePath,
      branch: agent.branch,
      projectRoot: this.projectRoot,
      baseEnv: withoutVariables(this.#baseEnv, secretVariables(config)),
    });
    return agentInfo(story, this.#log);
  }

  /**
   * Stops a story's service and returns once every process of it is gone.
   * @throws InvalidStoryIdError, AgentNotFoundError, UnknownServiceError.
   */
  async stopService(storyId: string, name: string): Promise<AgentInfo> {
    const story = this.#story(storyId);
    await this.#services.stop(storyId, name, this.#configNow());
    return agentInfo(story, this.#log);
  }

  /**
   * A service's output as it comes: its newest `last` lines, then each new one, until
   * `return()` or {@link dispose}.
   * @throws InvalidStoryIdError, AgentNotFoundError, UnknownServiceError.
   */
  serviceOutput(storyId: string, name: string, last: number): AsyncIterableIterator<string> {
    this.#story(storyId);
    return this.#services.outputReader(storyId, name, last, this.#configNow());
  }

  /**
   * The newest webhook deliveries (only those with `status`, when given), newest first: up
   * to `first`, clamped to 0 to 1000. None without a store.
   */
  async webhookDeliveries(first: number, status?: DeliveryStatus): Promise<DeliveryRecord[]> {
    const limit = Math.min(Math.max(Math.trunc(first), 0), 1000);
    if (!this.#store || limit === 0) return [];
    return this.#store.deliveries(limit, status);
  }

  /** Webhook deliveries queued to be sent (for tests and diagnostics). */
  get pendingDeliveries(): number {
    return this.#sender?.pending ?? 0;
  }

  /** Calls `listener` with a story's agent whenever its status or facts change. */
  onAgentChange(listener: (agent: AgentInfo) => void): () => void {
    return this.#updates.listen(listener);
  }

  /**
   * The server that runs (or last ran) a story, in a cluster: where its run and worktree
   * are (a run waiting in the queue has none yet: the one before it says where the
   * worktree is). Undefined for a story this pool does not know, or runs without a name.
   */
  runnerOf(storyId: string): string | undefined {
    return this.#stories.get(storyId)?.runs.findLast((run) => run.runner !== undefined)?.runner;
  }

  /** Settles once a start of the story made here is stored and in the cluster's queue (or failed to get there). */
  async inQueue(storyId: string): Promise<void> {
    await this.#queueing.get(storyId);
  }

  /** Whether a story's latest run waits in the cluster's queue: PENDING, and no runner has claimed it. */
  isQueued(storyId: string): { number: number } | undefined {
    const latest = this.#stories.get(storyId)?.runs.at(-1);
    return latest && latest.status === 'PENDING' && latest.runner === undefined && this.#dispatch ? { number: latest.number } : undefined;
  }

  /** This server's name in a cluster. */
  get runner(): string | undefined {
    return this.#runner;
  }

  /** What a story's running agent waits for, as this server knows it (told to the others in a cluster). */
  liveState(storyId: string): LiveState | undefined {
    const story = this.#stories.get(storyId);
    if (!story) return undefined;
    const { pendingApprovals, waitingFor, interactive } = agentInfo(story, this.#log);
    return { pendingApprovals, waitingFor, interactive };
  }

  /**
   * Reads a story again from the store, as another server of the cluster left it (its runs,
   * title, landing), with what that server says of it live; everyone hears of the change. A
   * run of this server stays the live one while it is the story's latest.
   */
  async reloadStory(storyId: string, live?: LiveState): Promise<void> {
    const stored = await this.#store?.story(storyId);
    if (!stored || stored.runs.length === 0) return;
    const known = this.#stories.get(storyId);
    const latest = stored.runs.at(-1)!;
    const current = known?.current?.state.number === latest.number && latest.runner === this.#runner ? known.current : undefined;
    const runs = stored.runs.map((record) =>
      current && record.number === latest.number ? current.state : { ...record, status: record.status as AgentStatus },
    );
    const { story: record } = stored;
    const story: Story = {
      storyId,
      agent: record.agent ?? known?.agent ?? this.#config.pool.default_agent,
      title: record.title,
      startedBy: record.startedBy,
      landing: record.landing,
      runs,
      current,
      // What a run waits for is gone with its end, whatever a late or lost bell said.
      remote: current || !isActive(latest.status as AgentStatus) ? undefined : (live ?? known?.remote),
    };
    if (known) Object.assign(known, story);
    else this.#stories.restore(story);
    this.#updates.changed(storyId);
  }

  /**
   * Ends every run of this server FAILED with `reason`, every process of it gone: the
   * cluster declared this server lost (or it could not say it is alive), and the others end
   * its runs. Writes the store refuses are read back as the others left them.
   */
  async abandonRuns(reason: string): Promise<void> {
    const active = [...this.#stories.values()].map(activeRun).filter((run) => run !== undefined);
    for (const run of active) this.#abandoned.add(run);
    await Promise.all(active.map((run) => this.#stopRun(run, { kind: 'failed', reason })));
    await this.#log.settled();
    await this.writesSettled();
  }

  /**
   * Another server of the cluster ended a story's latest run in the store (its runner was
   * lost): once the story is read back, the webhook deliveries that report its end are
   * written and sent from here.
   */
  reportEnded(storyId: string): void {
    const story = this.#stories.get(storyId);
    const latest = story?.runs.at(-1);
    if (!story || !latest || isActive(latest.status) || !this.#sender) return;
    const notify = this.#configNow().notify;
    if (notify.webhook.length === 0) return;
    const deliveries = this.#notifications.deliveries(agentInfo(story, this.#log), notify, this.#env);
    if (deliveries.length === 0) return;
    this.#persist(
      `story ${storyId} run ${latest.number}`,
      (store) => store.saveRun(latest, deliveries),
      () => this.#sender?.add(deliveries),
    );
  }

  /** Takes up the outbox's PENDING deliveries again (those of a lost server among them); those queued here stay as they are. */
  async resumeDeliveries(): Promise<void> {
    if (this.#store && this.#sender) this.#sender.add(await this.#store.pendingDeliveries());
  }

  /** Another server of the cluster stored a story's events up to `bounds.lastSeq`: its readers here read them. */
  observeEvents(storyId: string, bounds: ObservedBounds): void {
    this.#log.observed(storyId, bounds);
  }

  /** Settles once every write to the store made so far has settled (a change is in the store, for others to read). */
  async writesSettled(): Promise<void> {
    await Promise.all(this.#writes);
  }

  /**
   * Stops every agent (each recorded STOPPED, every process of it gone), ends every read of
   * git work (its git gone), ends every event reader, and takes no more starts. The server calls it on SIGINT and SIGTERM.
   */
  async dispose(): Promise<void> {
    this.#closed = true;
    const active = [...this.#stories.values()].map(activeRun).filter((run) => run !== undefined);
    await Promise.all([
      ...active.map((run) => this.#stopRun(run, { kind: 'shutdown' })),
      this.#services.dispose(),
      this.#gitReads.close(),
      this.#landings.close(),
    ]);
    await this.#worktrees.settled();
    await this.#log.settled();
    await Promise.all(this.#writes);
    // What the ends of the runs wrote to the outbox is sent at the next start.
    await this.#sender?.close();
    this.#updates.close();
    this.#log.close();
  }

  /** `await using pool = new AgentPool(…)` disposes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /** The request ids of a run's approval requests that were answered or refused, read from its events. */
  async #answeredApprovals(run: RunState): Promise<Set<string>> {
    const answered = new Set<string>();
    for await (const event of runEvents(this.#log, run)) if (event.type === 'approval_resolved') answered.add(event.requestId);
    return answered;
  }

  #story(storyId: string): Story {
    assertValidStoryId(storyId);
    const story = this.#stories.get(storyId);
    if (!story) throw new AgentNotFoundError(storyId);
    return story;
  }

  #requireActive(storyId: string): Run {
    const story = this.#story(storyId);
    const run = activeRun(story);
    if (!run) throw new AgentNotRunningError(storyId, story.runs.at(-1)!.status);
    return run;
  }

  async #work(storyId: string): Promise<StoryWork | undefined> {
    const agent = this.get(storyId);
    if (!agent?.branch) return undefined;
    return this.#worktrees.storyWork(storyId, agent.branch, agent.worktreePath);
  }

  /** Where a story's work is and where it last landed; undefined before it has a branch. */
  async #landingWork(story: Story): Promise<LandingWork | undefined> {
    const work = await this.#work(story.storyId);
    return work && { ...work, landedCommit: story.landing.landedCommit };
  }

  /** Records a story's landing facts, and tells everyone (unless a change about to come will). */
  #saveLanding(story: Story, notify = true): void {
    const landing = { ...story.landing };
    this.#persist(`story ${story.storyId}`, (store) => store.saveLanding(story.storyId, landing));
    if (notify) this.#updates.changed(story.storyId);
  }

  /**
   * A run made the story's branch (its first, or a new one after archiving deleted the old):
   * a new history, whose target is recorded once known.
   */
  #worktreeMade(storyId: string, worktree: StoryWorktree): void {
    this.#services.reopen(storyId);
    const story = this.#stories.get(storyId);
    if (!story || !worktree.baseBranch) return;
    // The remote may still have the old branch, as agent-pool pushed it: the next push's lease.
    story.landing = { ...newLanding(), pushedCommit: story.landing.pushedCommit };
    void worktree.baseBranch.then((baseBranch) => {
      story.landing.baseBranch = baseBranch ?? undefined;
      // Not an update of its own: the run's next change (its RUNNING, its events, its end) carries it.
      this.#saveLanding(story, false);
    });
  }

  #startRun(
    storyId: string,
    prompt: string | undefined,
    options: {
      agent: string | undefined;
      /** The story's new title, as given ('' for none), or undefined to keep its own. */
      title?: string;
      resume?: { sessionId: string; sessionUsage: Usage | undefined };
      /** The story whose agent starts this one (recorded for a new story only). */
      startedBy?: string;
    },
  ): AgentInfo {
    if (this.#closed) throw new PoolClosedError();
    // The story id first, then what was given for it: a refusal changes nothing.
    assertValidStoryId(storyId);
    if (prompt !== undefined) assertValidPrompt(prompt);
    const given = options.title === undefined ? undefined : validTitle(options.title);
    const known = this.#stories.get(storyId);
    const latest = known?.runs.at(-1);
    if (latest && isActive(latest.status)) throw new AgentAlreadyRunningError(storyId, latest.status);
    const config = this.#loadConfig();
    const profileName = options.agent ?? known?.agent ?? config.pool.default_agent;
    const profile = config.agents[profileName];
    if (!profile) throw new UnknownAgentError(profileName, Object.keys(config.agents));
    // Its services' ports, given now if it has none: setup and the agent get them. A port
    // the used-up range cannot give refuses the start only where setup or the agent names it.
    // (A run queued in a cluster gets them from the runner that claims it.)
    const { ports, missing } = this.#dispatch ? { ports: {}, missing: [] } : this.#services.assignPorts(storyId, config);
    const needed = missing.find((name) => namesPort(profile, config.worktree.setup, name));
    if (needed !== undefined) throw new NoFreePortError(storyId, needed, config.services.ports);

    // A title given replaces the story's ('' removes it); none given keeps it.
    const title = given === undefined ? known?.title : given || undefined;
    const startedBy = known ? known.startedBy : options.startedBy;
    if (!known) this.#persist(`story ${storyId}`, (store) => store.addStory(storyId, new Date(), profileName, title, startedBy));
    else {
      if (known.agent !== profileName) this.#persist(`story ${storyId}`, (store) => store.setStoryAgent(storyId, profileName));
      if (known.title !== title) this.#persist(`story ${storyId}`, (store) => store.setStoryTitle(storyId, title));
    }
    const number = (known?.runs.length ?? 0) + 1;
    if (this.#dispatch) return this.#queueRun(storyId, number, { agent: profileName, prompt, title, startedBy, resumeSessionId: options.resume?.sessionId });
    const run = this.#newRun(storyId, number, { agent: profileName, prompt, resumeSessionId: options.resume?.sessionId }, {
      config,
      profile,
      ports,
      sessionUsage: options.resume?.sessionUsage,
    });
    const story = this.#stories.addRun(storyId, profileName, title, run, startedBy);
    // A start brings an archived story back: its worktree is made again from its branch.
    if (story.landing.archived) {
      story.landing.archived = false;
      this.#saveLanding(story);
    }
    // In a cluster its record (whose run it is) goes before its first event: see #gaveWay.
    if (this.#runner !== undefined) this.#persist(`story ${storyId} run ${run.state.number}`, (store) => store.saveRun(run.state));
    run.announce();
    this.#persist(`story ${storyId} run ${run.state.number}`, (store) => store.saveRun(run.state));
    this.#updates.changed(storyId);
    this.#queue.limit = config.pool.max_concurrent;
    this.#queue.add(run);
    return agentInfo(story, this.#log);
  }

  /** A run of this server, with everything it needs from the pool. */
  #newRun(
    storyId: string,
    number: number,
    options: { agent: string; prompt: string | undefined; resumeSessionId: string | undefined; queued?: RunState },
    context: { config: AgentPoolConfig; profile: AgentProfile; ports: Record<string, number>; sessionUsage: Usage | undefined },
  ): Run {
    const { config, profile } = context;
    return new Run(storyId, number, { ...options, runner: this.#runner }, {
      projectRoot: this.projectRoot,
      config,
      profile,
      adapter: adapterFor(profile.kind),
      sessionUsage: context.sessionUsage,
      worktrees: this.#worktrees,
      spawn: this.#spawn,
      log: this.#log,
      logger: this.#logger,
      baseEnv: withoutVariables(this.#baseEnv, secretVariables(config)),
      ports: context.ports,
      mcp: () => this.#mcp,
      onChange: (changed) => this.#runChanged(changed),
      beforeEnd: (ended) => this.#beforeRunEnds(ended),
      beforeWorktree: async () => {
        await this.#landings.settled(storyId);
        // In a cluster, the story's work may have been pushed by another runner since.
        if (this.#dispatch) await this.#fetchStory(storyId, config);
      },
      onWorktree: (worktree) => this.#worktreeMade(storyId, worktree),
    });
  }

  /**
   * In a cluster, brings the story's branch here up to where the remote has it (another
   * runner's work); a story whose work was never pushed has none there.
   */
  async #fetchStory(storyId: string, config: AgentPoolConfig): Promise<void> {
    if (this.#stories.get(storyId)?.landing.pushedCommit === undefined) return;
    // Not at the same time as a read of it taking the branch up here (both would make it).
    await this.#adopting.get(storyId)?.catch(() => {});
    const worktreePath = this.#worktrees.pathOf(storyId, config.worktree);
    await fetchBranch(this.projectRoot, {
      storyId,
      remote: config.forge.remote,
      branch: this.#worktrees.branchOf(storyId, config.worktree),
      worktreePath: existsSync(worktreePath) ? worktreePath : undefined,
      env: withoutVariables(this.#baseEnv, secretVariables(config)),
    });
  }

  /**
   * In a cluster, after each run its work goes to the remote, for whichever runner takes the
   * story's next run: what the agent left uncommitted is committed first, and the branch
   * is pushed with a lease (where agent-pool last pushed it). A refusal is logged, and the
   * run's end is recorded as it is.
   */
  async #shareWork(run: Run): Promise<void> {
    const story = this.#stories.get(run.storyId);
    const { worktreePath, branch } = run.state;
    if (!story || worktreePath === undefined || branch === undefined || !existsSync(worktreePath)) return;
    const config = run.config;
    try {
      await this.#worktrees.saveWork(run.storyId, worktreePath, `after run ${run.state.number}`);
      const pushed = await pushBranch(this.projectRoot, {
        storyId: run.storyId,
        remote: config.forge.remote,
        branch,
        expected: story.landing.pushedCommit,
        env: withoutVariables(this.#baseEnv, secretVariables(config)),
      });
      if (pushed !== story.landing.pushedCommit) {
        story.landing.pushedCommit = pushed;
        this.#saveLanding(story, false);
      }
    } catch (error) {
      this.#logger.warn(`story ${run.storyId} run ${run.state.number}: its work could not be shared with the cluster's other runners: ${(error as Error).message}`);
    }
  }

  /**
   * In a cluster, a start is queued for a runner: its record (PENDING, without a runner) and
   * its first event are stored, then it goes in the queue, where a runner claims it.
   */
  #queueRun(
    storyId: string,
    number: number,
    options: { agent: string; prompt: string | undefined; title: string | undefined; startedBy: string | undefined; resumeSessionId: string | undefined },
  ): AgentInfo {
    // The runner that claims it gives it its own marker.
    const record = pendingRunState(storyId, number, { agent: options.agent, prompt: options.prompt, marker: randomUUID(), runner: undefined });
    const previousRunner = this.runnerOf(storyId);
    const story = this.#stories.addRun(storyId, options.agent, options.title, record, options.startedBy);
    if (story.landing.archived) {
      story.landing.archived = false;
      this.#saveLanding(story);
    }
    const [pending] = this.#log.append(storyId, number, [{ type: 'status', status: 'PENDING' }]);
    record.firstSeq = record.lastSeq = pending!.seq;
    this.#persist(`story ${storyId} run ${number}`, (store) => store.saveRun(record));
    this.#updates.changed(storyId);
    const dispatch = this.#dispatch!;
    const queueing = (async () => {
      // Stored first: the runner that claims it reads its record and numbers its events after this one.
      await this.#log.settled(storyId);
      await this.writesSettled();
      // The runner that ran it before has its worktree: it takes it, while it is there.
      await dispatch.enqueue(record, options.resumeSessionId, previousRunner);
    })()
      .catch((error: unknown) => this.#logger.error(`story ${storyId} run ${number}: could not be queued for a runner`, error))
      .finally(() => {
        if (this.#queueing.get(storyId) === queueing) this.#queueing.delete(storyId);
      });
    this.#queueing.set(storyId, queueing);
    return agentInfo(story, this.#log);
  }

  /**
   * A run's state changed: it is stored, with the webhook deliveries that report it (the
   * agent started waiting for a person, or the run ended) in the same write, and everyone hears of it.
   */
  #runChanged(run: Run): void {
    const story = this.#stories.get(run.storyId);
    const deliveries =
      this.#sender && story && run.config.notify.webhook.length > 0
        ? this.#notifications.deliveries(agentInfo(story, this.#log), run.config.notify, this.#env)
        : [];
    this.#persist(
      `story ${run.storyId} run ${run.state.number}`,
      (store) => store.saveRun(run.state, deliveries),
      () => this.#sender?.add(deliveries),
    );
    this.#updates.changed(run.storyId);
  }

  /**
   * The configuration as it is now, or as last read when it has become invalid (logged
   * once): webhooks and services go on while the file is being edited; the next start
   * reports the error.
   */
  #configNow(): AgentPoolConfig {
    try {
      this.#config = this.#loadConfig();
      this.#configProblem = undefined;
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== this.#configProblem) {
        this.#configProblem = problem;
        this.#logger.warn(`${problem}; webhooks and services go on with the configuration as last read`);
      }
    }
    return this.#config;
  }

  /**
   * Writes to the store, in call order (each store keeps its writes in order). A store that
   * refuses is logged: what is in memory stays true, and a run whose events are refused
   * ends FAILED (see the log's onError).
   */
  #persist(what: string, write: (store: StateStore) => Promise<void>, stored?: () => void): void {
    const store = this.#store;
    if (!store) return;
    const writing = write(store)
      .then(stored)
      .catch((error: unknown) => {
        if (error instanceof RunTakenError) this.#gaveWay(error);
        else this.#logger.error(`${what}: could not be stored`, error);
      });
    this.#writes.add(writing);
    void writing.finally(() => this.#writes.delete(writing));
  }

  /**
   * Another server of the cluster started the same story at the same moment and recorded
   * its run first: this server's run of that number gives way (it ends, and the story is
   * read back as the other server has it).
   */
  #gaveWay(error: RunTakenError): void {
    const { storyId } = error;
    const run = this.#stories.get(storyId)?.current;
    if (!run || run.state.number !== error.number || this.#givingWay.has(storyId)) return;
    this.#givingWay.add(storyId);
    this.#logger.warn(`${error.message}; this server's start of it gives way`);
    void (async () => {
      await this.#stopRun(run, { kind: 'failed', reason: error.message });
      // Its events were refused: the story's seqs are the other server's.
      await this.#log.settled(storyId);
      this.#log.rewind(storyId);
      const bounds = await this.#store?.eventBounds(storyId);
      if (bounds) this.#log.observed(storyId, bounds);
      await this.reloadStory(storyId);
    })()
      .catch((problem: unknown) => this.#logger.error(`story ${storyId}: could not be read back after giving way`, problem))
      .finally(() => this.#givingWay.delete(storyId));
  }

  /**
   * In a cluster, the run's work goes to the remote; with `remove_on_stop`, the worktree of a
   * run stopped by request goes: both before its end is recorded.
   */
  async #beforeRunEnds(run: Run): Promise<void> {
    // A run ended because the others ended it (this server lost, or another's start first) shares nothing: it is not the story's latest work.
    if (this.#dispatch && !this.#abandoned.has(run) && !this.#givingWay.has(run.storyId)) await this.#shareWork(run);
    const { worktree } = run.config;
    if (run.endReason?.kind !== 'stopped' || !worktree.remove_on_stop || !run.state.worktreePath) return;
    await this.#services.close(run.storyId, { release: false });
    await this.#worktrees.remove(run.storyId, worktree).catch((error: unknown) => {
      this.#logger.warn(`story ${run.storyId}: its worktree could not be removed after the stop`, error);
    });
  }

  async #stopRun(run: Run, reason: EndReason): Promise<void> {
    this.#queue.remove(run);
    await run.stop(reason);
  }
}

/** How far back a server that comes back looks for processes of its runs the others ended as lost. */
const LOST_RUNS_LOOKBACK_MS = 7 * 24 * 3600 * 1000;

/** Whether a run ended within {@link LOST_RUNS_LOOKBACK_MS}. */
function isRecent(finishedAt: Date | undefined): boolean {
  return finishedAt !== undefined && Date.now() - finishedAt.getTime() < LOST_RUNS_LOOKBACK_MS;
}

/** Whether a profile's prompt or args, or a setup command, name the port of service `name` ({{port:NAME}}). */
function namesPort(profile: AgentProfile, setup: readonly string[], name: string): boolean {
  return [profile.prompt, ...profile.args, ...setup].some((text) => portPlaceholders(text).services.includes(name));
}

/** Whether a story is in a list of those with `status` (any when undefined), archived ones only when included. */
function listed(story: Story, status: AgentStatus | undefined, includeArchived: boolean): boolean {
  if (story.landing.archived && !includeArchived) return false;
  return status === undefined || story.runs.at(-1)!.status === status;
}

/**
 * A prompt an agent can get whole: most take it as a command-line argument, which ends at
 * the first NUL, so a prompt with one would reach the agent cut short.
 * @throws InvalidArgumentError.
 */
function assertValidPrompt(prompt: string): void {
  if (prompt.includes('\u0000')) {
    throw new InvalidArgumentError(
      'a prompt must not contain U+0000 (NUL): an agent gets its prompt as a command-line argument, which ends at the first NUL',
    );
  }
}

/** The longest title a story takes, in characters (Unicode code points). */
export const MAX_TITLE_LENGTH = 200;

/**
 * What a title must not hold: control characters (C0 and C1, U+0085 among them), line and
 * paragraph separators, and the marks that reorder text around them (bidirectional
 * controls), which could make a title, or the story id shown beside it, read as another.
 */
const NOT_IN_A_TITLE = /[\p{Cc}\p{Zl}\p{Zp}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Something visible: not whitespace, a format or combining mark, a character that renders
 * as nothing (Hangul fillers, variation selectors: Default_Ignorable_Code_Point), a
 * private-use or unassigned code point, or the blank braille pattern.
 */
const VISIBLE = /[^\s\p{Cf}\p{M}\p{Default_Ignorable_Code_Point}\p{Co}\p{Cn}\u2800]/u;

/** An emoji tag sequence (a subdivision flag such as Scotland's): the only place tag characters belong. */
const EMOJI_TAG_SEQUENCE = /\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F}/gu;

/** Tag characters outside such a sequence: invisible to people, read by language models. */
const TAG_CHARACTER = /[\u{E0000}-\u{E007F}]/u;

/**
 * More combining marks on one character than any script needs (Unicode's stream-safe
 * limit is 30): stacked, they draw over the lines around them.
 */
const STACKED_MARKS = /\p{M}{31,}/u;

/**
 * A title as stored: trimmed, at most {@link MAX_TITLE_LENGTH} characters (code points), one
 * line of well-formed text with something visible in it; '' (none) when empty.
 * @throws InvalidArgumentError with what was wrong.
 */
function validTitle(title: string): string {
  const trimmed = title.trim();
  // In a /u pattern, a surrogate that is not half of a pair is one of its own (\p{Cs}).
  if (/\p{Cs}/u.test(trimmed)) {
    throw new InvalidArgumentError('a title must be well-formed text: it holds half of a UTF-16 surrogate pair');
  }
  const length = [...trimmed].length;
  if (length > MAX_TITLE_LENGTH) {
    throw new InvalidArgumentError(`a title is at most ${MAX_TITLE_LENGTH} characters; this one has ${length}`);
  }
  if (NOT_IN_A_TITLE.test(trimmed)) {
    throw new InvalidArgumentError(
      'a title is one line of text: it must not contain line breaks, control characters or bidirectional text controls',
    );
  }
  if (TAG_CHARACTER.test(trimmed.replace(EMOJI_TAG_SEQUENCE, ''))) {
    throw new InvalidArgumentError('a title must not contain invisible tag characters (U+E0000 to U+E007F) outside an emoji flag');
  }
  if (STACKED_MARKS.test(trimmed)) {
    throw new InvalidArgumentError('a title must not stack more than 30 combining marks on one character');
  }
  if (trimmed !== '' && !VISIBLE.test(trimmed)) {
    throw new InvalidArgumentError('a title needs at least one visible character ("" removes the title)');
  }
  return trimmed;
}
