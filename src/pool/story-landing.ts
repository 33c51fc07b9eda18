import type { AgentPoolConfig } from '../config/config.js';
import { createForge, type Forge, forgeSettings, type PullRequestInfo } from '../forge/forge.js';
import type { Logger } from '../logger.js';
import { AgentPoolError } from '../errors.js';
import { packageVersion } from '../version.js';
import {
  assertWorktreeOnBranch,
  checkoutOfBranch,
  isMergedInto,
  LandingRaceError,
  type LandingWork,
  landStory,
  type MergeStrategy,
  NoTargetBranchError,
  NothingToMergeError,
  rebaseStory,
} from '../worktree/landing.js';
import { fetchBranch, PushFailedError, pushBranch, remoteUrl } from '../worktree/push.js';
import { PLUMBING_CONFIG, runGit, safeConfig } from '../worktree/safe-git.js';
import type { Worktrees } from '../worktree/worktrees.js';
import { isActive } from './events.js';
import { AgentAlreadyRunningError, InvalidArgumentError, PoolClosedError } from './pool-errors.js';
import type { Story } from './stories.js';

/** Deleting the story's branch would lose work that is not merged; nothing was changed. */
export class BranchNotMergedError extends AgentPoolError {
  constructor(storyId: string, branch: string, target: string | undefined) {
    super(
      'BRANCH_NOT_MERGED',
      `story ${storyId}'s branch ${branch} has work that is not merged (not landed by mergeStory, not in ${target ?? 'its target'}, ` +
        'no merged pull request): nothing was changed. Land it first, or archive it without deleteBranch to keep the branch',
      { extensions: { storyId, branch } },
    );
  }
}

/** What the landing operations need from the pool. */
export interface LandingContext {
  projectRoot: string;
  worktrees: Worktrees;
  loadConfig(): AgentPoolConfig;
  /** The environment the forge's token is read from (the server's). */
  env: NodeJS.ProcessEnv;
  /** The environment of a push: the one agents get (without the server's secrets, the token among them). */
  pushEnv(config: AgentPoolConfig): Record<string, string>;
  logger: Logger;
  /** Records a story's landing facts (in the store, if there is one) and tells everyone it changed. */
  saveLanding(story: Story): void;
  /** The story whose run, PENDING or RUNNING, works on `branch`, if one does. */
  activeStoryOn(branch: string): string | undefined;
  /** Ends what runs in a story's worktree besides its agent (its services) before the worktree goes. */
  beforeWorktreeRemoval(storyId: string): Promise<void>;
  /**
   * Whether the target lives on the remote (a cluster: no user's checkout to land into):
   * a landing brings it up to the remote's first, and pushes it there with a lease after.
   */
  targetOnRemote(): boolean;
}

/** What mergeStory is given. */
export interface MergeOptions {
  strategy: MergeStrategy;
  /** The SQUASH or MERGE commit's message; a default says which story it is. */
  message?: string;
  /** The branch to land on, instead of the story's own target. */
  into?: string;
}

/** What createPullRequest is given. */
export interface PullRequestOptions {
  title?: string;
  body?: string;
  draft?: boolean;
}

/**
 * The operations that land a story's work (merge, rebase, pull request) and archive it.
 * Each runs alone on its story, after any start or stop in flight and before any that
 * follows (the run waits for it before it touches the worktree), and never on a story that
 * is PENDING or RUNNING. Landings into one target run one at a time, so that two never
 * build on the same old tip.
 */
export class StoryLandings {
  readonly #context: LandingContext;
  /** The tail of each story's queue of operations. */
  readonly #storyQueues = new Map<string, Promise<unknown>>();
  /** The tail of each target branch's queue of landings. */
  readonly #targetQueues = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(context: LandingContext) {
    this.#context = context;
  }

  /** Resolves once the story's operations queued so far are done (a run waits for it before touching the worktree). */
  settled(storyId: string): Promise<void> {
    return (this.#storyQueues.get(storyId) ?? Promise.resolve()).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Takes no more operations, and resolves once those under way are done (their git processes gone). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#storyQueues.values()].map((tail) => tail.catch(() => undefined)));
  }

  /**
   * Lands the story's work on its target (or `into`).
   * @throws AgentAlreadyRunningError, InvalidArgumentError, NoTargetBranchError,
   *   MergeConflictError, TargetDirtyError, NothingToMergeError, LandingRaceError.
   */
  merge(story: Story, work: () => Promise<LandingWork | undefined>, options: MergeOptions): Promise<void> {
    return this.#onStory(story, async () => {
      const target = await this.#target(story, options.into);
      const landingWork = await work();
      if (landingWork === undefined) throw new NothingToMergeError(story.storyId, target);
      if (options.strategy === 'REBASE') {
        if (this.#context.targetOnRemote()) {
          throw new InvalidArgumentError('REBASE rewrites the story\'s branch, which the runners of a cluster share through the remote: use SQUASH or MERGE in a cluster');
        }
        if (options.message !== undefined) throw new InvalidArgumentError('message goes with SQUASH and MERGE: REBASE keeps the story\'s own commits and their messages');
        if (landingWork.worktreePath === undefined) throw this.#noWorktree(story, 'a REBASE replays its commits in its worktree; use SQUASH or MERGE');
      }
      const message = options.message ?? this.#defaultMessage(story, options.strategy);
      const { worktrees, projectRoot } = this.#context;
      const identity = await worktrees.identity();
      const onRemote = this.#context.targetOnRemote();
      const config = this.#context.loadConfig();
      const remote = config.forge.remote;
      const env = this.#context.pushEnv(config);
      const landed = await this.#onTarget(target, async () => {
        // In a cluster the target is the remote's: this clone's is brought up to it first.
        const remoteTip = onRemote
          ? await fetchBranch(projectRoot, { storyId: story.storyId, remote, branch: target, worktreePath: await checkoutOfBranch(projectRoot, target), env, remoteWins: true })
          : undefined;
        const before = onRemote ? await commitOf(projectRoot, `refs/heads/${target}`) : undefined;
        const done = await landStory(projectRoot, landingWork, {
          strategy: options.strategy,
          target,
          message,
          identity,
          saveUncommittedWork: () => worktrees.saveWork(story.storyId, landingWork.worktreePath!, `before landing on ${target}`),
        });
        if (!onRemote) return done;
        // Then moved there, with a lease: work pushed meanwhile by anyone else is never
        // overwritten. Refused, this clone's target goes back to where it was too.
        try {
          await pushBranch(projectRoot, { storyId: story.storyId, remote, branch: target, expected: remoteTip, env });
        } catch (error) {
          await moveBack(projectRoot, target, done.commit, before).catch((problem: unknown) => {
            this.#context.logger.warn(`story ${story.storyId}: ${target} here could not be moved back after the refused push: ${(problem as Error).message}`);
          });
          // Another landing got there first: this one is simply to be done again.
          if (error instanceof PushFailedError && /stale info|fetch first|non-fast-forward/.test(error.message)) {
            throw new LandingRaceError(story.storyId, `${target} moved on ${remote}`);
          }
          throw error;
        }
        return done;
      });
      story.landing.landedCommit = landed.landedCommit;
      story.landing.landedAs = landed.commit;
      story.landing.mergedAt = new Date();
      this.#context.saveLanding(story);
      this.#context.logger.info(`story ${story.storyId}: landed on ${target} (${options.strategy}) as ${landed.commit.slice(0, 12)}`);
    });
  }

  /**
   * Rebases the story's branch onto its target in its worktree.
   * @throws AgentAlreadyRunningError, NoTargetBranchError, MergeConflictError (nothing changed).
   */
  rebase(story: Story, work: () => Promise<LandingWork | undefined>): Promise<void> {
    return this.#onStory(story, async () => {
      if (this.#context.targetOnRemote()) {
        throw new InvalidArgumentError('a rebase rewrites the story\'s branch, which the runners of a cluster share through the remote: merge its target into it instead (or land it with SQUASH or MERGE)');
      }
      const target = await this.#target(story, undefined);
      const landingWork = await work();
      if (landingWork?.worktreePath === undefined) throw this.#noWorktree(story, 'a rebase happens in its worktree');
      const { worktrees, projectRoot } = this.#context;
      await this.#onTarget(target, async () =>
        rebaseStory(projectRoot, landingWork, {
          target,
          identity: await worktrees.identity(),
          saveUncommittedWork: () => worktrees.saveWork(story.storyId, landingWork.worktreePath!, `before rebasing onto ${target}`),
        }),
      );
      this.#context.logger.info(`story ${story.storyId}: rebased onto ${target}`);
    });
  }

  /**
   * Pushes the story's branch (its uncommitted work committed first) with a lease, then
   * opens its pull request, or updates and re-reads the one it has.
   * @throws AgentAlreadyRunningError, NoTargetBranchError, ForgeNotConfiguredError,
   *   PushFailedError, ForgeError.
   */
  createPullRequest(story: Story, work: () => Promise<LandingWork | undefined>, options: PullRequestOptions): Promise<void> {
    return this.#onStory(story, async () => {
      const config = this.#context.loadConfig();
      const { projectRoot, worktrees } = this.#context;
      const { remote } = config.forge;
      // Everything that can be refused without the network is, before anything is written.
      const forge = createForge(forgeSettings(config.forge, this.#context.env, await remoteUrl(projectRoot, remote), packageVersion()));
      const target = await this.#target(story, undefined);
      const landingWork = await work();
      if (landingWork === undefined) throw new NothingToMergeError(story.storyId, target);
      if (landingWork.worktreePath !== undefined) {
        await assertWorktreeOnBranch(landingWork);
        await worktrees.saveWork(story.storyId, landingWork.worktreePath, 'before pushing it');
      }
      const before = story.landing.pushedCommit;
      const pushed = await pushBranch(projectRoot, {
        storyId: story.storyId,
        remote,
        branch: landingWork.branch,
        expected: before,
        env: this.#context.pushEnv(config),
      });
      story.landing.pushedCommit = pushed;
      this.#context.saveLanding(story);

      const pullRequest = await this.#openOrUpdate(story, forge, {
        head: landingWork.branch,
        base: target,
        title: options.title,
        body: options.body,
        draft: options.draft ?? false,
        pushedNew: pushed !== before,
      });
      // Seen merged for the first time: what was pushed has landed.
      if (pullRequest.state === 'merged' && story.landing.pullRequest?.state !== 'merged') {
        story.landing.mergedAt = new Date();
        story.landing.landedCommit = pushed;
        story.landing.landedAs = undefined;
      }
      story.landing.pullRequest = pullRequest;
      this.#context.saveLanding(story);
      this.#context.logger.info(`story ${story.storyId}: pull request ${pullRequest.url} (${pullRequest.state})`);
    });
  }

  /**
   * Removes the story's worktree (its uncommitted work committed first) and archives it; with
   * `deleteBranch`, its branch goes too, but only when its work is merged.
   * @throws AgentAlreadyRunningError, BranchNotMergedError (nothing changed).
   */
  archive(story: Story, deleteBranch: boolean, branch: string | undefined, worktreePath: string | undefined): Promise<void> {
    return this.#onStory(story, async () => {
      const { projectRoot, worktrees } = this.#context;
      const config = this.#context.loadConfig();
      // Its work is committed where it is before the worktree goes: on its branch, nowhere else.
      if (branch !== undefined && worktreePath !== undefined) await assertWorktreeOnBranch({ storyId: story.storyId, branch, worktreePath });
      const tip = branch === undefined ? undefined : await commitOf(projectRoot, `refs/heads/${branch}`);
      if (deleteBranch && tip !== undefined && !(await this.#isMerged(story, branch!, tip, worktreePath))) {
        throw new BranchNotMergedError(story.storyId, branch!, story.landing.baseBranch);
      }
      await this.#context.beforeWorktreeRemoval(story.storyId);
      await worktrees.remove(story.storyId, config.worktree);
      if (deleteBranch && tip !== undefined) {
        const { code, stderr } = await runGit(projectRoot, PLUMBING_CONFIG, ['update-ref', '-d', `refs/heads/${branch}`, tip]);
        if (code !== 0) this.#context.logger.warn(`story ${story.storyId}: its branch ${branch} could not be deleted: ${stderr.trim()}`);
        else {
          story.landing.branchDeleted = true;
        }
      }
      story.landing.archived = true;
      this.#context.saveLanding(story);
      this.#context.logger.info(`story ${story.storyId}: archived${deleteBranch && tip !== undefined ? `, its branch ${branch} deleted` : ''}`);
    });
  }

  /**
   * Whether deleting the story's branch loses nothing: no uncommitted work, and its tip
   * landed by mergeStory, in its target's history, or in its merged pull request.
   */
  async #isMerged(story: Story, branch: string, tip: string, worktreePath: string | undefined): Promise<boolean> {
    const { projectRoot } = this.#context;
    if (worktreePath !== undefined) {
      const { stdout } = await runGit(worktreePath, await safeConfig(worktreePath), ['--no-optional-locks', 'status', '--porcelain', '--untracked-files=all']);
      if (stdout.trim() !== '') return false;
    }
    const { landing } = story;
    // Landed, and what it landed as is still on a branch (a rebase of the target may have dropped it).
    if (landing.landedCommit === tip && landing.landedAs !== undefined && (await isOnAnotherBranch(projectRoot, landing.landedAs, branch))) return true;
    if (landing.pullRequest?.state === 'merged' && landing.pushedCommit === tip) return true;
    return landing.baseBranch !== undefined && (await isMergedInto(projectRoot, tip, landing.baseBranch));
  }

  async #openOrUpdate(
    story: Story,
    forge: Forge,
    request: { head: string; base: string; title?: string; body?: string; draft: boolean; pushedNew: boolean },
  ): Promise<PullRequestInfo> {
    const stored = story.landing.pullRequest;
    if (stored) {
      const now = await forge.get(stored.number);
      if (now.state === 'open') {
        const changes = { ...(request.title === undefined ? {} : { title: request.title }), ...(request.body === undefined ? {} : { body: request.body }) };
        return Object.keys(changes).length > 0 ? forge.update(stored.number, changes) : now;
      }
      // Merged, with nothing new to propose: it stays the story's pull request.
      if (now.state === 'merged' && !request.pushedNew) return now;
    }
    return forge.open({
      head: request.head,
      base: request.base,
      title: request.title ?? this.#defaultTitle(story),
      body: request.body ?? `Story ${story.storyId}, worked on by an agent in agent-pool.`,
      draft: request.draft,
    });
  }

  #noWorktree(story: Story, why: string): InvalidArgumentError {
    return new InvalidArgumentError(`story ${story.storyId} has no worktree (it is archived, or never started): ${why}. Start it again to make one`);
  }

  /** The branch to land on: `into` (which must exist), else the story's own. */
  async #target(story: Story, into: string | undefined): Promise<string> {
    if (into === undefined) {
      if (story.landing.baseBranch === undefined) throw new NoTargetBranchError(story.storyId, undefined);
      return story.landing.baseBranch;
    }
    const { code } = await runGit(this.#context.projectRoot, PLUMBING_CONFIG, ['check-ref-format', '--branch', into]);
    if (code !== 0 || into.startsWith('-')) throw new InvalidArgumentError(`into must name a local branch; ${JSON.stringify(into)} is not a branch name`);
    if ((await commitOf(this.#context.projectRoot, `refs/heads/${into}`)) === undefined) throw new NoTargetBranchError(story.storyId, into);
    // Another story's branch, while its agent works in it, is not a place to land.
    const working = this.#context.activeStoryOn(into);
    if (working !== undefined) throw new AgentAlreadyRunningError(working, 'RUNNING', `landing another story on its branch ${into}`);
    return into;
  }

  /** The story's title, else the first line of its first prompt, else its id. */
  #defaultTitle(story: Story): string {
    const prompt = story.runs.find((run) => run.renderedPrompt !== undefined)?.renderedPrompt;
    const firstLine = prompt?.split('\n').find((line) => line.trim() !== '')?.trim();
    const title = story.title ?? firstLine ?? story.storyId;
    return title.length > 200 ? `${title.slice(0, 199)}…` : title;
  }

  #defaultMessage(story: Story, strategy: MergeStrategy): string {
    const title = this.#defaultTitle(story);
    const subject = title === story.storyId ? story.storyId : `${story.storyId}: ${title}`;
    return strategy === 'MERGE' ? `Merge story ${subject}` : subject;
  }

  /** Runs `operation` alone on the story, refused while it has a run PENDING or RUNNING. */
  #onStory<T>(story: Story, operation: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new PoolClosedError());
    const run = async (): Promise<T> => {
      const latest = story.runs.at(-1)!;
      if (isActive(latest.status)) throw new AgentAlreadyRunningError(story.storyId, latest.status, 'landing, pushing or archiving it');
      return operation();
    };
    return queueOn(this.#storyQueues, story.storyId, run);
  }

  #onTarget<T>(target: string, operation: () => Promise<T>): Promise<T> {
    return queueOn(this.#targetQueues, target, operation);
  }
}

/** Runs `operation` after everything queued under `key`, and forgets the key once its queue is empty. */
function queueOn<T>(queues: Map<string, Promise<unknown>>, key: string, operation: () => Promise<T>): Promise<T> {
  const result = (queues.get(key) ?? Promise.resolve()).then(operation, operation);
  const tail = result.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return result;
}

/** Whether a commit is in the history of a local branch other than `branch` (the story's own, after a REBASE landing, always has it). */
async function isOnAnotherBranch(projectRoot: string, commit: string, branch: string): Promise<boolean> {
  const { code, stdout } = await runGit(projectRoot, PLUMBING_CONFIG, ['for-each-ref', '--contains', commit, '--format=%(refname)', 'refs/heads/']);
  return code === 0 && stdout.split('\n').some((ref) => ref.trim() !== '' && ref.trim() !== `refs/heads/${branch}`);
}

async function commitOf(projectRoot: string, revision: string): Promise<string | undefined> {
  const { code, stdout } = await runGit(projectRoot, PLUMBING_CONFIG, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${revision}^{commit}`]);
  return code === 0 ? stdout.trim() : undefined;
}

/** Moves `target` back from `from` to `to` (or deletes it, when it did not exist): in its checkout, keeping nothing of the landing. */
async function moveBack(projectRoot: string, target: string, from: string, to: string | undefined): Promise<void> {
  const checkout = await checkoutOfBranch(projectRoot, target);
  // Only a target still where the landing left it goes back (a run on it may have moved it since).
  if (checkout !== undefined && (await commitOf(checkout, 'HEAD')) !== from) throw new Error(`${target} moved again meanwhile`);
  const result =
    checkout !== undefined && to !== undefined
      ? await runGit(checkout, PLUMBING_CONFIG, ['reset', '--keep', '--quiet', to])
      : await runGit(projectRoot, PLUMBING_CONFIG, to === undefined ? ['update-ref', '-d', `refs/heads/${target}`, from] : ['update-ref', `refs/heads/${target}`, to, from]);
  if (result.code !== 0) throw new Error(result.stderr.trim() || `git exited with ${result.code}`);
}
