import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentPoolError } from '../errors.js';
import { PLUMBING_CONFIG, runGit, safeConfig } from './safe-git.js';
import { scratchEnv, type StoryWork } from './story-changes.js';

/**
 * Landing a story's work on a target branch: checks (ahead, behind, conflicts), merges
 * (MERGE, SQUASH), rebases and the move of the target. Git 2.39 has `merge-tree
 * --write-tree` but not its `--merge-base`: a merge against a chosen base is computed on
 * three commits made for it (the base's tree, and each side's tree with that one parent),
 * which is what `--merge-base` does inside git.
 *
 * A check writes nothing to the repository: the story's state (its uncommitted work too)
 * becomes a temporary commit, and every object a check makes goes to a throwaway object
 * directory (`GIT_OBJECT_DIRECTORY`, the repository's objects as an alternate). Only an
 * operation that goes ahead commits the agent's uncommitted work and moves refs.
 */

/** How a story's work lands: one squashed commit, a merge commit, or its commits replayed. */
export type MergeStrategy = 'MERGE' | 'SQUASH' | 'REBASE';

/** Where a story's work is, and where it last landed. */
export interface LandingWork extends StoryWork {
  /** The story's commit that its last landing took in, if it ever landed. */
  landedCommit: string | undefined;
}

/** How a story stands against its target. */
export interface LandingStatus {
  /** Story commits since its work last landed (all of them before any landing). */
  aheadBy: number;
  /** Commits on the target the story's branch lacks. */
  behindBy: number;
  /** Files that would conflict merging the story's whole work (committed or not) now. */
  conflicts: string[];
}

/** The identity of the commits a landing makes. */
export interface GitIdentity {
  name: string;
  email: string;
}

/** The identity agent-pool's commits carry where git has none configured. */
export const FALLBACK_IDENTITY: GitIdentity = { name: 'agent-pool', email: 'agent-pool@localhost' };

/** Merging would conflict; nothing was changed. */
export class MergeConflictError extends AgentPoolError {
  /** @param replaying whether the conflict came from replaying its commits (REBASE, rebaseStory), not from one merge. */
  constructor(storyId: string, target: string, files: string[], replaying = false) {
    super(
      'MERGE_CONFLICT',
      `story ${storyId} conflicts with ${target} in ${files.length} file(s) (${files.slice(0, 10).join(', ')}${files.length > 10 ? ', …' : ''}) ` +
        `${replaying ? `replaying its commits onto ${target}` : `merging it into ${target}`}: nothing was changed. ` +
        `Continue the story with a prompt that asks its agent to merge ${target} into its branch and resolve them, then land it again` +
        (replaying ? ' (or land it with SQUASH or MERGE, which may not conflict where a commit-by-commit replay does)' : ''),
      { extensions: { storyId, target, files } },
    );
  }
}

/** The story's worktree is not on its branch, or has a merge or rebase of its own under way; nothing was changed. */
export class StoryWorktreeBusyError extends AgentPoolError {
  constructor(storyId: string, worktreePath: string, why: string) {
    super(
      'STORY_WORKTREE_BUSY',
      `story ${storyId}'s worktree at ${worktreePath} ${why}: nothing was changed. Finish or abort that there (or continue the story and ask its agent to), then try again`,
      { extensions: { storyId, worktreePath } },
    );
  }
}

/** A merge, rebase, cherry-pick, revert or bisect under way in a worktree, by the file git keeps for it in its git dir. */
const OPERATIONS_IN_PROGRESS = [
  ['MERGE_HEAD', 'a merge'],
  ['rebase-merge', 'a rebase'],
  ['rebase-apply', 'a rebase'],
  ['CHERRY_PICK_HEAD', 'a cherry-pick'],
  ['REVERT_HEAD', 'a revert'],
  ['BISECT_LOG', 'a bisect'],
  ['sequencer', 'a cherry-pick or revert of several commits'],
] as const;

/** The operation under way in a worktree (its git dir), if one is. */
function operationInProgress(gitDir: string): string | undefined {
  return OPERATIONS_IN_PROGRESS.find(([file]) => existsSync(path.join(gitDir, file)))?.[1];
}

/**
 * Refuses to land, push or archive a story whose worktree is not on its branch (a detached
 * HEAD, another branch) or has an operation of its own under way: committing its work
 * there would put it beside the branch, and aborting would lose it.
 * @throws StoryWorktreeBusyError.
 */
export async function assertWorktreeOnBranch(work: Pick<StoryWork, 'storyId' | 'branch' | 'worktreePath'>, signal?: AbortSignal): Promise<void> {
  if (work.worktreePath === undefined) return;
  const gitDir = await worktreeGitDir(work.worktreePath);
  const operation = operationInProgress(gitDir);
  if (operation) throw new StoryWorktreeBusyError(work.storyId, work.worktreePath, `has ${operation} in progress`);
  const git = new Git(work.worktreePath, PLUMBING_CONFIG, undefined, signal);
  const { code, stdout } = await git.run(['symbolic-ref', '--quiet', 'HEAD'], [0, 1, 128]);
  const head = code === 0 ? stdout.trim() : undefined;
  if (head !== `refs/heads/${work.branch}`) {
    throw new StoryWorktreeBusyError(
      work.storyId,
      work.worktreePath,
      head === undefined ? `is on a detached HEAD, not on its branch ${work.branch}` : `has ${head.replace(/^refs\/heads\//, '')} checked out, not its branch ${work.branch}`,
    );
  }
}

/**
 * Why a target's checkout is not clean: changes to tracked files, a merge (rebase,
 * cherry-pick, revert) in progress, or files where the landing writes.
 */
export type DirtyReason = 'UNCOMMITTED_CHANGES' | 'OPERATION_IN_PROGRESS' | 'FILES_IN_THE_WAY';

/** What to do about each reason. */
const DIRTY_ADVICE: Readonly<Record<DirtyReason, string>> = {
  UNCOMMITTED_CHANGES: 'Commit or stash them there',
  OPERATION_IN_PROGRESS: 'Finish or abort it there',
  FILES_IN_THE_WAY: 'Move them away (git stash -u takes untracked files, -a ignored ones too)',
};

/** The target's checkout has changes a landing could overwrite or mix in; nothing was changed. */
export class TargetDirtyError extends AgentPoolError {
  constructor(storyId: string, target: string, checkout: string, files: string[], reason: DirtyReason, why: string) {
    super(
      'TARGET_DIRTY',
      `${target} is checked out at ${checkout}, which ${why}: nothing was changed. ${DIRTY_ADVICE[reason]}, then merge story ${storyId} again`,
      { extensions: { storyId, target, checkout, files, reason } },
    );
  }
}

/** The story has nothing its target lacks. */
export class NothingToMergeError extends AgentPoolError {
  constructor(storyId: string, target: string) {
    super('NOTHING_TO_MERGE', `story ${storyId} has nothing ${target} does not already have: there is nothing to merge`, {
      extensions: { storyId, target },
    });
  }
}

/** The story has no target branch, or the one named does not exist. */
export class NoTargetBranchError extends AgentPoolError {
  constructor(storyId: string, into: string | undefined) {
    super(
      'NO_TARGET_BRANCH',
      into === undefined
        ? `story ${storyId} has no target branch (it started from a detached HEAD, or before targets were recorded): name one with into`
        : `there is no branch ${JSON.stringify(into)} to land story ${storyId} on: name an existing local branch with into`,
      { extensions: { storyId, ...(into === undefined ? {} : { into }) } },
    );
  }
}

/** Something moved the target or the story while it landed; nothing of the landing was lost. */
export class LandingRaceError extends AgentPoolError {
  constructor(storyId: string, what: string) {
    super('LANDING_RACE', `${what} while story ${storyId} was landing, so it did not land: try again`, { extensions: { storyId } });
  }
}

/** git failed in a way no check foresaw; the message says what git said. */
export class LandingGitError extends Error {
  constructor(what: string, stderr: string) {
    super(`git ${what} failed: ${stderr.trim().replace(/^fatal: /m, '')}`);
    this.name = 'LandingGitError';
  }
}

/**
 * A git in one directory with one environment (real, or a scratch object directory). A git
 * in a work tree (`inWorkTree`) is told it with `--work-tree`: a `core.worktree` in the
 * repository's configuration, which an agent can set (and `-c` does not override), would
 * otherwise have it read and write files elsewhere.
 */
class Git {
  constructor(
    readonly dir: string,
    readonly config: readonly string[],
    readonly env: Record<string, string> | undefined,
    readonly signal: AbortSignal | undefined,
    readonly inWorkTree = false,
  ) {}

  /** Runs git; a non-zero exit throws unless `codes` allows it. */
  async run(args: string[], codes: number[] = [0], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const full = this.inWorkTree ? [`--work-tree=${this.dir}`, ...args] : args;
    const result = await runGit(this.dir, this.config, full, { env: this.env, signal: this.signal, input });
    if (!codes.includes(result.code)) throw new LandingGitError(args[0]!, result.stderr || `exit ${result.code}`);
    return result;
  }

  async text(args: string[]): Promise<string> {
    return (await this.run(args)).stdout.trim();
  }

  /** What each revision names (`<rev>^{commit}`, `<rev>^{tree}`…), undefined where nothing: one git for all of them. */
  async lookup(revisions: readonly string[]): Promise<(string | undefined)[]> {
    const todo = revisions.filter((revision) => !this.#known.has(revision));
    if (todo.length > 0) {
      // Names are given on stdin, one per line: a name with a newline names nothing.
      const asked = todo.filter((revision) => !revision.includes('\n'));
      const { stdout } = await this.run(['cat-file', '--batch-check=%(objectname)'], [0], asked.map((revision) => `${revision}\n`).join(''));
      const answers = stdout.split('\n');
      asked.forEach((revision, i) => {
        const answer = answers[i]?.trim() ?? '';
        const found = /^[0-9a-f]{40,64}$/.test(answer) ? answer : undefined;
        // What an object id names never changes; what a ref names may.
        if (/^[0-9a-f]{40,64}\^\{(tree|commit)\}$/.test(revision)) this.#known.set(revision, found);
        else this.#once.set(revision, found);
      });
    }
    return revisions.map((revision) => {
      if (this.#known.has(revision)) return this.#known.get(revision);
      const found = this.#once.get(revision);
      this.#once.delete(revision);
      return found;
    });
  }

  readonly #known = new Map<string, string | undefined>();
  readonly #once = new Map<string, string | undefined>();

  async commitOf(revision: string): Promise<string | undefined> {
    return (await this.lookup([`${revision}^{commit}`]))[0];
  }

  /** A ref's commit and its tree, in one git call; undefined when the ref names no commit. */
  async tipOf(ref: string): Promise<{ commit: string; tree: string } | undefined> {
    const [commit, tree] = await this.lookup([`${ref}^{commit}`, `${ref}^{tree}`]);
    if (commit === undefined || tree === undefined) return undefined;
    this.#known.set(`${commit}^{tree}`, tree);
    return { commit, tree };
  }

  async treeOf(commit: string): Promise<string> {
    const [tree] = await this.lookup([`${commit}^{tree}`]);
    if (tree === undefined) throw new LandingGitError('cat-file', `${commit} names no tree`);
    return tree;
  }

  async isAncestor(ancestor: string, of: string): Promise<boolean> {
    return (await this.run(['merge-base', '--is-ancestor', ancestor, of], [0, 1])).code === 0;
  }

  count(range: string[]): Promise<number> {
    return this.text(['rev-list', '--count', ...range, '--']).then(Number);
  }
}

/** The result of a three-way merge of trees: the merged tree, or the conflicting files. */
type TreeMerge = { tree: string } | { conflicts: string[] };

/**
 * Merges `ours` and `theirs` (trees) against `base` (a tree) as `merge-tree --write-tree
 * --merge-base` would: on three commits made for it. A side that did not change takes the
 * other whole, with no git call.
 */
async function mergeTrees(git: Git, base: string, ours: string, theirs: string): Promise<TreeMerge> {
  if (ours === base || ours === theirs) return { tree: theirs };
  if (theirs === base) return { tree: ours };
  const baseCommit = await commitTreeWith(git, base, [], 'base');
  const [oursCommit, theirsCommit] = await Promise.all([
    commitTreeWith(git, ours, [baseCommit], 'ours'),
    commitTreeWith(git, theirs, [baseCommit], 'theirs'),
  ]);
  const { code, stdout } = await git.run(['merge-tree', '--write-tree', '--name-only', '--no-messages', '-z', oursCommit, theirsCommit], [0, 1]);
  const [tree, ...files] = stdout.split('\0').filter((part) => part !== '');
  if (code === 0) return { tree: tree! };
  return { conflicts: [...new Set(files)] };
}

/** `commit-tree` with the message on stdin (never parsed as an option). */
async function commitTreeWith(git: Git, tree: string, parents: string[], message: string, identity: GitIdentity = FALLBACK_IDENTITY): Promise<string> {
  const { stdout } = await git.run(
    ['-c', `user.name=${identity.name}`, '-c', `user.email=${identity.email}`, 'commit-tree', tree, ...parents.flatMap((parent) => ['-p', parent])],
    [0],
    message.endsWith('\n') ? message : `${message}\n`,
  );
  return stdout.trim();
}

/** A throwaway object directory (and index) over a repository's objects, removed by `dispose`. */
class Scratch {
  private constructor(
    readonly dir: string,
    readonly env: Record<string, string>,
    readonly objects: string,
  ) {}

  static async open(repositoryObjects: string): Promise<Scratch> {
    const dir = await mkdtemp(path.join(tmpdir(), 'agent-pool-landing-'));
    const objects = path.join(dir, 'objects');
    await mkdir(objects);
    return new Scratch(dir, scratchEnv({ indexFile: path.join(dir, 'index'), objects, repositoryObjects }), objects);
  }

  /**
   * Copies the objects made here into the repository's object directory, so that what a
   * check computed can be kept by the operation that follows it (objects are named by
   * their content: an object already there is the same).
   */
  async keepIn(repositoryObjects: string): Promise<void> {
    for (const fanout of await readdir(this.objects)) {
      if (!/^[0-9a-f]{2}$/.test(fanout)) continue;
      const into = path.join(repositoryObjects, fanout);
      await mkdir(into, { recursive: true });
      for (const name of await readdir(path.join(this.objects, fanout))) {
        const target = path.join(into, name);
        if (existsSync(target)) continue;
        await copyFile(path.join(this.objects, fanout, name), target).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
      }
    }
  }

  dispose(): Promise<void> {
    return rm(this.dir, { recursive: true, force: true });
  }
}

/** Where a repository keeps its objects and its worktrees' git dirs. */
interface Repository {
  root: string;
  commonDir: string;
  objects: string;
}

/** Each project's repository, found once: where a project's git keeps its objects does not change. */
const repositories = new Map<string, Promise<Repository>>();

function repositoryOf(projectRoot: string, signal?: AbortSignal): Promise<Repository> {
  let repository = repositories.get(projectRoot);
  if (!repository) {
    const git = new Git(projectRoot, PLUMBING_CONFIG, undefined, signal);
    repository = git.text(['rev-parse', '--git-common-dir']).then((dir) => {
      const commonDir = path.resolve(projectRoot, dir);
      return { root: projectRoot, commonDir, objects: path.join(commonDir, 'objects') };
    });
    repositories.set(projectRoot, repository);
    repository.catch(() => repositories.delete(projectRoot));
  }
  return repository;
}

/** The git dir of a work tree: its `.git` folder, or the one its `.git` file names (no git call). */
async function worktreeGitDir(worktreePath: string): Promise<string> {
  const dotGitPath = path.join(worktreePath, '.git');
  if ((await lstat(dotGitPath).catch(() => undefined))?.isDirectory()) return dotGitPath;
  const dotGit = await readFile(dotGitPath, 'utf8').catch(() => '');
  const match = /^gitdir: (.+)$/m.exec(dotGit);
  if (!match) throw new LandingGitError('rev-parse', `${worktreePath} is not a git worktree`);
  return path.resolve(worktreePath, match[1]!.trim());
}

/**
 * The commit of a story's state: its branch's tip, or, with uncommitted work (tracked or
 * untracked, not ignored) in its worktree, a commit of everything in it on top of the tip,
 * made in the scratch directory. The agent's own index is never touched: a copy is used.
 */
async function stateCommit(work: StoryWork, scratch: Scratch, git: Git, signal?: AbortSignal): Promise<{ tip: string; state: string }> {
  const branch = await git.tipOf(`refs/heads/${work.branch}`);
  if (branch === undefined) throw new LandingGitError('rev-parse', `the story's branch ${work.branch} does not exist`);
  const tip = branch.commit;
  if (work.worktreePath === undefined) return { tip, state: tip };
  const [worktreeConfig, gitDir] = await Promise.all([safeConfig(work.worktreePath, { signal }), worktreeGitDir(work.worktreePath)]);
  const inWorktree = new Git(work.worktreePath, worktreeConfig, scratch.env, signal, true);
  // A copy of the real index keeps git's stat cache (see withEverythingStaged).
  const realIndex = path.join(gitDir, 'index');
  await copyFile(realIndex, scratch.env.GIT_INDEX_FILE!)
    .then(async () => {
      const { atime, mtime } = await stat(realIndex);
      await utimes(scratch.env.GIT_INDEX_FILE!, atime, mtime);
    })
    .catch(() => undefined);
  await inWorktree.run(['add', '--all']);
  const tree = await inWorktree.text(['write-tree']);
  if (tree === (await git.treeOf(tip))) return { tip, state: tip };
  return { tip, state: await commitTreeWith(git, tree, [tip], `agent-pool: uncommitted work of story ${work.storyId}`) };
}

/**
 * The commit the story's work since its last landing starts from: the merge base of the
 * target and the state, or, when the story's last landing is newer than that (a squash
 * leaves no common history), the commit that landing took in.
 */
async function landingBase(git: Git, target: string, state: string, landedCommit: string | undefined): Promise<string> {
  const { code, stdout } = await git.run(['merge-base', target, state], [0, 1]);
  if (code !== 0) throw new LandingGitError('merge-base', 'the story\'s branch and the target have no commit in common');
  const natural = stdout.trim();
  if (landedCommit === undefined || landedCommit === natural) return natural;
  if ((await git.commitOf(landedCommit)) === undefined) return natural;
  if ((await git.isAncestor(landedCommit, state)) && (await git.isAncestor(natural, landedCommit))) return landedCommit;
  return natural;
}

/** What landing a story computed, before anything is written. */
interface LandingPlan {
  targetTip: string;
  /** The story's branch tip and its state (the tip, or a temporary commit of its uncommitted work). */
  tip: string;
  state: string;
  base: string;
  /** The tree the target gets. */
  tree: string;
}

/** The commits a rebase replays: those after `base` up to `state`, oldest first, merges left out (as `git rebase` does). */
async function commitsToReplay(git: Git, base: string, state: string): Promise<string[]> {
  const listed = await git.text(['rev-list', '--reverse', '--no-merges', '--topo-order', `${base}..${state}`]);
  return listed === '' ? [] : listed.split('\n');
}

/**
 * Computes landing the story's state on the target: one three-way merge for MERGE and
 * SQUASH, each commit replayed in turn for REBASE (as `git rebase` would).
 * @throws MergeConflictError.
 */
async function plan(git: Git, work: LandingWork, scratch: Scratch, target: string, strategy: MergeStrategy, signal?: AbortSignal): Promise<LandingPlan> {
  const targetTip = (await git.tipOf(`refs/heads/${target}`))?.commit;
  if (targetTip === undefined) throw new NoTargetBranchError(work.storyId, target);
  const { tip, state } = await stateCommit(work, scratch, git, signal);
  const base = await landingBase(git, targetTip, state, work.landedCommit);
  let tree = await git.treeOf(targetTip);
  if (strategy === 'REBASE') {
    for (const commit of await commitsToReplay(git, base, state)) {
      const [parentTree, commitTree] = await Promise.all([git.treeOf(`${commit}^`), git.treeOf(commit)]);
      const merged = await mergeTrees(git, parentTree, tree, commitTree);
      if ('conflicts' in merged) throw new MergeConflictError(work.storyId, target, merged.conflicts, true);
      tree = merged.tree;
    }
  } else {
    const merged = await mergeTrees(git, await git.treeOf(base), tree, await git.treeOf(state));
    if ('conflicts' in merged) throw new MergeConflictError(work.storyId, target, merged.conflicts);
    tree = merged.tree;
  }
  return { targetTip, tip, state, base, tree };
}

/**
 * How the story stands against `target`: ahead, behind, and the files a merge of its whole
 * work would conflict in. Writes nothing to the repository.
 */
export async function landingStatus(projectRoot: string, work: LandingWork, target: string, options: { signal?: AbortSignal } = {}): Promise<LandingStatus> {
  const repository = await repositoryOf(projectRoot, options.signal);
  const config = await safeConfig(projectRoot, options);
  const scratch = await Scratch.open(repository.objects);
  try {
    const git = new Git(projectRoot, config, scratch.env, options.signal);
    const [targetTip, tip, landedCommit] = await git.lookup([
      `refs/heads/${target}^{commit}`,
      `refs/heads/${work.branch}^{commit}`,
      ...(work.landedCommit === undefined ? [] : [`${work.landedCommit}^{commit}`]),
    ]);
    if (targetTip === undefined || tip === undefined) return { aheadBy: 0, behindBy: 0, conflicts: [] };
    const landed = landedCommit === undefined ? [] : [`^${landedCommit}`];
    const [aheadBy, behindBy] = await Promise.all([git.count([tip, `^${targetTip}`, ...landed]), git.count([targetTip, `^${tip}`])]);
    let conflicts: string[] = [];
    try {
      await plan(git, work, scratch, target, 'MERGE', options.signal);
    } catch (error) {
      if (!(error instanceof MergeConflictError)) throw error;
      conflicts = (error.extensions.files as string[]) ?? [];
    }
    return { aheadBy, behindBy, conflicts };
  } finally {
    await scratch.dispose();
  }
}

/** Where a branch is checked out, if it is: the worktree's path and its git dir. */
async function checkoutOf(git: Git, branch: string): Promise<{ path: string } | undefined> {
  const listing = await git.text(['worktree', 'list', '--porcelain', '-z']);
  const worktrees: string[] = [];
  for (const field of listing.split('\0')) {
    if (field.startsWith('worktree ')) worktrees.push(field.slice('worktree '.length));
    else if (field === `branch refs/heads/${branch}` && existsSync(worktrees.at(-1) ?? '')) return { path: worktrees.at(-1)! };
  }
  // A branch being rebased or bisected is not listed as checked out (HEAD is detached),
  // but its checkout is where it is: moving it under a rebase would be undone by its abort.
  for (const worktree of worktrees) {
    const gitDir = await worktreeGitDir(worktree).catch(() => undefined);
    if (gitDir === undefined) continue;
    const names = await Promise.all(
      ['rebase-merge/head-name', 'rebase-apply/head-name', 'BISECT_START'].map((file) =>
        readFile(path.join(gitDir, file), 'utf8').then(
          (text) => text.trim(),
          () => undefined,
        ),
      ),
    );
    if (names.some((name) => name === `refs/heads/${branch}` || name === branch)) return { path: worktree };
  }
  return undefined;
}

/** Where `branch` is checked out in the project's worktrees, if it is. */
export async function checkoutOfBranch(projectRoot: string, branch: string, signal?: AbortSignal): Promise<string | undefined> {
  return (await checkoutOf(new Git(projectRoot, PLUMBING_CONFIG, undefined, signal), branch))?.path;
}

/** The files of a `status --porcelain=v2 -z` listing that have changes to tracked files (staged, unstaged or unmerged). */
function trackedChanges(porcelain: string): string[] {
  const files: string[] = [];
  const fields = porcelain.split('\0');
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (field.startsWith('1 ')) files.push(field.split(' ').slice(8).join(' '));
    else if (field.startsWith('2 ')) {
      files.push(field.split(' ').slice(9).join(' '));
      i++; // the rename's original path
    } else if (field.startsWith('u ')) files.push(field.split(' ').slice(10).join(' '));
  }
  return files;
}

/**
 * Refuses a landing into a checkout that is not clean: changes to tracked files (staged or
 * not), a merge, rebase, cherry-pick or revert in progress, or a file or folder (untracked
 * or ignored) where the landing writes a path the target did not have. Reads only: `status`
 * runs without taking optional locks, so not even the checkout's index is refreshed.
 * @throws TargetDirtyError.
 */
async function assertCleanCheckout(storyId: string, target: string, checkout: string, added: readonly string[], signal?: AbortSignal): Promise<void> {
  const git = new Git(checkout, await safeConfig(checkout, { signal }), undefined, signal, true);
  const operation = operationInProgress(await worktreeGitDir(checkout));
  if (operation) throw new TargetDirtyError(storyId, target, checkout, [], 'OPERATION_IN_PROGRESS', `has ${operation} in progress`);
  const { stdout } = await git.run(['--no-optional-locks', 'status', '--porcelain=v2', '-z', '--untracked-files=no']);
  const changed = trackedChanges(stdout);
  if (changed.length > 0) throw new TargetDirtyError(storyId, target, checkout, changed, 'UNCOMMITTED_CHANGES', `has uncommitted changes to ${changed.length} tracked file(s) (${changed.slice(0, 10).join(', ')})`);
  // The paths the landing adds: whatever is there now (untracked or ignored) would be overwritten.
  const blocked: string[] = [];
  for (const file of added) {
    const parts = file.split('/');
    for (let depth = 1; depth <= parts.length; depth++) {
      const at = path.join(checkout, ...parts.slice(0, depth));
      const info = await lstat(at).catch(() => undefined);
      if (!info) break;
      if (depth === parts.length || !info.isDirectory()) {
        blocked.push(parts.slice(0, depth).join('/'));
        break;
      }
    }
  }
  // A path the checkout tracks (clean, as checked above) is the landing's to replace, unless
  // something untracked or ignored is in it (a folder that becomes a file).
  const inTheWay: string[] = [];
  for (const file of new Set(blocked)) {
    const pathspec = `:(literal)${file}`;
    const [tracked, others] = await Promise.all([
      git.text(['ls-files', '-z', '--', pathspec]),
      git.text(['ls-files', '-z', '--others', '--', pathspec]),
    ]);
    if (tracked === '' || others !== '') inTheWay.push(file);
  }
  if (inTheWay.length > 0) {
    const unique = inTheWay;
    throw new TargetDirtyError(storyId, target, checkout, unique, 'FILES_IN_THE_WAY', `has untracked or ignored files where the merge writes (${unique.slice(0, 10).join(', ')})`);
  }
}

/** What a landing did. */
export interface Landed {
  /** The target's new tip. */
  commit: string;
  /** The story's commit the landing took in (its branch's tip after it). */
  landedCommit: string;
}

/** What {@link landStory} is given. */
export interface LandingRequest {
  strategy: MergeStrategy;
  target: string;
  /** The message of the SQUASH or MERGE commit. */
  message: string;
  identity: GitIdentity;
  /** Commits the agent's uncommitted work on the story's branch (in its worktree); returns the new tip. */
  saveUncommittedWork(): Promise<string | undefined>;
  signal?: AbortSignal;
}

/**
 * Lands a story's work on its target. Everything is checked first, on a temporary commit in
 * a throwaway object directory: a conflict, a target checkout that is not clean, or nothing
 * to land change nothing at all. Then the agent's uncommitted work is committed to the
 * story's branch, the merge or squash commit is made (REBASE: the branch is rebased in its
 * worktree), and the target moves: by `update-ref` with its old value, or, where it is
 * checked out, by `merge --ff-only` there.
 * @throws MergeConflictError, TargetDirtyError, NothingToMergeError, NoTargetBranchError,
 *   LandingRaceError (the target or the worktree changed meanwhile).
 */
export async function landStory(projectRoot: string, work: LandingWork, request: LandingRequest): Promise<Landed> {
  const { signal, target, strategy } = request;
  const repository = await repositoryOf(projectRoot, signal);
  const config = await safeConfig(projectRoot, { signal });
  const scratch = await Scratch.open(repository.objects);
  const real = new Git(projectRoot, config, undefined, signal);
  try {
    await assertWorktreeOnBranch(work, signal);
    const git = new Git(projectRoot, config, scratch.env, signal);
    const planned = await plan(git, work, scratch, target, strategy, signal);
    if (planned.tree === (await git.treeOf(planned.targetTip))) throw new NothingToMergeError(work.storyId, target);
    const checkout = await checkoutOf(real, target);
    if (checkout) {
      // The tree the target gets is known: the paths it adds are checked against the checkout before anything is written.
      const added = await git.text(['diff-tree', '-r', '--no-renames', '--diff-filter=A', '--name-only', '-z', await git.treeOf(planned.targetTip), planned.tree]);
      await assertCleanCheckout(work.storyId, target, checkout.path, added.split('\0').filter(Boolean), signal);
    }

    // Everything checked: from here on the landing goes ahead.
    let tip = planned.tip;
    if (planned.state !== planned.tip) {
      tip = (await request.saveUncommittedWork()) ?? planned.tip;
      if ((await git.treeOf(tip)) !== (await git.treeOf(planned.state))) {
        throw new LandingRaceError(work.storyId, 'the story\'s worktree changed (its work is committed on its branch)');
      }
    }
    await scratch.keepIn(repository.objects);
    let commit: string;
    if (strategy === 'REBASE') {
      tip = await rebaseInWorktree(work, target, planned.targetTip, planned.base, request.identity, signal);
      commit = tip;
    } else {
      const parents = strategy === 'MERGE' ? [planned.targetTip, tip] : [planned.targetTip];
      commit = await commitTreeWith(real, planned.tree, parents, request.message, request.identity);
    }
    await moveTarget(real, work.storyId, target, checkout, planned.targetTip, commit, signal);
    return { commit, landedCommit: tip };
  } finally {
    await scratch.dispose();
  }
}

/** Moves the target from `from` to `to`: `merge --ff-only` in its checkout, else `update-ref` with the old value. */
async function moveTarget(real: Git, storyId: string, target: string, checkout: { path: string } | undefined, from: string, to: string, signal?: AbortSignal): Promise<void> {
  const reflog = `agent-pool: land story ${storyId}`;
  if (!checkout) {
    const { code } = await real.run(['update-ref', '-m', reflog, `refs/heads/${target}`, to, from], [0, 1, 128]);
    if (code !== 0) throw new LandingRaceError(storyId, `${target} moved`);
    return;
  }
  const inCheckout = new Git(checkout.path, await safeConfig(checkout.path, { signal }), undefined, signal, true);
  const head = await inCheckout.commitOf('HEAD');
  if (head !== from) throw new LandingRaceError(storyId, `${target} moved`);
  const { code, stdout } = await inCheckout.run(['merge', '--ff-only', '--no-edit', '--quiet', to], [0, 1, 128]);
  if (code !== 0) throw new LandingRaceError(storyId, `${target}'s checkout at ${checkout.path} changed${stdout ? `: ${stdout.trim()}` : ''}`);
}

/**
 * Rebases the story's branch in its worktree onto `onto`, replaying the commits after
 * `upstream`. A conflict aborts the rebase: the branch and the worktree are as they were.
 * @returns the branch's new tip.
 * @throws MergeConflictError.
 */
async function rebaseInWorktree(work: LandingWork, target: string, onto: string, upstream: string, identity: GitIdentity, signal?: AbortSignal): Promise<string> {
  const worktree = work.worktreePath;
  if (worktree === undefined) throw new LandingGitError('rebase', `story ${work.storyId} has no worktree to rebase in: start it again to make one`);
  const git = new Git(worktree, await safeConfig(worktree, { signal }), undefined, signal, true);
  const rebase = await git.run(
    // --no-update-refs: only the story's branch moves, whatever rebase.updateRefs says.
    ['-c', `user.name=${identity.name}`, '-c', `user.email=${identity.email}`, 'rebase', '--no-autostash', '--no-update-refs', '--quiet', '--onto', onto, upstream],
    [0, 1, 128],
  );
  if (rebase.code !== 0) {
    const conflicted = (await git.run(['diff', '--name-only', '--diff-filter=U', '-z'], [0, 1, 128])).stdout.split('\0').filter(Boolean);
    // No rebase was under way before this one (checked): one now is this one, and goes.
    if (operationInProgress(await worktreeGitDir(worktree)) === 'a rebase') await git.run(['rebase', '--abort'], [0, 1, 128]);
    if (conflicted.length === 0) throw new LandingGitError('rebase', rebase.stderr);
    throw new MergeConflictError(work.storyId, target, conflicted, true);
  }
  return git.text(['rev-parse', 'HEAD']);
}

/**
 * Rebases a story's branch in its worktree onto its target (the commits since its last
 * landing), after checking on a temporary commit that it replays without a conflict.
 * @throws MergeConflictError (nothing changed), NoTargetBranchError.
 * @returns the branch's new tip.
 */
export async function rebaseStory(
  projectRoot: string,
  work: LandingWork,
  request: { target: string; identity: GitIdentity; saveUncommittedWork(): Promise<string | undefined>; signal?: AbortSignal },
): Promise<string> {
  const { signal, target } = request;
  const repository = await repositoryOf(projectRoot, signal);
  const config = await safeConfig(projectRoot, { signal });
  const scratch = await Scratch.open(repository.objects);
  try {
    await assertWorktreeOnBranch(work, signal);
    const git = new Git(projectRoot, config, scratch.env, signal);
    const planned = await plan(git, work, scratch, target, 'REBASE', signal);
    if (await git.isAncestor(planned.targetTip, planned.tip)) return planned.tip;
    if (planned.state !== planned.tip) await request.saveUncommittedWork();
    return await rebaseInWorktree(work, target, planned.targetTip, planned.base, request.identity, signal);
  } finally {
    await scratch.dispose();
  }
}

/** Whether `commit` is in the history of the branch `target` (false when either is missing). */
export async function isMergedInto(projectRoot: string, commit: string, target: string): Promise<boolean> {
  const git = new Git(projectRoot, PLUMBING_CONFIG, undefined, undefined);
  const targetTip = await git.commitOf(`refs/heads/${target}`);
  if (targetTip === undefined || (await git.commitOf(commit)) === undefined) return false;
  return git.isAncestor(commit, targetTip);
}
