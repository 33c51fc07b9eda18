import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SimpleGit } from 'simple-git';
import type { WorktreeConfig } from '../config/config.js';
import { type Placeholder, placeholderVariable, renderShellTemplate } from '../config/placeholders.js';
import { excludeFromGit, STATE_DIR_NAME } from './project.js';
import { FALLBACK_IDENTITY, type GitIdentity } from './landing.js';
import { gitWith, plumbingGit, runGit, SafeConfigCache, safeConfig } from './safe-git.js';
import type { StoryWork } from './story-changes.js';
import { assertValidStoryId } from './story-id.js';

/** A story's worktree, ready for its agent. */
/**
 * Runs one setup command (for `sh -c`) in `cwd` to its exit, with `variables` added to its
 * environment (each placeholder's value, `AGENT_POOL_WORKTREE_PATH` and so on); throws when it fails.
 */
export type SetupRunner = (command: string, cwd: string, variables: Record<string, string>) => Promise<void>;

export interface StoryWorktree {
  storyId: string;
  /** Absolute path of the worktree. */
  path: string;
  /** The story's branch, checked out in the worktree. */
  branch: string;
  /** Whether this call made the worktree (false: an existing one was reused). */
  created: boolean;
  /**
   * Set when this call made the story's branch: the branch it targets (`[worktree] base`
   * if that names a branch, else the branch HEAD is on; null for a detached HEAD), known
   * once recorded in the background.
   */
  baseBranch?: Promise<string | null>;
}

/** The story's worktree cannot be made; the message says why and what to do. */
export class WorktreeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WorktreeError';
  }
}

/** What removing a worktree did. */
export interface RemovedWorktree {
  /** The commit that saved uncommitted work on the story's branch, if there was any. */
  savedCommit: string | undefined;
  /** Whether there was a worktree to remove. */
  removed: boolean;
}

/** The file, in a worktree's private git dir, that says its setup succeeded. */
const SETUP_DONE_FILE = 'agent-pool-setup-done';


/** The ref that records the commit a story's branch started from. */
export function baseRef(storyId: string): string {
  return `refs/agent-pool/base/${storyId}`;
}

function gitMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.trim().replace(/^fatal: /m, '');
}

/**
 * The git worktrees of one project: one per story, at `<worktree.dir>/<storyId>` on the
 * branch `<branch_prefix><storyId>`. Every git call goes through simple-git with argument
 * arrays; nothing is interpolated into a command string.
 */
export class Worktrees {
  readonly #recordingBase = new Map<string, Promise<void>>();
  /** The target branch of each branch made by this server, until its story reads it. */
  readonly #baseBranches = new Map<string, Promise<string | null>>();
  /** The tail of the queue of worktree changes (see {@link Worktrees.#changeWorktrees}). */
  #worktreeChanges: Promise<unknown> = Promise.resolve();
  #commonDir: string | undefined;
  #excluded = new Set<string>();

  readonly #git: SimpleGit;
  /** The overrides that disarm the repository's configuration, for the checkouts made at the root. */
  readonly #safeConfig: SafeConfigCache;

  /** @param projectRoot the top level of the project's main work tree. */
  constructor(readonly projectRoot: string) {
    this.#git = plumbingGit(projectRoot);
    this.#safeConfig = new SafeConfigCache(projectRoot, async () => {
      const commonDir = await this.#gitCommonDir();
      return [path.join(commonDir, 'config'), path.join(commonDir, 'config.worktree')];
    });
  }

  /** The absolute path of a story's worktree. */
  pathOf(storyId: string, config: WorktreeConfig): string {
    return path.resolve(this.projectRoot, config.dir, storyId);
  }

  /** The branch of a story. */
  branchOf(storyId: string, config: WorktreeConfig): string {
    return `${config.branch_prefix}${storyId}`;
  }

  /**
   * Whether git already has a worktree folder or a branch for the story: work a start would
   * take up as the story's own.
   */
  async hasWork(storyId: string, config: WorktreeConfig): Promise<boolean> {
    assertValidStoryId(storyId);
    if (existsSync(this.pathOf(storyId, config))) return true;
    return this.#git.raw(['show-ref', '--verify', `refs/heads/${this.branchOf(storyId, config)}`]).then(
      () => true,
      () => false,
    );
  }

  /**
   * Makes sure the story has its worktree on its branch, then runs the `setup` commands if
   * they have not yet succeeded in this worktree. An existing worktree or branch is
   * reused as it is: the agent's earlier work, committed or not, is never reset.
   * @param options.runSetup runs one setup command (rendered, its placeholders quoted for
   *   `sh`) in the worktree to its exit, and throws when it fails: the run's supervisor,
   *   which owns every process of the run. Required when the config has setup commands.
   * @param options.beforeSetup called with the worktree once it exists, before setup runs.
   * @throws InvalidStoryIdError before git is touched; WorktreeError when git refuses;
   *   whatever `runSetup` throws (setup runs again next time).
   */
  async ensure(
    storyId: string,
    config: WorktreeConfig,
    options: { runSetup?: SetupRunner; beforeSetup?: (worktree: StoryWorktree) => void } = {},
  ): Promise<StoryWorktree> {
    assertValidStoryId(storyId);
    const worktreePath = this.pathOf(storyId, config);
    const branch = this.branchOf(storyId, config);
    await this.#excludeStateDirs(config);

    const created = !(await this.#isWorktreeOfThisProject(worktreePath));
    if (created) await this.#addWorktree(storyId, worktreePath, branch, config.base);
    else await this.#baseCommit(storyId, branch, config.base);

    const worktree: StoryWorktree = { storyId, path: worktreePath, branch, created };
    const baseBranch = this.#baseBranches.get(storyId);
    if (baseBranch) {
      this.#baseBranches.delete(storyId);
      worktree.baseBranch = baseBranch;
    }
    options.beforeSetup?.(worktree);
    await this.#runSetupOnce(worktree, config, options);
    return worktree;
  }

  /**
   * Removes a story's worktree without losing work: uncommitted changes (tracked and
   * untracked, not ignored) are first committed to the story's branch, and the branch
   * stays. A story without a worktree is left as it is.
   */
  async remove(storyId: string, config: WorktreeConfig): Promise<RemovedWorktree> {
    assertValidStoryId(storyId);
    const worktreePath = this.pathOf(storyId, config);
    if (!(await this.#isWorktreeOfThisProject(worktreePath))) {
      await this.#changeWorktrees(() => this.#git.raw(['worktree', 'prune']));
      return { savedCommit: undefined, removed: false };
    }
    await this.#recordingBase.get(storyId);
    const savedCommit = await this.#saveUncommittedWork(storyId, worktreePath, 'on worktree removal');
    await this.#changeWorktrees(async () => {
      // --force: what is left is ignored files only (build output, dependencies).
      await this.#git.raw(['worktree', 'remove', '--force', worktreePath]);
      await this.#git.raw(['worktree', 'prune']);
    });
    return { savedCommit, removed: true };
  }

  /**
   * Makes a story's branch, made elsewhere (another runner of a cluster), readable here:
   * its base commit is recorded (its merge base with `base`) unless it is already.
   */
  async adoptBranch(storyId: string, branch: string, base: string): Promise<void> {
    assertValidStoryId(storyId);
    await this.#recordingBase.get(storyId);
    await this.#baseCommit(storyId, branch, base);
  }

  /** The commit a story's branch started from, if the story has a branch. */
  async baseCommitOf(storyId: string): Promise<string | undefined> {
    assertValidStoryId(storyId);
    await this.#recordingBase.get(storyId);
    return this.#commitOf(baseRef(storyId));
  }

  /**
   * Where a story's work is, for its changes, diff and commits: its base commit, its branch,
   * and its worktree if it is still there. Undefined when the story has no base commit (its
   * worktree was never made).
   */
  async storyWork(storyId: string, branch: string, worktreePath: string | undefined): Promise<StoryWork | undefined> {
    const baseCommit = await this.baseCommitOf(storyId);
    if (baseCommit === undefined) return undefined;
    // An archived story's branch may have been deleted: there is no work to read.
    if ((await this.#commitOf(`refs/heads/${branch}`)) === undefined) return undefined;
    const present = worktreePath !== undefined && (await this.#isWorktreeOfThisProject(worktreePath).catch(() => false));
    return { storyId, branch, baseCommit, worktreePath: present ? worktreePath : undefined };
  }

  /** Resolves once every base ref being written in the background is written. */
  async settled(): Promise<void> {
    await Promise.all(this.#recordingBase.values());
  }

  /**
   * The commit a revision names, or undefined. Never `--quiet`: simple-git waits 50 ms
   * after a git command that prints nothing, and a failing rev-parse prints its reason.
   */
  async #commitOf(revision: string): Promise<string | undefined> {
    const sha = await this.#git.raw(['rev-parse', '--verify', '--end-of-options', `${revision}^{commit}`]).then(
      (out) => out.trim(),
      () => '',
    );
    return sha || undefined;
  }

  async #excludeStateDirs(config: WorktreeConfig): Promise<void> {
    const patterns = [`/${STATE_DIR_NAME}/`];
    const relative = path.relative(this.projectRoot, path.resolve(this.projectRoot, config.dir));
    const insideProject = relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
    if (insideProject && !relative.split(path.sep).includes(STATE_DIR_NAME)) {
      patterns.push(`/${relative.split(path.sep).join('/')}/`);
    }
    const todo = patterns.filter((pattern) => !this.#excluded.has(pattern));
    if (todo.length === 0) return;
    await excludeFromGit(this.projectRoot, todo);
    for (const pattern of todo) this.#excluded.add(pattern);
  }

  async #gitCommonDir(): Promise<string> {
    this.#commonDir ??= path.resolve(this.projectRoot, (await this.#git.raw(['rev-parse', '--git-common-dir'])).trim());
    return this.#commonDir;
  }

  /** The private git dir of a worktree, read from its `.git` file (no git call). */
  async #worktreeGitDir(worktreePath: string): Promise<string | undefined> {
    const dotGit = await readFile(path.join(worktreePath, '.git'), 'utf8').catch(() => undefined);
    const match = dotGit && /^gitdir: (.+)$/m.exec(dotGit);
    return match ? path.resolve(worktreePath, match[1]!.trim()) : undefined;
  }

  /**
   * Whether `worktreePath` is a worktree of this project. A path that exists but is
   * something else is an error: agent-pool never writes into a folder it did not make.
   */
  async #isWorktreeOfThisProject(worktreePath: string): Promise<boolean> {
    const exists = await stat(worktreePath).then(
      (s) => s,
      () => undefined,
    );
    if (!exists) return false;
    const gitDir = await this.#worktreeGitDir(worktreePath);
    const worktreesDir = path.join(await this.#gitCommonDir(), 'worktrees') + path.sep;
    if (gitDir?.startsWith(worktreesDir) && existsSync(gitDir)) return true;
    throw new WorktreeError(
      `the worktree path ${worktreePath} is occupied by a folder that is not a git worktree of this project: ` +
        'move that folder away, or set [worktree] dir in agent-pool.toml to another place',
    );
  }

  /**
   * Adds the worktree on the story's branch, made from `base` if it does not exist yet.
   * A new story costs one git call before its agent can start: `worktree add -b`.
   */
  async #addWorktree(storyId: string, worktreePath: string, branch: string, base: string): Promise<void> {
    try {
      await this.#addWorktreeWith(['-b', branch, worktreePath, base]);
      this.#recordBase(storyId, branch, base);
      return;
    } catch (error) {
      if (!/a branch named .* already exists/.test(gitMessage(error))) {
        await this.#resolveBase(base); // throws what is wrong with base, if that is it
        throw this.#addError(storyId, error);
      }
    }
    try {
      // The story's branch exists (a rerun after its worktree was removed): check it out.
      await this.#addWorktreeWith([worktreePath, branch]);
    } catch (error) {
      throw this.#addError(storyId, error);
    }
    await this.#baseCommit(storyId, branch, base);
  }

  async #addWorktreeWith(args: string[]): Promise<void> {
    // A checkout: it runs filters and hooks, so the repository's configuration is disarmed first.
    const git = gitWith(this.projectRoot, await this.#safeConfig.get());
    await this.#changeWorktrees(() =>
      git.raw(['worktree', 'add', ...args]).catch(async (error: unknown) => {
        // A worktree folder deleted by hand stays registered until pruned.
        if (!/already registered/.test(gitMessage(error))) throw error;
        await this.#git.raw(['worktree', 'prune']);
        await git.raw(['worktree', 'add', ...args]);
      }),
    );
  }

  /**
   * Runs one change to the repository's worktree list at a time. git does not make
   * `worktree add` safe against another one running: it reads the half-written entry of
   * the other ("failed to read .git/worktrees/<name>/commondir"), measured here with eight
   * stories starting at once.
   */
  #changeWorktrees<T>(change: () => Promise<T>): Promise<T> {
    const result = this.#worktreeChanges.then(change, change);
    this.#worktreeChanges = result.catch(() => undefined);
    return result;
  }

  #addError(storyId: string, error: unknown): WorktreeError {
    return new WorktreeError(`git could not create the worktree of story ${storyId}: ${gitMessage(error)}`, {
      cause: error,
    });
  }

  /**
   * Records the commit a new branch starts from in `refs/agent-pool/base/<id>`, while the
   * agent starts: the branch was made a moment ago and nothing has committed on it yet
   * (setup commands wait for this), and `update-ref` prints nothing, after which
   * simple-git waits 50 ms: on the way to the start that would double its time. Every
   * reader of the ref waits for the write first. The branch the story lands on (see
   * {@link StoryWorktree.baseBranch}) is worked out beside it, and {@link settled} waits for both.
   */
  #recordBase(storyId: string, branch: string, base: string): void {
    const baseBranch = this.#branchNamed(base).catch(() => null);
    this.#baseBranches.set(storyId, baseBranch);
    const recording = this.#commitOf(`refs/heads/${branch}`)
      .then(async (commit) => {
        if (commit !== undefined) await this.#git.raw(['update-ref', baseRef(storyId), commit]);
      })
      // Without the ref, readers fall back to the branch's merge base with `base`.
      .catch(() => undefined)
      .then(() => baseBranch)
      .then(() => undefined)
      .finally(() => this.#recordingBase.delete(storyId));
    this.#recordingBase.set(storyId, recording);
  }

  /**
   * The branch a story made from `base` lands on: `base` if it names a branch, else the
   * branch the project's HEAD is on; null when HEAD is detached.
   */
  async #branchNamed(base: string): Promise<string | null> {
    if (base !== 'HEAD') {
      const name = base.startsWith('refs/heads/') ? base.slice('refs/heads/'.length) : base;
      if ((await this.#commitOf(`refs/heads/${name}`)) !== undefined) return name;
    }
    // Prints nothing for a detached HEAD, and fails: the null below.
    const head = await this.#git.raw(['symbolic-ref', '-q', 'HEAD']).then(
      (out) => out.trim(),
      () => '',
    );
    return head.startsWith('refs/heads/') ? head.slice('refs/heads/'.length) : null;
  }

  /**
   * Commits what the agent left uncommitted in a story's worktree (tracked and untracked,
   * not ignored) to its branch, before its work lands or is pushed.
   * @param why the end of the commit's message: "save uncommitted work of story <id> <why>".
   * @returns the new commit, or undefined when there was nothing to commit (or no worktree).
   */
  async saveWork(storyId: string, worktreePath: string, why: string): Promise<string | undefined> {
    assertValidStoryId(storyId);
    if (!(await this.#isWorktreeOfThisProject(worktreePath))) return undefined;
    await this.#recordingBase.get(storyId);
    return this.#saveUncommittedWork(storyId, worktreePath, why);
  }

  /** The identity commits agent-pool makes carry: git's configured one, else agent-pool's own. */
  async identity(): Promise<GitIdentity> {
    return this.#configuredIdentity(this.#git);
  }

  async #resolveBase(base: string): Promise<string> {
    const sha = await this.#commitOf(base);
    if (sha === undefined) {
      const hasCommits = (await this.#commitOf('HEAD')) !== undefined;
      if (!hasCommits) {
        throw new WorktreeError(
          'the repository has no commits yet, so a story branch has nothing to start from: make a first commit',
        );
      }
      throw new WorktreeError(
        `[worktree] base ${JSON.stringify(base)} does not resolve to a commit: set it in agent-pool.toml to a branch, tag or commit that exists`,
      );
    }
    return sha;
  }

  /** The recorded base commit; for a branch agent-pool did not make, its merge base with `base`. */
  async #baseCommit(storyId: string, branch: string, base: string): Promise<string> {
    const recorded = await this.baseCommitOf(storyId);
    if (recorded) return recorded;
    const mergeBase = await this.#git
      .raw(['merge-base', '--end-of-options', branch, `${base}^{commit}`])
      .then((sha) => sha.trim())
      .catch(() => '');
    const baseCommit = mergeBase || (await this.#git.raw(['rev-parse', '--verify', `${branch}^{commit}`])).trim();
    await this.#git.raw(['update-ref', baseRef(storyId), baseCommit]);
    return baseCommit;
  }

  async #runSetupOnce(worktree: StoryWorktree, config: WorktreeConfig, options: { runSetup?: SetupRunner }): Promise<void> {
    if (config.setup.length === 0) return;
    const runSetup = options.runSetup;
    if (!runSetup) throw new Error('the worktree has setup commands, and nothing was given to run them');
    // A setup command may commit: the base must be recorded before.
    await this.#recordingBase.get(worktree.storyId);
    const gitDir = await this.#worktreeGitDir(worktree.path);
    const doneFile = gitDir && path.join(gitDir, SETUP_DONE_FILE);
    if (doneFile && existsSync(doneFile)) return;
    const values = {
      story_id: worktree.storyId,
      worktree_path: worktree.path,
      branch: worktree.branch,
      project_root: this.projectRoot,
    };
    const variables = Object.fromEntries(Object.entries(values).map(([name, value]) => [placeholderVariable(name as Placeholder), value]));
    for (const template of config.setup) await runSetup(renderShellTemplate(template), worktree.path, variables);
    if (doneFile) await writeFile(doneFile, `${new Date().toISOString()}\n`);
  }

  /**
   * Commits everything uncommitted in the worktree (tracked and untracked, not ignored) to
   * its branch. git is run directly, not through simple-git, which waits 50 ms after each
   * git that prints nothing (`add`, `commit --quiet`); and with `--work-tree` (see landing.ts).
   */
  async #saveUncommittedWork(storyId: string, worktreePath: string, why: string): Promise<string | undefined> {
    const config = await safeConfig(worktreePath);
    const git = async (args: string[]): Promise<string> => {
      const result = await runGit(worktreePath, config, [`--work-tree=${worktreePath}`, ...args]);
      if (result.code !== 0) throw new WorktreeError(`git ${args[0]} failed in ${worktreePath}: ${result.stderr.trim()}`);
      return result.stdout;
    };
    const status = await git(['status', '--porcelain', '--untracked-files=all']);
    if (status.trim() === '') return undefined;
    await git(['add', '--all']);
    const identity = await this.identity();
    await git([
      '-c',
      `user.name=${identity.name}`,
      '-c',
      `user.email=${identity.email}`,
      '-c',
      'commit.gpgsign=false',
      'commit',
      '--no-verify',
      '--quiet',
      '-m',
      `agent-pool: save uncommitted work of story ${storyId} ${why}`,
    ]);
    return (await git(['rev-parse', 'HEAD'])).trim();
  }

  /** The configured git identity, or agent-pool's own where the machine has none. */
  async #configuredIdentity(git: SimpleGit): Promise<GitIdentity> {
    const read = (key: string): Promise<string> =>
      git.raw(['config', '--get', key]).then(
        (value) => value.trim(),
        () => '',
      );
    const [name, email] = await Promise.all([read('user.name'), read('user.email')]);
    return { name: name || FALLBACK_IDENTITY.name, email: email || FALLBACK_IDENTITY.email };
  }
}
