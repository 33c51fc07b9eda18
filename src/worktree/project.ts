import { appendFile, chmod, mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { plumbingGit } from './safe-git.js';

/** The folder, at the project root, that holds everything agent-pool writes into a project. */
export const STATE_DIR_NAME = '.agent-pool';

/** `--project` is not inside a git work tree. */
export class NotAGitRepositoryError extends Error {
  constructor(dir: string, options?: { cause?: unknown }) {
    super(
      `${dir} is not inside a git work tree: run agent-pool in a clone of your project, or pass --project <dir>`,
      options,
    );
    this.name = 'NotAGitRepositoryError';
  }
}

/**
 * The top level of the git work tree that contains `dir`.
 * @throws NotAGitRepositoryError when `dir` is in no git work tree (or does not exist).
 */
export async function resolveProjectRoot(dir: string): Promise<string> {
  const absolute = path.resolve(dir);
  try {
    const topLevel = await plumbingGit(absolute).revparse(['--show-toplevel']);
    if (topLevel.trim() === '') throw new Error('git printed no top level (a bare repository?)');
    return topLevel.trim();
  } catch (error) {
    throw new NotAGitRepositoryError(absolute, { cause: error });
  }
}

/**
 * Makes the project's `.agent-pool/` folder, mode 0700 (it holds the token, transcripts
 * and worktrees: other users of the machine may not read them; a looser folder an older
 * version made is tightened), and keeps it out of `git status` (through `info/exclude`),
 * before anything is written into it.
 * @returns the folder's path.
 */
export async function prepareStateDir(projectRoot: string): Promise<string> {
  const dir = path.join(projectRoot, STATE_DIR_NAME);
  await excludeFromGit(projectRoot, [`/${STATE_DIR_NAME}/`]);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (((await stat(dir)).mode & 0o077) !== 0) await chmod(dir, 0o700);
  return dir;
}

/**
 * Adds `patterns` (paths relative to the project root) to the repository's
 * `info/exclude`, once each, so that what agent-pool writes never shows in `git status`.
 * `info/exclude` is shared by every worktree and never committed.
 */
export async function excludeFromGit(projectRoot: string, patterns: readonly string[]): Promise<void> {
  const commonDir = (await plumbingGit(projectRoot).revparse(['--git-common-dir'])).trim();
  const excludeFile = path.join(path.resolve(projectRoot, commonDir), 'info', 'exclude');
  const existing = await readFile(excludeFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  const present = new Set(existing.split('\n').map((line) => line.trim()));
  const missing = patterns.filter((pattern) => !present.has(pattern));
  if (missing.length === 0) return;
  await mkdir(path.dirname(excludeFile), { recursive: true });
  const separator = existing === '' || existing.endsWith('\n') ? '' : '\n';
  await appendFile(excludeFile, `${separator}# agent-pool's own files\n${missing.join('\n')}\n`);
}
