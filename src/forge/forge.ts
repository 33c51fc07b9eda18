import type { ForgeConfig } from '../config/config.js';
import { ForgeNotConfiguredError } from './forge-errors.js';
import { GitHubForge } from './github.js';
import { GitLabForge } from './gitlab.js';
import { repoFromRemoteUrl } from './remote-url.js';

export { ForgeError, ForgeNotConfiguredError } from './forge-errors.js';
export { DEFAULT_FORGE_TIMEOUT_MS } from './forge-http.js';
export { repoFromRemoteUrl } from './remote-url.js';

/** A pull request (a merge request, on GitLab) as the API shows it. */
export interface PullRequestInfo {
  /** Its web page. */
  url: string;
  /** Its number: GitHub's `number`, GitLab's `iid` (the `!12` of the project). */
  number: number;
  /** open, closed without merging, or merged. GitLab's "locked" is open. */
  state: 'open' | 'closed' | 'merged';
}

/** What to open: a pull request of `head` into `base`. */
export interface OpenPullRequest {
  /** The branch with the changes (a story's branch), already pushed. */
  head: string;
  /** The branch to merge into. */
  base: string;
  title: string;
  body: string;
  /** Open it as a draft: GitHub's `draft`, GitLab's "Draft: " title prefix. */
  draft: boolean;
}

/** A forge that is set up to be used: which one, where its API is, the repository and the token. */
export interface ForgeSettings {
  kind: 'github' | 'gitlab';
  /** The API's base URL, without a trailing `/`: https://api.github.com, https://gitlab.com/api/v4. */
  apiUrl: string;
  /** "owner/name" on GitHub; the project's path ("group/subgroup/name") on GitLab. */
  repo: string;
  /** The token; it goes only into request headers to `apiUrl`, never into a message. */
  token: string;
  /** The environment variable that held the token, for messages. */
  tokenVariable: string;
  /** The User-Agent of every request: `agent-pool/<version>` (GitHub refuses requests without one). */
  userAgent: string;
  /**
   * How long one request may take, answer included, before it fails with FORGE_ERROR.
   * @default 30000
   */
  timeoutMs?: number;
}

/** Pull requests on one repository of one forge. Independent of git: the branches must already be pushed. */
export interface Forge {
  /**
   * Opens a pull request of `head` into `base`. When the forge says one of `head` into
   * `base` is already open, that one is returned instead (as it is, not updated).
   * @throws ForgeError when the forge refuses or cannot be reached.
   */
  open(request: OpenPullRequest): Promise<PullRequestInfo>;
  /**
   * Updates the title and/or the body (only those given) and returns the pull request as
   * it is now. On GitLab a draft stays a draft when its title changes.
   * @throws ForgeError when the forge refuses (404: no such pull request) or cannot be reached.
   */
  update(number: number, changes: { title?: string; body?: string }): Promise<PullRequestInfo>;
  /**
   * Reads a pull request's state now.
   * @throws ForgeError when the forge refuses (404: no such pull request) or cannot be reached.
   */
  get(number: number): Promise<PullRequestInfo>;
}

/** The API of github.com; GitHub Enterprise Server's is https://HOST/api/v3. */
export const DEFAULT_GITHUB_API_URL = 'https://api.github.com';
/** The API of gitlab.com; a GitLab of your own has it at https://HOST/api/v4. */
export const DEFAULT_GITLAB_API_URL = 'https://gitlab.com/api/v4';

/** A token as it can go into an HTTP header: visible ASCII, no spaces. */
const TOKEN_CHARACTERS = /^[\x21-\x7e]+$/;

/** The client of the forge the settings name. */
export function createForge(settings: ForgeSettings): Forge {
  return settings.kind === 'github' ? new GitHubForge(settings) : new GitLabForge(settings);
}

/**
 * The forge settings from the `[forge]` config, the server's environment (which holds the
 * token in the variable `token_env` names) and the URL of the `[forge] remote`, which the
 * caller reads from git (undefined when the remote has none). Checks everything that can
 * be checked without a request.
 * @param version agent-pool's version, for the User-Agent.
 * @throws ForgeNotConfiguredError when `kind` is "none", the token's variable is unset or
 *   empty, or the repository is neither set nor found in the remote's URL.
 */
export function forgeSettings(
  config: ForgeConfig,
  env: NodeJS.ProcessEnv,
  remoteUrl: string | undefined,
  version: string,
): ForgeSettings {
  if (config.kind === 'none') {
    throw new ForgeNotConfiguredError(
      'no forge is configured to open pull requests on: set [forge] kind = "github" or "gitlab" in agent-pool.toml (and the token\'s variable, [forge] token_env)',
    );
  }
  const forgeName = config.kind === 'github' ? 'GitHub' : 'GitLab';
  const apiUrl = (
    config.api_url === '' ? (config.kind === 'github' ? DEFAULT_GITHUB_API_URL : DEFAULT_GITLAB_API_URL) : config.api_url
  ).replace(/\/+$/, '');

  let repo = config.repo;
  if (repo === '') {
    const found = remoteUrl === undefined ? undefined : repoFromRemoteUrl(remoteUrl);
    if (found === undefined) {
      // The URL itself is not repeated: it may hold a password.
      const why =
        remoteUrl === undefined
          ? `the git remote "${config.remote}" has no URL`
          : `the URL of the git remote "${config.remote}" names no repository on a forge`;
      throw new ForgeNotConfiguredError(
        `cannot tell which ${forgeName} repository to open pull requests on: ${why}; set [forge] repo = "${config.kind === 'github' ? 'owner/name' : 'group/name'}" in agent-pool.toml (or [forge] remote to another remote)`,
      );
    }
    repo = found;
  }
  if (config.kind === 'github' && repo.split('/').length !== 2) {
    throw new ForgeNotConfiguredError(
      `"${repo}" is not a GitHub repository, which is "owner/name"${config.repo === '' ? ` (found in the URL of the git remote "${config.remote}")` : ''}: set [forge] repo = "owner/name" in agent-pool.toml`,
    );
  }

  const variable = config.token_env;
  const token = (env[variable] ?? '').trim();
  if (token === '') {
    throw new ForgeNotConfiguredError(
      `the environment variable ${variable} ([forge] token_env) is ${env[variable] === undefined ? 'not set' : 'empty'}: set it to a ${forgeName} token that may open pull requests on ${repo}, in the environment agent-pool is started from`,
    );
  }
  if (!TOKEN_CHARACTERS.test(token)) {
    // Said without the value, which is the token.
    throw new ForgeNotConfiguredError(
      `the environment variable ${variable} ([forge] token_env) holds spaces or characters a token cannot have: set it to the ${forgeName} token alone`,
    );
  }
  return { kind: config.kind, apiUrl, repo, token, tokenVariable: variable, userAgent: `agent-pool/${version}` };
}
