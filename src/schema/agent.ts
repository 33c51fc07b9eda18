import { InvalidArgumentError } from '../pool/pool-errors.js';
import type { AgentInfo } from '../pool/stories.js';
import { MAX_DIFF_BYTES } from '../worktree/story-changes.js';
import { AgentEventRef } from './agent-event.js';
import { AgentRunRef } from './agent-run.js';
import { AgentStatusEnum } from './agent-status.js';
import { ApprovalRef, WaitReasonEnum } from './approval.js';
import { builder } from './builder.js';
import { countGitRead, DEFAULT_LIST_MULTIPLIER, GIT_READ_COMPLEXITY } from './complexity.js';
import { CommitRef } from './commit.js';
import type { SchemaContext } from './builder.js';
import { PullRequestRef } from './landing.js';
import type { LandingStatus } from '../worktree/landing.js';
import { ServiceRef } from './service.js';
import { UsageRef } from './usage.js';
import { WorktreeChangesRef } from './worktree-changes.js';

/** How many events `Agent.events` returns when `first` is omitted. */
export const EVENT_PAGE_DEFAULT = 100;
/** The most events `Agent.events` returns at once; a larger `first` is clamped to it. */
export const EVENT_PAGE_MAX = 1000;

/** The page size `Agent.events` uses for `first`, as given (or omitted). */
function eventPageSize(first: number | null | undefined): number {
  return Math.min(Math.max(first ?? EVENT_PAGE_DEFAULT, 0), EVENT_PAGE_MAX);
}

/**
 * How a story stands against its target, read once per agent and operation however many of
 * aheadBy, behindBy and conflicts are selected (one git read, counted once).
 */
const landingStatuses = new WeakMap<SchemaContext, Map<string, Promise<LandingStatus>>>();

function landingStatusOf(agent: AgentInfo, context: SchemaContext): Promise<LandingStatus> {
  let statuses = landingStatuses.get(context);
  if (!statuses) landingStatuses.set(context, (statuses = new Map()));
  let status = statuses.get(agent.storyId);
  if (!status) {
    countGitRead(context);
    status = Promise.resolve(context.pool.landingStatus(agent.storyId, { signal: context.signal }));
    statuses.set(agent.storyId, status);
  }
  return status;
}

/** The Agent type: a story's agent. */
export const AgentRef = builder.objectRef<AgentInfo>('Agent').implement({
  description: 'The agent of one story: the state of its latest run and what its runs have added up to.',
  fields: (t) => ({
    storyId: t.exposeID('storyId', { description: 'The story\'s id.' }),
    agent: t.exposeString('agent', {
      nullable: true,
      description: 'The story\'s agent profile: "default" ([agent]) or a name of [agents.NAME]. A story keeps it.',
    }),
    title: t.exposeString('title', {
      nullable: true,
      description: 'The story\'s title, as startAgent last gave it; null when none was given.',
    }),
    startedBy: t.exposeID('startedBy', {
      nullable: true,
      description:
        'The story whose agent started this one through agent-pool\'s MCP tools (`[agent] mcp = true`, with a token scoped to that story); ' +
        'null when a person or a client with the server\'s token started it.',
    }),
    prompt: t.exposeString('prompt', {
      nullable: true,
      description:
        'The prompt the story\'s first run got: as given to startAgent (at once), or the configured one rendered once its agent ' +
        'starts; a first run that ended before that gives way to the next run that has one. Null until then.',
    }),
    usage: t.expose('usage', {
      type: UsageRef,
      nullable: true,
      description: 'Tokens and cost summed over the story\'s runs; null when no run reported any.',
    }),
    status: t.expose('status', { type: AgentStatusEnum, description: 'The status of the story\'s latest run.' }),
    sessionId: t.exposeString('sessionId', {
      nullable: true,
      description: 'The agent\'s own session id (Claude\'s system/init event), newest of the story\'s runs.',
    }),
    runner: t.exposeString('runner', {
      nullable: true,
      description: 'The server of the cluster that runs (or last ran) the story\'s latest run: where its worktree is. Null for a server alone.',
    }),
    worktreePath: t.exposeString('worktreePath', {
      nullable: true,
      description: 'The absolute path of the story\'s git worktree, once made; null once archived (archiveStory) until a start makes it again.',
    }),
    branch: t.exposeString('branch', {
      nullable: true,
      description: 'The story\'s branch, once its worktree is made; null once archiveStory(deleteBranch: true) deleted it, until a start makes a new one.',
    }),
    pid: t.exposeInt('pid', {
      nullable: true,
      description: 'While running: the pid that leads the run\'s process group.',
    }),
    exitCode: t.exposeInt('exitCode', { nullable: true, description: 'The exit code of the latest run\'s agent.' }),
    error: t.exposeString('error', { nullable: true, description: 'Why the latest run FAILED.' }),
    costUsd: t.exposeFloat('costUsd', {
      nullable: true,
      description: 'The sum of Claude\'s result total_cost_usd over the story\'s runs; null when none reported one.',
    }),
    startedAt: t.expose('startedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the latest run was started (startAgent).',
    }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true, description: 'When the latest run ended.' }),
    pendingApprovals: t.field({
      type: [ApprovalRef],
      description: 'The latest run\'s tool calls that wait for a person\'s answer (respondToApproval), oldest first.',
      // Small lists of small objects: counted as their usual size, so that a list of many stories stays affordable.
      complexity: { field: 1, multiplier: 2 },
      resolve: (agent) => agent.pendingApprovals,
    }),
    interactive: t.exposeBoolean('interactive', {
      description:
        'Whether the latest run talks to its agent over a control channel (Claude outside bypassPermissions, or any ' +
        'agent over the Agent Client Protocol, kind "acp"): it takes ' +
        'respondToApproval, sendMessage and interruptAgent while it runs.',
    }),
    waitingFor: t.expose('waitingFor', {
      type: WaitReasonEnum,
      nullable: true,
      description: 'What the running agent waits for from a person: APPROVAL or INPUT; null when it is busy or not running.',
    }),
    lastSeq: t.exposeInt('lastSeq', { description: 'The seq of the newest event of this story, 0 if none.' }),
    lastEventAt: t.expose('lastEventAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the story\'s newest event was recorded: its last activity.',
    }),
    runs: t.field({
      type: [AgentRunRef],
      description: 'The story\'s runs, oldest first.',
      complexity: { field: 1, multiplier: 3 },
      resolve: (agent) => agent.runs,
    }),
    firstSeq: t.int({
      description: 'The seq of the oldest event kept of this story (retention drops older ones), 0 if none.',
      resolve: (agent, _args, { pool }) => pool.firstSeq(agent.storyId),
    }),
    events: t.field({
      type: [AgentEventRef],
      description:
        `The story's stored events, oldest first. Forwards: those with seq > afterSeq (all when omitted), at most \`first\` ` +
        `(default ${EVENT_PAGE_DEFAULT}, at most ${EVENT_PAGE_MAX}; a larger value is clamped); page on with afterSeq set to ` +
        'the last seq received; EVENTS_TRUNCATED (extensions.firstSeq) when retention dropped events it asks for. ' +
        'Backwards: the `last` (same bounds) with seq < before (the newest when omitted), still in seq order; page on ' +
        'with before set to the first seq received, down to firstSeq; never EVENTS_TRUNCATED. Mixing the directions is ' +
        'INVALID_ARGUMENT.',
      args: {
        afterSeq: t.arg.int({ description: 'Only events after this seq; a negative value counts as 0.' }),
        first: t.arg.int({ description: `How many events at most (default ${EVENT_PAGE_DEFAULT}, at most ${EVENT_PAGE_MAX}).` }),
        before: t.arg.int({ description: 'Backwards: only events before this seq (default: the newest).' }),
        last: t.arg.int({ description: `Backwards: how many events at most (default ${EVENT_PAGE_DEFAULT}, at most ${EVENT_PAGE_MAX}).` }),
      },
      complexity: (args) => ({ field: 1, multiplier: eventPageSize(args.last ?? args.first) }),
      resolve: (agent, args, { pool }) => {
        const forwards = args.afterSeq != null || args.first != null;
        const backwards = args.before != null || args.last != null;
        if (forwards && backwards) {
          throw new InvalidArgumentError('events: give afterSeq/first (forwards) or before/last (backwards), not both');
        }
        if (backwards) return pool.eventPageBefore(agent.storyId, args.before ?? undefined, eventPageSize(args.last));
        return pool.eventPage(agent.storyId, args.afterSeq ?? 0, eventPageSize(args.first));
      },
    }),
    services: t.field({
      type: [ServiceRef],
      description:
        'The story\'s services ([services.NAME] of agent-pool.toml), in the file\'s order, each on its own port (given when ' +
        'first listed or used, and kept while the story exists). startService and stopService run them.',
      resolve: (agent, _args, { pool }) => pool.services(agent.storyId),
    }),
    changes: t.field({
      type: WorktreeChangesRef,
      nullable: true,
      description:
        'The story\'s worktree against its base commit: committed, uncommitted and untracked (not ignored) changes ' +
        'together, computed when asked. Null before the story has a worktree.',
      complexity: GIT_READ_COMPLEXITY,
      resolve: (agent, _args, context) => {
        countGitRead(context);
        return context.pool.changes(agent.storyId, { signal: context.signal });
      },
    }),
    diff: t.string({
      nullable: true,
      description:
        `The unified diff of the story's changes against its base commit: one file (path as Agent.changes lists it), ` +
        `or all when path is omitted. At most ${MAX_DIFF_BYTES} bytes: a longer diff is cut there and its last line ` +
        'says how many bytes were left out. PATH_NOT_CHANGED for a path that has no change. Null before the story has a worktree.',
      args: { path: t.arg.string({ description: 'A changed file\'s path, relative to the worktree.' }) },
      complexity: GIT_READ_COMPLEXITY,
      resolve: (agent, args, context) => {
        countGitRead(context);
        return context.pool.diff(agent.storyId, args.path ?? undefined, { signal: context.signal });
      },
    }),
    baseBranch: t.exposeString('baseBranch', {
      nullable: true,
      description:
        'The branch the story\'s work lands on (mergeStory, rebaseStory, the base of its pull request): [worktree] base if it ' +
        'names a branch, else the branch HEAD was on, recorded when its branch was made. Null for a detached base and for ' +
        'stories made before agent-pool recorded it: mergeStory then needs into.',
    }),
    aheadBy: t.int({
      description: 'Commits on the story\'s branch since its work last landed (all of them before any landing); uncommitted work is not counted. 0 without a target.',
      complexity: GIT_READ_COMPLEXITY,
      resolve: async (agent, _args, context) => (await landingStatusOf(agent, context)).aheadBy,
    }),
    behindBy: t.int({
      description: 'Commits on the target branch that the story\'s branch lacks (rebaseStory takes them in). 0 without a target.',
      complexity: GIT_READ_COMPLEXITY,
      resolve: async (agent, _args, context) => (await landingStatusOf(agent, context)).behindBy,
    }),
    conflicts: t.stringList({
      description:
        'The files that would conflict merging the story into its target now (MERGE or SQUASH), its whole work counted, ' +
        'committed or not. Computed when asked, on a temporary commit: nothing is written to the repository.',
      complexity: { field: GIT_READ_COMPLEXITY, multiplier: 1 },
      resolve: async (agent, _args, context) => (await landingStatusOf(agent, context)).conflicts,
    }),
    mergedAt: t.expose('mergedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When mergeStory last landed the story, or its pull request was seen merged.',
    }),
    pullRequest: t.expose('pullRequest', {
      type: PullRequestRef,
      nullable: true,
      description: 'The story\'s pull request, as createPullRequest last read it.',
    }),
    archived: t.exposeBoolean('archived', {
      description: 'Whether the story is archived (archiveStory): its worktree is gone, it is left out of agents unless includeArchived, and startAgent brings it back.',
    }),
    commits: t.field({
      type: [CommitRef],
      description: 'The commits on the story\'s branch since its base commit, newest first.',
      complexity: { field: GIT_READ_COMPLEXITY, multiplier: DEFAULT_LIST_MULTIPLIER },
      resolve: (agent, _args, context) => {
        countGitRead(context);
        return context.pool.commits(agent.storyId, { signal: context.signal });
      },
    }),
  }),
});
