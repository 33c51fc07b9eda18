import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { AgentPoolError } from '../errors.js';
import { type SimpleGit, simpleGit } from 'simple-git';

/**
 * Overrides every git agent-pool runs gets, whatever any configuration says: no hooks, no
 * file-system monitor, no credential helper, no signing, no automatic gc that would detach
 * and outlive the call, no recursion into submodules.
 */
const ALWAYS = [
  'core.fsmonitor=false',
  'core.hooksPath=/dev/null',
  'credential.helper=',
  'core.sshCommand=ssh',
  'log.showSignature=false',
  'commit.gpgSign=false',
  'tag.gpgSign=false',
  'gc.auto=0',
  'maintenance.auto=false',
  'submodule.recurse=false',
  'diff.submodule=short',
  'protocol.ext.allow=never',
  // A split index writes a shared index file beside the real one, even for a private index.
  'core.splitIndex=false',
] as const;

/** The fixed overrides alone, for {@link runGit} calls that read and write no work tree. */
export const PLUMBING_CONFIG: readonly string[] = ALWAYS;

/**
 * What a git diff agent-pool runs never does: run an external diff program
 * (`diff.external`, `diff.<driver>.command`) or a text conversion (`diff.<driver>.textconv`).
 */
export const NO_EXTERNAL_DIFF = ['--no-ext-diff', '--no-textconv'] as const;

/** The built-in three-way merge, as a merge driver: what git does with no driver configured. */
const BUILT_IN_MERGE = 'git merge-file --marker-size=%L %A %O %B';

/**
 * The `-c` override that disarms one key of the repository's own configuration (which
 * every agent can write), or undefined for a key that runs nothing.
 */
function disarm(key: string): string[] | undefined {
  const lower = key.toLowerCase();
  const filter = /^filter\.(.+)\.(clean|smudge|process)$/.exec(key);
  if (filter) return [`${key}=`, `filter.${filter[1]}.required=false`];
  if (/^diff\..+\.(command|textconv)$/.test(lower)) return [`${key}=`];
  if (/^merge\..+\.driver$/.test(lower)) return [`${key}=${BUILT_IN_MERGE}`];
  if (/^credential\..+\.helper$/.test(lower)) return [`${key}=`];
  if (/^gpg\.(.+\.)?program$/.test(lower)) return [`${key}=`];
  // The programs a push or fetch runs on the remote's side, which a local path runs here.
  if (/^remote\..+\.receivepack$/.test(lower)) return [`${key}=git-receive-pack`];
  if (/^remote\..+\.uploadpack$/.test(lower)) return [`${key}=git-upload-pack`];
  // The program that asks for a password (empty: none).
  if (lower === 'core.askpass') return [`${key}=`];
  return undefined;
}

/**
 * The overrides for the keys of `git config --list --show-scope -z` output that a program
 * could be run by and that come from the repository (`local`, `worktree`): the
 * configuration agents share with the server. The user's own (`global`, `system`) is
 * theirs, as git LFS's filters are.
 */
export function overridesFor(configList: string): string[] {
  const overrides: string[] = [];
  const fields = configList.split('\0');
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const scope = fields[i]!;
    if (scope !== 'local' && scope !== 'worktree') continue;
    const entry = fields[i + 1]!;
    const newline = entry.indexOf('\n');
    const key = newline === -1 ? entry : entry.slice(0, newline);
    for (const override of disarm(key) ?? []) if (!overrides.includes(override)) overrides.push(override);
  }
  return overrides;
}

/** The repository's configuration points git at files elsewhere; nothing was run. */
export class ForeignWorkTreeError extends AgentPoolError {
  constructor(baseDir: string, value: string) {
    super(
      'UNSAFE_GIT_CONFIG',
      `the git configuration of ${baseDir} sets core.worktree to ${JSON.stringify(value)}: git would read and write files there, ` +
        'not in the work tree agent-pool works in (an agent may have set it). Remove it: git -C ' +
        `${baseDir} config --unset core.worktree (and git config --worktree --unset core.worktree)`,
      { extensions: { path: baseDir } },
    );
  }
}

/**
 * Refuses a `core.worktree` in the repository's own configuration (which agents can write,
 * and which `-c` does not override) that is not `baseDir` itself: git would work on files
 * elsewhere (commit the user's files to a story's branch, write a merge outside the project).
 * @throws ForeignWorkTreeError.
 */
function assertOwnWorkTree(configList: string, baseDir: string): void {
  const fields = configList.split('\0');
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'local' && fields[i] !== 'worktree') continue;
    const entry = fields[i + 1]!;
    if (!/^core\.worktree\n/i.test(entry)) continue;
    const value = entry.slice(entry.indexOf('\n') + 1);
    const real = (file: string): string => {
      try {
        return realpathSync(file);
      } catch {
        return file;
      }
    };
    if (real(path.resolve(baseDir, '.git', value)) !== real(baseDir)) throw new ForeignWorkTreeError(baseDir, value);
  }
}

/** What a git call may be given. */
export interface SafeGitOptions {
  /** Aborts the call: its git process is ended (SIGINT) and the call rejects once it has exited. */
  signal?: AbortSignal;
  /** The whole environment of the git process (otherwise the server's, without any `GIT_*`). */
  env?: Record<string, string>;
}

/** The `GIT_*` variables agent-pool itself sets (simple-git refuses any other). */
const ALLOWED_ENVIRONMENT = ['GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES', 'GIT_TERMINAL_PROMPT'];

const UNSAFE_OVERRIDES_ALLOWED = {
  allowUnsafeFsMonitor: true,
  allowUnsafeHooksPath: true,
  allowUnsafeCredentialHelper: true,
  allowUnsafeSshCommand: true,
  allowUnsafeFilter: true,
  allowUnsafeDiffTextConv: true,
  allowUnsafeDiffExternal: true,
  allowUnsafeMergeDriver: true,
  allowUnsafeGpgProgram: true,
  allowUnsafeProtocolOverride: true,
} as const;

/**
 * A git for commands that read and write refs and objects but no work tree's files
 * (`rev-parse`, `update-ref`, `merge-base`, `log`, `worktree prune`, `worktree remove
 * --force`): they run no filter, driver or diff program, so the fixed overrides suffice
 * and no configuration is read first. Anything that reads or writes a work tree's files
 * (`add`, `diff`, `status`, `commit`, `worktree add`, merges) takes {@link safeGit}.
 */
export function plumbingGit(baseDir: string, options: SafeGitOptions = {}): SimpleGit {
  return gitWith(baseDir, ALWAYS, options);
}

/**
 * A git for `baseDir` that runs nothing the repository's configuration names: `.git/config`
 * is shared with every agent, and an agent that sets `core.fsmonitor`, a hook, a filter
 * (with a `.gitattributes` entry), a merge driver, a diff or credential program there
 * would otherwise get its command run by the server, outside any run, where no stop finds
 * it. It reads the configuration first (`git config --list --show-scope`), so a key set a
 * moment ago is disarmed too; every call of the returned git gets the overrides as `-c`.
 * Diffs must also pass {@link NO_EXTERNAL_DIFF}.
 */
export async function safeGit(baseDir: string, options: SafeGitOptions = {}): Promise<SimpleGit> {
  return gitWith(baseDir, await safeConfig(baseDir, options), options);
}

/**
 * The `-c` overrides (as `key=value`) that {@link safeGit} gives every call in `baseDir`:
 * the fixed ones and those that disarm the repository's own configuration as it is now.
 */
export async function safeConfig(baseDir: string, options: SafeGitOptions = {}): Promise<string[]> {
  const listed = await listConfig(baseDir, options);
  assertOwnWorkTree(listed, baseDir);
  return [...ALWAYS, ...overridesFor(listed)];
}

/**
 * {@link safeConfig} of one directory, read again only when the repository's config files
 * have changed (their inode, size or time: git writes them anew by rename), or always when
 * they include other files (which can change without them). It keeps a start to one git
 * call before its agent spawns.
 */
export class SafeConfigCache {
  #key: string | undefined;
  #config: string[] = [];

  /** @param files the config files of `baseDir`'s repository (`<common dir>/config`, `config.worktree`). */
  constructor(
    private readonly baseDir: string,
    private readonly files: () => Promise<readonly string[]>,
  ) {}

  async get(options: SafeGitOptions = {}): Promise<string[]> {
    const key = await this.#identity();
    if (key === this.#key) return this.#config;
    // Read after the files' identity was taken: a change in between only makes the next call read again.
    const listed = await listConfig(this.baseDir, options);
    assertOwnWorkTree(listed, this.baseDir);
    this.#config = [...ALWAYS, ...overridesFor(listed)];
    this.#key = /(^|\0)include(if\.[^\n]*)?\.path\n/i.test(listed) ? undefined : key;
    return this.#config;
  }

  async #identity(): Promise<string> {
    const parts = await Promise.all(
      (await this.files()).map((file) =>
        stat(file, { bigint: true }).then(
          (info) => `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`,
          () => 'none',
        ),
      ),
    );
    return parts.join('|');
  }
}

/** `git config --list --show-scope -z` in `baseDir`. */
function listConfig(baseDir: string, options: SafeGitOptions): Promise<string> {
  // Never silent (at least the repository's format version is listed): simple-git waits 50 ms after a git that prints nothing.
  return simpleGit({ baseDir, abort: options.signal }).raw(['config', '--list', '--show-scope', '-z']);
}

/** A git for `baseDir` with the overrides `config` (from {@link safeConfig}). */
export function gitWith(baseDir: string, config: readonly string[], options: SafeGitOptions = {}): SimpleGit {
  const git = simpleGit({ baseDir, abort: options.signal, unsafe: UNSAFE_OVERRIDES_ALLOWED, config: [...config], allowEnvironment: ALLOWED_ENVIRONMENT });
  return options.env ? git.env(options.env) : git;
}

/** How much of a failed streamed git's stderr its error quotes. */
const STDERR_TAIL_BYTES = 4096;

/** How git ended: its exit code (128 when a signal ended it) and the end of its stderr. */
interface GitExit {
  code: number;
  stderr: string;
}

/**
 * Runs git in `baseDir` with the overrides `config`, hands its output to `onStdout` as it
 * comes, and writes `input` (if any) to its stdin. The process gets the environment
 * `options.env`, else the server's without any `GIT_*` (as simple-git does); it is ended
 * when `options.signal` aborts.
 * @returns once git has exited, every byte delivered.
 * @throws Error when git cannot be run; the signal's reason when it was aborted.
 */
function spawnGit(
  baseDir: string,
  config: readonly string[],
  args: readonly string[],
  options: SafeGitOptions & { input?: string; onStdout(chunk: Buffer): void },
): Promise<GitExit> {
  return new Promise((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const env = options.env ?? Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('GIT_')));
    const child = spawn('git', [...config.flatMap((pair) => ['-c', pair]), ...args], { cwd: baseDir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', options.onStdout);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    // git may exit before it reads its input (a refusal): a broken pipe is not our error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    const abort = (): void => {
      child.kill('SIGTERM');
    };
    signal?.addEventListener('abort', abort, { once: true });
    child.on('error', (error) => {
      signal?.removeEventListener('abort', abort);
      reject(error);
    });
    child.on('close', (code) => {
      signal?.removeEventListener('abort', abort);
      if (signal?.aborted) reject(signal.reason);
      else resolve({ code: code ?? 128, stderr });
    });
  });
}

/**
 * Runs git in `baseDir` with the overrides `config` and hands its output to `onStdout` as
 * it comes, keeping none of it: simple-git keeps a command's whole output in memory, and a
 * diff of what an agent wrote can be far larger than the server should hold (see
 * {@link spawnGit} for its environment and its end).
 * @returns once git has exited, every byte delivered.
 * @throws Error with git's message when it fails; the signal's reason when it was aborted.
 */
export async function streamGit(
  baseDir: string,
  config: readonly string[],
  args: readonly string[],
  options: SafeGitOptions & { onStdout(chunk: Buffer): void },
): Promise<void> {
  const { code, stderr } = await spawnGit(baseDir, config, args, options);
  if (code !== 0) throw new Error(`git ${args[0]} failed (exit ${code}): ${stderr.trim()}`);
}

/** What a git process ended with: its exit code, its whole output and the end of its stderr. */
export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs git in `baseDir` with the overrides `config` and returns its exit code and output,
 * for the commands whose exit code is an answer, not a failure (`merge-tree` exits 1 on a
 * conflict, `merge-base --is-ancestor` 1 for "no"). `options.input` is written to its
 * stdin (see {@link spawnGit} for its environment and its end).
 * @throws Error only when git cannot be run, or the signal's reason when it was aborted.
 */
export async function runGit(
  baseDir: string,
  config: readonly string[],
  args: readonly string[],
  options: SafeGitOptions & { input?: string } = {},
): Promise<GitResult> {
  const stdout: Buffer[] = [];
  const { code, stderr } = await spawnGit(baseDir, config, args, { ...options, onStdout: (chunk) => stdout.push(chunk) });
  return { code, stdout: Buffer.concat(stdout).toString('utf8'), stderr };
}
