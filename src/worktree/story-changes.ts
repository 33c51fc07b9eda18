import { copyFile, mkdir, mkdtemp, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentPoolError } from '../errors.js';
import { COMMIT_FORMAT, type CommitInfo, type FileChange, parseCommits, parseDiffRawNumstat } from './git-output.js';
import { gitWith, NO_EXTERNAL_DIFF, plumbingGit, safeConfig, streamGit } from './safe-git.js';

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
export function scratchEnv(scratch: { indexFile: string; objects: string; repositoryObjects: string }): Record<string, string> {
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
async function withEverythingStaged<T>(worktreePath: string, options: ReadOptions, work: (git: GitIn) => Promise<T>): Promise<T> {
  const config = await safeConfig(worktreePath, options);
  const locate = gitWith(worktreePath, config, options);
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
    const env = scratchEnv(scratch);
    await gitWith(worktreePath, config, { ...options, env }).raw(['add', '--all']);
    return await work(gitIn(worktreePath, config, { ...options, env }));
  } finally {
    await rm(scratchDir, { recursive: true, force: true });
  }
}

/** git in one directory with its overrides: its whole output as text, or streamed. */
interface GitIn {
  text(args: string[]): Promise<string>;
  stream(args: string[], onStdout: (chunk: Buffer) => void): Promise<void>;
}

function gitIn(baseDir: string, config: readonly string[], options: ReadOptions & { env?: Record<string, string> }): GitIn {
  return {
    text: (args) => gitWith(baseDir, config, options).raw(args),
    stream: (args, onStdout) => streamGit(baseDir, config, args, { ...options, onStdout }),
  };
}

/**
 * Runs `work` with the git that sees the story's work: with a worktree, one whose private
 * index holds everything in it (see withEverythingStaged) and `diff` args to compare it
 * with the base commit; without one (removed, its work saved on the branch), the branch.
 */
async function withStoryWork<T>(projectRoot: string, work: StoryWork, options: ReadOptions, use: (git: GitIn, against: string[]) => Promise<T>): Promise<T> {
  if (work.worktreePath === undefined) {
    const git = gitIn(projectRoot, await safeConfig(projectRoot, options), options);
    return use(git, [work.baseCommit, `refs/heads/${work.branch}`]);
  }
  return withEverythingStaged(work.worktreePath, options, (git) => use(git, ['--cached', work.baseCommit]));
}

/** The story's changes against its base commit: committed, uncommitted and untracked (not ignored) together. */
export async function readChanges(projectRoot: string, work: StoryWork, options: ReadOptions = {}): Promise<WorktreeChanges> {
  const output = await withStoryWork(projectRoot, work, options, (git, against) =>
    git.text(['diff', ...NO_EXTERNAL_DIFF, '-M', '--raw', '--numstat', '-z', ...against, '--']),
  );
  const files = parseDiffRawNumstat(output);
  return {
    files,
    filesChanged: files.length,
    linesAdded: files.reduce((sum, file) => sum + file.linesAdded, 0),
    linesRemoved: files.reduce((sum, file) => sum + file.linesRemoved, 0),
  };
}

/**
 * A file's name as a pathspec that git reads as that name alone: without `:(literal)`, a
 * name such as `*.txt`, `[ab].txt` or `:(exclude)a.txt` (all valid file names an agent can
 * make) would be pathspec magic and pick other files too.
 */
function literalPathspec(filePath: string): string {
  return `:(literal)${filePath}`;
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
    paths = (change.oldPath ? [change.oldPath, change.path] : [change.path]).map(literalPathspec);
  }
  // Streamed: only the first MAX_DIFF_BYTES are kept, the rest only counted.
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let bytes = 0;
  await withStoryWork(projectRoot, work, options, (git, against) =>
    git.stream(['diff', ...NO_EXTERNAL_DIFF, '-M', ...against, '--', ...paths], (chunk) => {
      bytes += chunk.length;
      if (keptBytes >= MAX_DIFF_BYTES) return;
      const part = chunk.subarray(0, MAX_DIFF_BYTES - keptBytes);
      kept.push(part);
      keptBytes += part.length;
    }),
  );
  const head = Buffer.concat(kept);
  if (bytes <= MAX_DIFF_BYTES) return head.toString('utf8');
  // Cut on a character boundary: a split UTF-8 sequence decodes to U+FFFD, which is dropped.
  const cut = head.toString('utf8').replace(/\uFFFD$/, '');
  return `${cut}\n[agent-pool: diff cut at ${MAX_DIFF_BYTES} bytes; ${bytes - Buffer.byteLength(cut)} more bytes not shown]\n`;
}

/** The commits on the story's branch since its base commit, newest first. */
export async function readCommits(projectRoot: string, work: StoryWork, options: ReadOptions = {}): Promise<CommitInfo[]> {
  // A log reads commits, never a work tree: no filter or driver can run, the fixed overrides suffice.
  const git = plumbingGit(projectRoot, options);
  const output = await git.raw([
    'log',
    '-z',
    `--format=${COMMIT_FORMAT}`,
    `${work.baseCommit}..refs/heads/${work.branch}`,
    '--',
  ]);
  return parseCommits(output);
}
