import type { PendingApproval, WaitReason } from './control-session.js';
import type { EventLog } from './event-log.js';
import { addUsage, type AgentStatus, type Usage } from './events.js';
import type { Run, RunState } from './run.js';
import { type LandingRecord, newLanding, type PullRequestRecord } from '../store/state-store.js';

/** One run of a story, as callers see it. */
export interface RunInfo {
  number: number;
  /** The agent profile the run used. */
  agent: string;
  /** The prompt as given to startAgent; undefined for the configured one. */
  prompt: string | undefined;
  /** The prompt the agent got: as given, or the configured one rendered (once the agent starts). */
  renderedPrompt: string | undefined;
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
  /** The server of the cluster that ran it. */
  runner: string | undefined;
}

/** A story's agent, as callers see it: the contract's `Agent`. */
export interface AgentInfo {
  storyId: string;
  /** The story's agent profile. */
  agent: string;
  /** The title the story was last given. */
  title: string | undefined;
  /** The story whose agent started this one, through its MCP token (undefined: a person or a client with the server's token). */
  startedBy: string | undefined;
  /** The prompt the story's first run got, or the first run whose agent started (see {@link RunInfo.renderedPrompt}). */
  prompt: string | undefined;
  /** The status of the story's latest run. */
  status: AgentStatus;
  /** The newest session id any run of the story reported. */
  sessionId: string | undefined;
  worktreePath: string | undefined;
  branch: string | undefined;
  /** The server of the cluster that runs (or last ran) the latest run. */
  runner: string | undefined;
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
  /** The branch the story's work lands on (recorded when its branch was made). */
  baseBranch: string | undefined;
  /** When it last landed, or its pull request was seen merged. */
  mergedAt: Date | undefined;
  pullRequest: PullRequestRecord | undefined;
  /** Whether it is archived (its worktree removed, left out of the list). */
  archived: boolean;
}

/** A story: its agent profile, its runs, and the latest run as a live object if this server started it. */
export interface Story {
  readonly storyId: string;
  /** The story's agent profile: the one it was last started with. */
  agent: string;
  /** The title it was last given. */
  title: string | undefined;
  /** The story whose agent started it (MCP), for good. */
  readonly startedBy: string | undefined;
  /** What it knows of landing its work. */
  landing: LandingRecord;
  /** Every run's state, oldest first; the live run's is the last, shared with it. */
  readonly runs: RunState[];
  /**
   * The latest run, if this server started it: the one that can be stopped, answered and
   * talked to while it is PENDING or RUNNING. Past runs (and runs of an earlier server)
   * are only their state.
   */
  current: Run | undefined;
  /** What another server of the cluster, which runs the story's latest run, says of it live. */
  remote?: LiveState;
}

/** What a running agent waits for, known only to the server that runs it (told to the others over the bus). */
export interface LiveState {
  pendingApprovals: PendingApproval[];
  waitingFor: WaitReason | undefined;
  interactive: boolean;
}

/** The stories of a project, in memory, in the order they were first started. */
export class Stories {
  readonly #stories = new Map<string, Story>();

  get size(): number {
    return this.#stories.size;
  }

  get(storyId: string): Story | undefined {
    return this.#stories.get(storyId);
  }

  values(): IterableIterator<Story> {
    return this.#stories.values();
  }

  /** Brings back a stored story (at start). */
  restore(story: Story): void {
    this.#stories.set(story.storyId, story);
  }

  /**
   * Adds a run to a story, new or known, as its current run (or, queued in a cluster, as its
   * latest run's state); the story's profile and title become the run's.
   */
  addRun(storyId: string, agent: string, title: string | undefined, run: Run | RunState, startedBy?: string): Story {
    const known = this.#stories.get(storyId);
    const story = known ?? { storyId, agent, title, startedBy, landing: newLanding(), runs: [], current: undefined };
    story.agent = agent;
    story.title = title;
    // A run queued for a runner of the cluster is only its state here.
    const live = 'state' in run ? run : undefined;
    story.runs.push(live ? live.state : (run as RunState));
    story.current = live;
    story.remote = undefined;
    if (!known) this.#stories.set(storyId, story);
    return story;
  }
}

/** A story's agent as callers see it. */
export function agentInfo(story: Story, log: EventLog): AgentInfo {
  const latest = story.runs.at(-1)!;
  const current = story.current;
  const usage = story.runs.reduce<Usage | undefined>((sum, run) => addUsage(sum, run.usage), undefined);
  const withPlace = story.runs.findLast((run) => run.worktreePath !== undefined);
  return {
    storyId: story.storyId,
    agent: story.agent,
    title: story.title,
    startedBy: story.startedBy,
    // The first run that got one (a first run can fail before its agent starts).
    prompt: story.runs.find((run) => run.renderedPrompt !== undefined)?.renderedPrompt,
    status: latest.status,
    sessionId: story.runs.findLast((run) => run.sessionId !== undefined)?.sessionId,
    // An archived story's worktree is gone, and its branch too when archiving deleted it.
    worktreePath: story.landing.archived ? undefined : withPlace?.worktreePath,
    branch: story.landing.branchDeleted ? undefined : withPlace?.branch,
    runner: latest.runner,
    pid: latest.pid,
    exitCode: latest.exitCode,
    error: latest.error,
    costUsd: usage?.costUsd,
    usage,
    startedAt: latest.startedAt,
    finishedAt: latest.finishedAt,
    lastSeq: log.lastSeq(story.storyId),
    lastEventAt: log.lastEventAt(story.storyId),
    pendingApprovals: current?.pendingApprovals ?? story.remote?.pendingApprovals ?? [],
    waitingFor: current ? current.waitingFor : story.remote?.waitingFor,
    interactive: current?.interactive ?? story.remote?.interactive ?? false,
    baseBranch: story.landing.baseBranch,
    mergedAt: story.landing.mergedAt,
    pullRequest: story.landing.pullRequest,
    archived: story.landing.archived,
    runs: story.runs.map((run) => ({
      number: run.number,
      agent: run.agent,
      prompt: run.prompt,
      renderedPrompt: run.renderedPrompt,
      status: run.status,
      sessionId: run.sessionId,
      exitCode: run.exitCode,
      costUsd: run.usage?.costUsd,
      usage: run.usage,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
      firstSeq: run.firstSeq,
      lastSeq: run.lastSeq,
      runner: run.runner,
    })),
  };
}
