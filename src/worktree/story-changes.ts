import { copyFile, mkdir, mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SimpleGit } from 'simple-git';
import { AgentPoolError } from '../errors.js';
import { COMMIT_FORMAT, type CommitInfo, type FileChange, parseCommits, parseDiffRawNumstat } from './git-output.js';
import { NO_EXTERNAL_DIFF, safeGit } from './safe-git.js';

/**
 * The most bytes of diff text `Agent.diff` returns; a longer diff is cut there and says so.
 * @default 1 MiB
 */
export const MAX_DIFF_BYTES = 1024 * 1024;

/** What a story changed: its files and the totals. */
export interface WorktreeChanges {
  files: FileChange[];
  filesChanged: number;
  linesAdded: number;
  linesRemoved: number;
}

/** Where to look for a story's work. */
export interface StoryWork {
  storyId: string;
  /** The story's worktree, or undefined when it has none (removed): then the branch alone counts. */
  worktreePath: string | undefined;
  branch: string;
  baseCommit: string;
}

/** A diff was asked for a path that is not among the story's changes. */
export class PathNotChangedError extends AgentPoolError {
  constructor(storyId: string, filePath: string) {
    super(
      'PATH_NOT_CHANGED',
      `story ${storyId} has no change to ${JSON.stringify(filePath)}: give a path relative to its worktree, as Agent.changes lists them`,
      { extensions: { storyId, path: filePath } },
    );
  }
}

/** What a read of a story's work may be given. */
export interface ReadOptions {
  /** Ends the read: its git process is ended and the read rejects. */
  signal?: AbortSignal;
}

/**
 * The environment of a git call that uses a private index and object directory: only
 * what git needs, because simple-git refuses a task given any other variable that could
 * steer git.
 */
function scratchEnv(scratch: { indexFile: string; objects: string; repositoryObjects: string }): Record<string, string> {
  const env: Record<string, string> = {
    GIT_INDEX_FILE: scratch.indexFile,
    GIT_OBJECT_DIRECTORY: scratch.objects,
    GIT_ALTERNATE_OBJECT_DIRECTORIES: scratch.repositoryObjects,
  };
  for (const name of ['PATH', 'HOME', 'XDG_CONFIG_HOME', 'LANG', 'LC_ALL', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Runs `work` with a git whose index is a private copy of the worktree's, into which every
 * file that is not ignored has been added: a diff of that index against the base commit
 * shows committed, uncommitted and untracked changes together, renames included.
 *
 * A read writes nothing to the repository: the index and the objects that `git add` makes
 * of new and changed files go to a throwaway directory (`GIT_OBJECT_DIRECTORY`, with the
 * repository's objects as an alternate), removed afterwards. The agent's own index is
 * never touched.
 */
async function withEverythingStaged<T>(worktreePath: string, options: ReadOptions, work: (git: SimpleGit) => Promise<T>): Promise<T> {
  const locate = await safeGit(worktreePath, options);
  const [gitDir, commonDir] = (await locate.raw(['rev-parse', '--absolute-git-dir', '--git-common-dir'])).trim().split('\n');
  const scratchDir = await mkdtemp(path.join(tmpdir(), 'agent-pool-read-'));
  try {
    const scratch = {
      indexFile: path.join(scratchDir, 'index'),
      objects: path.join(scratchDir, 'objects'),
      repositoryObjects: path.join(path.resolve(worktreePath, commonDir!), 'objects'),
    };
    await mkdir(scratch.objects);
    // Starting from a copy of the real index keeps git's stat cache: only changed files are
    // hashed. The copy keeps the index's own time: git re-reads the files changed in the
    // same moment as the index was written ("racily clean"), which a newer copy would hide.
    const realIndex = path.join(gitDir!, 'index');
    await copyFile(realIndex, scratch.indexFile)
      .then(async () => {
        const { atime, mtime } = await stat(realIndex);
        await utimes(scratch.indexFile, atime, mtime);
      })
      .catch(() => undefined);
    const git = await safeGit(worktreePath, { ...options, env: scratchEnv(scratch) });
    await git.raw(['add', '--all']);
    return await work(git);
  } finally {
    await rm(scratchDir, { recursive: true, force: true });
  }
}

/**
 * `git diff <flags>` of the story's work against its base commit, limited to `paths`. Without
 * a worktree (it was removed, its work saved on the branch) the branch alone counts.
 */
async function diffOf(projectRoot: string, work: StoryWork, flags: string[], paths: string[], options: ReadOptions): Promise<string> {
  if (work.worktreePath === undefined) {
    const git = await safeGit(projectRoot, options);
    return git.raw(['diff', ...NO_EXTERNAL_DIFF, ...flags, work.baseCommit, `refs/heads/${work.branch}`, '--', ...paths]);
  }
  return withEverythingStaged(work.worktreePath, options, (git) =>
    git.raw(['diff', '--cached', ...NO_EXTERNAL_DIFF, ...flags, work.baseCommit, '--', ...paths]),
  );
}

/** The story's changes against its base commit: committed, uncommitted and untracked (not ignored) together. */
export async function readChanges(projectRoot: string, work: StoryWork, options: ReadOptions = {}): Promise<WorktreeChanges> {
  const files = parseDiffRawNumstat(await diffOf(projectRoot, work, ['-M', '--raw', '--numstat', '-z'], [], options));
  return {
    files,
    filesChanged: files.length,
    linesAdded: files.reduce((sum, file) => sum + file.linesAdded, 0),
    linesRemoved: files.reduce((sum, file) => sum + file.linesRemoved, 0),
  };
}

/**
 * The unified diff of the story's changes, all files or one, cut at {@link MAX_DIFF_BYTES}
 * with a last line that says how much was left out.
 * @throws PathNotChangedError for a path that is not among the changes (and so is never
 *   read, wherever it points).
 */
export async function readDiff(projectRoot: string, work: StoryWork, filePath?: string, options: ReadOptions = {}): Promise<string> {
  let paths: string[] = [];
  if (filePath !== undefined) {
    const { files } = await readChanges(projectRoot, work, options);
    const change = files.find((file) => file.path === filePath || file.oldPath === filePath);
    if (!change) throw new PathNotChangedError(work.storyId, filePath);
    paths = change.oldPath ? [change.oldPath, change.path] : [change.path];
  }
  const text = await diffOf(projectRoot, work, ['-M'], paths, options);
  const bytes = Buffer.byteLength(text);
  if (bytes <= MAX_DIFF_BYTES) return text;
  // Cut on a character boundary: a split UTF-8 sequence decodes to U+FFFD, which is dropped.
  const cut = Buffer.from(text).subarray(0, MAX_DIFF_BYTES).toString('utf8').replace(/\uFFFD$/, '');
  return `${cut}\n[agent-pool: diff cut at ${MAX_DIFF_BYTES} bytes; ${bytes - Buffer.byteLength(cut)} more bytes not shown]\n`;
}

/** The commits on the story's branch since its base commit, newest first. */
export async function readCommits(projectRoot: string, work: StoryWork, options: ReadOptions = {}): Promise<CommitInfo[]> {
  const git = await safeGit(projectRoot, options);
  const output = await git.raw([
    'log',
    '-z',
    `--format=${COMMIT_FORMAT}`,
    `${work.baseCommit}..refs/heads/${work.branch}`,
    '--',
  ]);
  return parseCommits(output);
}
