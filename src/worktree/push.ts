import { AgentPoolError } from '../errors.js';
import { PLUMBING_CONFIG, runGit, safeConfig } from './safe-git.js';

/** A push was refused (a failed lease included); the message quotes git. */
export class PushFailedError extends AgentPoolError {
  constructor(storyId: string, remote: string, branch: string, gitMessage: string) {
    super(
      'PUSH_FAILED',
      `pushing ${branch} of story ${storyId} to ${remote} failed: ${gitMessage}` +
        (/\[rejected\] \((stale info|fetch first|non-fast-forward)\)|\[rejected\].*(stale info|fetch first|non-fast-forward)/.test(gitMessage)
          ? ' (the branch on the remote has commits agent-pool did not push: merge or drop them there, then try again)'
          : ''),
      { extensions: { storyId, remote, branch } },
    );
  }
}

/**
 * The environment a push gets: `base` (the environment agents get: the server's without its
 * secrets, the forge token's variable among them), without the `GIT_*` variables that
 * redirect git, and never a prompt.
 */
function pushEnvironment(base: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
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
  result.push(
    // git:// is read-only, and its core.gitProxy (the first one configured wins) is a program.
    'protocol.git.allow=never',
    'push.recurseSubmodules=no',
    'push.gpgSign=false',
  );
  return result;
}

/**
 * Whether git reaches `url` by running `git receive-pack` here: a path or a `file://` URL,
 * not `host:path`, `scheme://…` or a remote helper's `name::address`.
 */
function isLocal(url: string): boolean {
  if (/^file:/i.test(url)) return true;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[a-z][a-z0-9+.-]*::/i.test(url)) return false;
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  return colon === -1 || (slash !== -1 && slash < colon);
}

/**
 * For a remote on this machine, the receive-pack to run: git's own with the hooks of that
 * repository off. Its hooks would run here, as the server, with a configuration (and so
 * a repository) an agent can choose; a remote on another host runs its own.
 */
const LOCAL_RECEIVE_PACK = 'git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c receive.autogc=false -c gc.auto=0 receive-pack';

/** The URL of a remote, or undefined when there is no such remote. */
export async function remoteUrl(projectRoot: string, remote: string, signal?: AbortSignal): Promise<string | undefined> {
  // As git pushes to it: url.<base>.pushInsteadOf and insteadOf applied.
  const { code, stdout } = await runGit(projectRoot, PLUMBING_CONFIG, ['remote', 'get-url', '--push', '--', remote], { signal });
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
  request: {
    storyId: string;
    remote: string;
    branch: string;
    expected: string | undefined;
    /** The environment of the push: the one agents get, without the server's secrets. */
    env: Readonly<Record<string, string>>;
    signal?: AbortSignal;
  },
): Promise<string> {
  const { storyId, remote, branch, signal } = request;
  const ref = `refs/heads/${branch}`;
  const tip = await runGit(projectRoot, PLUMBING_CONFIG, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`], { signal });
  if (tip.code !== 0) throw new PushFailedError(storyId, remote, branch, `the branch ${branch} does not exist`);
  const url = await remoteUrl(projectRoot, remote, signal);
  if (url === undefined) {
    throw new PushFailedError(storyId, remote, branch, `there is no remote named ${JSON.stringify(remote)}: add it (git remote add), or set [forge] remote in agent-pool.toml`);
  }
  const result = await runGit(
    projectRoot,
    await pushConfig(projectRoot, signal),
    [
      'push',
      '--porcelain',
      '--no-verify',
      ...(isLocal(url) ? [`--receive-pack=${LOCAL_RECEIVE_PACK}`] : []),
      `--force-with-lease=${ref}:${request.expected ?? ''}`,
      '--',
      remote,
      `${ref}:${ref}`,
    ],
    { signal, env: pushEnvironment(request.env) },
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
