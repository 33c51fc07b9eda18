import { AgentPoolError } from '../errors.js';
import { runGit, safeConfig } from './safe-git.js';

/** A push was refused (a failed lease included); the message quotes git. */
export class PushFailedError extends AgentPoolError {
  constructor(storyId: string, remote: string, branch: string, gitMessage: string) {
    super(
      'PUSH_FAILED',
      `pushing ${branch} of story ${storyId} to ${remote} failed: ${gitMessage}` +
        (/stale info|fetch first|non-fast-forward|rejected/.test(gitMessage)
          ? ' (the branch on the remote has commits agent-pool did not push: merge or drop them there, then try again)'
          : ''),
      { extensions: { storyId, remote, branch } },
    );
  }
}

/** The environment a push gets: the server's, without the `GIT_*` variables that redirect git, and never a prompt. */
function pushEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    const upper = name.toUpperCase();
    // How the user authenticates stays theirs: ssh, an askpass program.
    if (upper.startsWith('GIT_') && !['GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_ASKPASS', 'GIT_SSL_CAINFO'].includes(upper)) continue;
    env[name] = value;
  }
  env.GIT_TERMINAL_PROMPT = '0';
  return env;
}

/**
 * The overrides of a push: those of every git agent-pool runs, except that the user's own
 * credential helpers and ssh command (from their global or system configuration, never
 * the repository's, which agents can write) are given back, so that a push authenticates
 * as the user's own `git push` would.
 */
async function pushConfig(projectRoot: string, signal?: AbortSignal): Promise<string[]> {
  const config = await safeConfig(projectRoot, { signal });
  const own = async (key: string): Promise<string[]> => {
    const { stdout } = await runGit(projectRoot, [], ['config', '--show-scope', '-z', '--get-all', key], { signal });
    const fields = stdout.split('\0');
    const values: string[] = [];
    for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'global' || fields[i] === 'system') values.push(fields[i + 1]!);
    return values;
  };
  const [helpers, sshCommands] = await Promise.all([own('credential.helper'), own('core.sshCommand')]);
  const result = config.filter((pair) => pair !== 'credential.helper=' && !(pair.startsWith('core.sshCommand=') && sshCommands.length > 0));
  result.push('credential.helper=', ...helpers.map((helper) => `credential.helper=${helper}`));
  if (sshCommands.length > 0) result.push(`core.sshCommand=${sshCommands.at(-1)}`);
  return result;
}

/** The URL of a remote, or undefined when there is no such remote. */
export async function remoteUrl(projectRoot: string, remote: string, signal?: AbortSignal): Promise<string | undefined> {
  const { code, stdout } = await runGit(projectRoot, [], ['remote', 'get-url', '--push', '--', remote], { signal });
  return code === 0 ? stdout.trim() : undefined;
}

/**
 * Pushes a story's branch to `remote` with a lease: the remote's branch must be where
 * agent-pool last pushed it (`expected`; absent: it must not exist), so that work pushed
 * there by anyone else is never overwritten.
 * @returns the commit pushed.
 * @throws PushFailedError with git's message.
 */
export async function pushBranch(
  projectRoot: string,
  request: { storyId: string; remote: string; branch: string; expected: string | undefined; signal?: AbortSignal },
): Promise<string> {
  const { storyId, remote, branch, signal } = request;
  const ref = `refs/heads/${branch}`;
  const tip = await runGit(projectRoot, [], ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`], { signal });
  if (tip.code !== 0) throw new PushFailedError(storyId, remote, branch, `the branch ${branch} does not exist`);
  if ((await remoteUrl(projectRoot, remote, signal)) === undefined) {
    throw new PushFailedError(storyId, remote, branch, `there is no remote named ${JSON.stringify(remote)}: add it (git remote add), or set [forge] remote in agent-pool.toml`);
  }
  const result = await runGit(
    projectRoot,
    await pushConfig(projectRoot, signal),
    ['push', '--porcelain', '--no-verify', `--force-with-lease=${ref}:${request.expected ?? ''}`, '--', remote, `${ref}:${ref}`],
    { signal, env: pushEnvironment() },
  );
  if (result.code !== 0) {
    const said = `${result.stderr}\n${result.stdout}`
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && line !== 'Done' && !line.startsWith('To '))
      .join('; ');
    throw new PushFailedError(storyId, remote, branch, said || `git push exited with ${result.code}`);
  }
  return tip.stdout.trim();
}
