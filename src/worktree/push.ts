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

/** One entry of `git config --list --show-scope -z`. */
interface ConfigEntry {
  scope: string;
  key: string;
  value: string;
}

function configEntries(listing: string): ConfigEntry[] {
  const fields = listing.split('\0');
  const entries: ConfigEntry[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const entry = fields[i + 1]!;
    const newline = entry.indexOf('\n');
    entries.push({ scope: fields[i]!, key: newline === -1 ? entry : entry.slice(0, newline), value: newline === -1 ? '' : entry.slice(newline + 1) });
  }
  return entries;
}

/** The user's own configuration, not the repository's (which agents can write). */
const isUsers = (entry: ConfigEntry): boolean => entry.scope === 'global' || entry.scope === 'system';
const isRepositorys = (entry: ConfigEntry): boolean => entry.scope === 'local' || entry.scope === 'worktree';

/**
 * The repository's http settings that decide where a push goes and whether its certificate
 * is checked: an agent could send the push, and the credentials the user's helpers give
 * that host, through a proxy of its own with certificates unchecked.
 */
const HTTP_TRUST = /^http\.(.+\.)?(sslverify|proxy|sslcainfo|sslcapath|proxysslcainfo|sslbackend|curloptresolve)$/i;

/**
 * The overrides of a push: those of every git agent-pool runs, and:
 * - the user's own credential helpers and ssh command (from their global or system
 *   configuration, never the repository's) given back, so that a push authenticates as
 *   the user's own `git push` would;
 * - the repository's TLS and proxy settings replaced by the user's own (or git's defaults);
 * - only https, http and ssh as transports: a path or `file://` would run `git
 *   receive-pack` here, in a repository (and with a configuration) an agent can choose,
 *   and `git://` has `core.gitProxy`, a program; a remote helper is none of them;
 * - no submodules, tags, signing or mirroring of the remote's own.
 */
async function pushConfig(projectRoot: string, remote: string, signal?: AbortSignal): Promise<string[]> {
  const config = await safeConfig(projectRoot, { signal });
  const entries = configEntries((await runGit(projectRoot, [], ['config', '--list', '--show-scope', '-z'], { signal })).stdout);
  const own = (key: string): string[] => entries.filter((entry) => isUsers(entry) && entry.key.toLowerCase() === key).map((entry) => entry.value);
  const helpers = own('credential.helper');
  const sshCommands = own('core.sshcommand');
  const result = config.filter((pair) => pair !== 'credential.helper=' && !(pair.startsWith('core.sshCommand=') && sshCommands.length > 0));
  result.push('credential.helper=', ...helpers.map((helper) => `credential.helper=${helper}`));
  if (sshCommands.length > 0) result.push(`core.sshCommand=${sshCommands.at(-1)}`);
  for (const entry of entries.filter((each) => isRepositorys(each) && HTTP_TRUST.test(each.key))) {
    const users = entries.findLast((each) => isUsers(each) && each.key.toLowerCase() === entry.key.toLowerCase());
    const fallback = /sslverify$/i.test(entry.key) ? 'true' : '';
    result.push(`${entry.key}=${users?.value ?? fallback}`);
  }
  result.push(
    'protocol.allow=never',
    'protocol.https.allow=always',
    'protocol.http.allow=always',
    'protocol.ssh.allow=always',
    'push.recurseSubmodules=no',
    'push.gpgSign=false',
    'push.followTags=false',
    `remote.${remote}.mirror=false`,
  );
  return result;
}

/** Whether git pushes to `url` over the network (https, http, ssh), not to a path or through a helper. */
function isNetworkUrl(url: string): boolean {
  if (/^(https?|ssh|git\+ssh|ssh\+git):\/\//i.test(url)) return true;
  // scp-like [user@]host:path: a colon before any slash, and not a helper's name::address.
  const colon = url.indexOf(':');
  const slash = url.indexOf('/');
  return colon > 0 && (slash === -1 || colon < slash) && url[colon + 1] !== ':' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url);
}

/** The URL of a remote, or undefined when there is no such remote. */
export async function remoteUrl(projectRoot: string, remote: string, signal?: AbortSignal): Promise<string | undefined> {
  return (await pushUrls(projectRoot, remote, signal))?.[0];
}

/** Every URL a push to `remote` goes to, as git pushes (url.<base>.pushInsteadOf and insteadOf applied); undefined when there is no such remote. */
async function pushUrls(projectRoot: string, remote: string, signal?: AbortSignal): Promise<string[] | undefined> {
  const { code, stdout } = await runGit(projectRoot, PLUMBING_CONFIG, ['remote', 'get-url', '--push', '--all', '--', remote], { signal });
  return code === 0 ? stdout.split('\n').filter((line) => line.trim() !== '') : undefined;
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
  const urls = await pushUrls(projectRoot, remote, signal);
  if (urls === undefined || urls.length === 0) {
    throw new PushFailedError(storyId, remote, branch, `there is no remote named ${JSON.stringify(remote)}: add it (git remote add), or set [forge] remote in agent-pool.toml`);
  }
  // Every URL the push would go to, before any is pushed to. The URL itself is not repeated: it may hold a password.
  if (!urls.every(isNetworkUrl)) {
    throw new PushFailedError(
      storyId,
      remote,
      branch,
      `the remote "${remote}" has a push URL that is not https, http or ssh (a path on this machine, file://, git:// or a remote helper): ` +
        'agent-pool pushes only to a forge over the network; check it with git remote get-url --push --all ' + remote,
    );
  }
  const result = await runGit(
    projectRoot,
    await pushConfig(projectRoot, remote, signal),
    [
      'push',
      '--porcelain',
      '--no-verify',
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

/** A story's branch here and on the remote each have commits the other lacks. */
export class BranchDivergedError extends AgentPoolError {
  constructor(storyId: string, remote: string, branch: string) {
    super(
      'PUSH_FAILED',
      `story ${storyId}'s branch ${branch} here and on ${remote} have diverged (each has commits the other lacks): ` +
        `merge one into the other in a clone and push it, or delete one, then start the story again`,
      { extensions: { storyId, remote, branch } },
    );
  }
}

/**
 * Brings a story's branch up to where `remote` has it, before a run of it here (in a
 * cluster another runner may have pushed later work): fetched over the network transports
 * a push may use, then the local branch (and its worktree, if it has one) moved forward to
 * it. A branch the remote does not have, or has behind this one, is left as it is.
 * @returns the commit the remote has, undefined when it has no such branch.
 * @throws BranchDivergedError; PushFailedError when the remote cannot be read.
 */
export async function fetchBranch(
  projectRoot: string,
  request: {
    storyId: string;
    remote: string;
    branch: string;
    worktreePath: string | undefined;
    env: Readonly<Record<string, string>>;
    /** The remote's is the branch, whatever this clone has (a landing's target in a cluster): moved to it, back or forward. */
    remoteWins?: boolean;
    signal?: AbortSignal;
  },
): Promise<string | undefined> {
  const { storyId, remote, branch, signal } = request;
  // The URLs a fetch goes to (url.<base>.insteadOf applied), which may differ from the push's.
  const listed = await runGit(projectRoot, PLUMBING_CONFIG, ['remote', 'get-url', '--all', '--', remote], { signal });
  const urls = listed.code === 0 ? listed.stdout.split('\n').filter((line) => line.trim() !== '') : undefined;
  if (urls === undefined || urls.length === 0) {
    throw new PushFailedError(storyId, remote, branch, `there is no remote named ${JSON.stringify(remote)}: add it (git remote add), or set [forge] remote in agent-pool.toml`);
  }
  if (!urls.every(isNetworkUrl)) {
    throw new PushFailedError(storyId, remote, branch, `the remote "${remote}" is not reached over https, http or ssh: a cluster's runners share story branches through a forge`);
  }
  // agent-pool's own ref, so that the user's remote-tracking branches are left alone.
  const fetched = `refs/agent-pool/fetched/${branch}`;
  const config = await pushConfig(projectRoot, remote, signal);
  // Only that ref is written: not the remote's configured refspecs (which an agent can edit), no submodules.
  const fetch = await runGit(projectRoot, config, ['fetch', '--no-tags', '--no-write-fetch-head', '--refmap=', '--no-recurse-submodules', '--', remote, `+refs/heads/${branch}:${fetched}`], {
    signal,
    env: pushEnvironment(request.env),
  });
  if (fetch.code !== 0) {
    if (/couldn't find remote ref/i.test(fetch.stderr)) return undefined;
    throw new PushFailedError(storyId, remote, branch, fetch.stderr.trim() || `git fetch exited with ${fetch.code}`);
  }
  const commitOf = async (ref: string): Promise<string | undefined> => {
    const result = await runGit(projectRoot, PLUMBING_CONFIG, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], { signal });
    return result.code === 0 ? result.stdout.trim() : undefined;
  };
  const isAncestor = async (ancestor: string, of: string): Promise<boolean> =>
    (await runGit(projectRoot, PLUMBING_CONFIG, ['merge-base', '--is-ancestor', '--end-of-options', ancestor, of], { signal })).code === 0;
  const theirs = (await commitOf(fetched))!;
  const ours = await commitOf(`refs/heads/${branch}`);
  if (ours === theirs) return theirs;
  if (!request.remoteWins) {
    if (ours !== undefined && (await isAncestor(theirs, ours))) return theirs;
    if (ours !== undefined && !(await isAncestor(ours, theirs))) throw new BranchDivergedError(storyId, remote, branch);
  }
  if (request.worktreePath !== undefined && ours !== undefined) {
    // Checked out there: moved with its files (the agent's work is committed first, after
    // each run; a landing's target checkout is clean, or the landing refuses).
    const moving = request.remoteWins ? ['reset', '--keep', '--quiet', theirs] : ['merge', '--ff-only', '--no-edit', '--quiet', theirs];
    const merged = await runGit(request.worktreePath, PLUMBING_CONFIG, moving, { signal });
    if (merged.code !== 0) throw new PushFailedError(storyId, remote, branch, `its worktree could not be moved forward to ${remote}'s: ${merged.stderr.trim()}`);
  } else {
    const updated = await runGit(projectRoot, PLUMBING_CONFIG, ['update-ref', `refs/heads/${branch}`, theirs, ours ?? ''], { signal });
    if (updated.code !== 0) throw new PushFailedError(storyId, remote, branch, updated.stderr.trim());
  }
  return theirs;
}
