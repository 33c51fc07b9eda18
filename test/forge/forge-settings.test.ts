import { describe, expect, it, onTestFinished } from 'vitest';
import { type ForgeConfig, parseConfig } from '../../src/config/config.js';
import {
  createForge,
  ForgeNotConfiguredError,
  forgeSettings,
  type ForgeSettings,
} from '../../src/forge/forge.js';
import { startFakeGitHub } from '../support/fake-forge.js';

const TOKEN = 'ghp_fakeToken0123456789abcdefABCDEF01';
const GITHUB_REMOTE = 'git@github.com:owner/name.git';

/** The [forge] section of a config file made of these lines. */
function forgeConfig(...lines: string[]): ForgeConfig {
  return parseConfig(['[forge]', ...lines].join('\n'), '/project/agent-pool.toml').forge;
}

function notConfigured(run: () => unknown): ForgeNotConfiguredError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ForgeNotConfiguredError);
    expect((error as ForgeNotConfiguredError).code).toBe('FORGE_NOT_CONFIGURED');
    return error as ForgeNotConfiguredError;
  }
  throw new Error('expected a ForgeNotConfiguredError');
}

describe('forgeSettings', () => {
  it('refuses kind "none", the default, saying to set [forge] kind; a kind works', () => {
    const error = notConfigured(() => forgeSettings(forgeConfig(), { GITHUB_TOKEN: TOKEN }, GITHUB_REMOTE, '0.1.0'));
    expect(error.message).toBe(
      'no forge is configured to open pull requests on: set [forge] kind = "github" or "gitlab" in agent-pool.toml (and the token\'s variable, [forge] token_env)',
    );
    expect(forgeSettings(forgeConfig('kind = "github"'), { GITHUB_TOKEN: TOKEN }, GITHUB_REMOTE, '0.1.0')).toEqual({
      kind: 'github',
      apiUrl: 'https://api.github.com',
      repo: 'owner/name',
      token: TOKEN,
      tokenVariable: 'GITHUB_TOKEN',
      userAgent: 'agent-pool/0.1.0',
    });
  });

  it('names the token\'s variable when it is not set or empty, and takes it once it is', () => {
    const config = forgeConfig('kind = "github"');
    expect(notConfigured(() => forgeSettings(config, {}, GITHUB_REMOTE, '0.1.0')).message).toBe(
      'the environment variable GITHUB_TOKEN ([forge] token_env) is not set: set it to a GitHub token that may open pull requests on owner/name, in the environment agent-pool is started from',
    );
    expect(notConfigured(() => forgeSettings(config, { GITHUB_TOKEN: ' \n' }, GITHUB_REMOTE, '0.1.0')).message).toContain(
      'GITHUB_TOKEN ([forge] token_env) is empty',
    );
    // A token read with $(cat file) ends in a newline: it is trimmed.
    expect(forgeSettings(config, { GITHUB_TOKEN: `${TOKEN}\n` }, GITHUB_REMOTE, '0.1.0').token).toBe(TOKEN);
  });

  it('reads the token from the variable token_env names', () => {
    const config = forgeConfig('kind = "gitlab"', 'token_env = "GITLAB_TOKEN"');
    expect(notConfigured(() => forgeSettings(config, { GITHUB_TOKEN: TOKEN }, GITHUB_REMOTE, '1.2.3')).message).toContain(
      'the environment variable GITLAB_TOKEN ([forge] token_env) is not set: set it to a GitLab token',
    );
    expect(forgeSettings(config, { GITLAB_TOKEN: 'glpat-abc' }, 'https://gitlab.com/group/sub/name.git', '1.2.3')).toEqual({
      kind: 'gitlab',
      apiUrl: 'https://gitlab.com/api/v4',
      repo: 'group/sub/name',
      token: 'glpat-abc',
      tokenVariable: 'GITLAB_TOKEN',
      userAgent: 'agent-pool/1.2.3',
    });
  });

  it('refuses a variable that holds more than a token, without repeating it', () => {
    const config = forgeConfig('kind = "github"');
    const value = 'Bearer secret-value';
    const error = notConfigured(() => forgeSettings(config, { GITHUB_TOKEN: value }, GITHUB_REMOTE, '0.1.0'));
    expect(error.message).toBe(
      'the environment variable GITHUB_TOKEN ([forge] token_env) holds spaces or characters a token cannot have: set it to the GitHub token alone',
    );
    expect(error.message).not.toContain('secret-value');
  });

  it('takes the repository from [forge] repo before the remote\'s URL', () => {
    const config = forgeConfig('kind = "github"', 'repo = "someone/else"');
    expect(forgeSettings(config, { GITHUB_TOKEN: TOKEN }, GITHUB_REMOTE, '0.1.0').repo).toBe('someone/else');
    expect(forgeSettings(config, { GITHUB_TOKEN: TOKEN }, undefined, '0.1.0').repo).toBe('someone/else');
  });

  it('says to set [forge] repo when the remote has no URL, or one that names no repository, never repeating it', () => {
    const config = forgeConfig('kind = "github"');
    expect(notConfigured(() => forgeSettings(config, { GITHUB_TOKEN: TOKEN }, undefined, '0.1.0')).message).toBe(
      'cannot tell which GitHub repository to open pull requests on: the git remote "origin" has no URL; set [forge] repo = "owner/name" in agent-pool.toml (or [forge] remote to another remote)',
    );
    const error = notConfigured(() =>
      forgeSettings(forgeConfig('kind = "gitlab"', 'remote = "upstream"'), { GITHUB_TOKEN: TOKEN }, '/srv/secret-place/name.git', '0.1.0'),
    );
    expect(error.message).toBe(
      'cannot tell which GitLab repository to open pull requests on: the URL of the git remote "upstream" names no repository on a forge; set [forge] repo = "group/name" in agent-pool.toml (or [forge] remote to another remote)',
    );
  });

  it('refuses a GitHub repository that is not owner/name; GitLab takes subgroups', () => {
    const remote = 'git@example.com:group/sub/name.git';
    expect(
      notConfigured(() => forgeSettings(forgeConfig('kind = "github"'), { GITHUB_TOKEN: TOKEN }, remote, '0.1.0')).message,
    ).toBe(
      '"group/sub/name" is not a GitHub repository, which is "owner/name" (found in the URL of the git remote "origin"): set [forge] repo = "owner/name" in agent-pool.toml',
    );
    expect(forgeSettings(forgeConfig('kind = "gitlab"'), { GITHUB_TOKEN: TOKEN }, remote, '0.1.0').repo).toBe('group/sub/name');
  });

  it('takes an api_url with or without a trailing slash', () => {
    for (const apiUrl of ['https://ghe.example.com/api/v3', 'https://ghe.example.com/api/v3/']) {
      const config = forgeConfig('kind = "github"', `api_url = "${apiUrl}"`);
      expect(forgeSettings(config, { GITHUB_TOKEN: TOKEN }, GITHUB_REMOTE, '0.1.0').apiUrl).toBe('https://ghe.example.com/api/v3');
    }
  });

  it('gives settings that open a pull request on the forge, with the configured api_url and a trailing slash', async () => {
    const fake = await startFakeGitHub({ token: TOKEN, repo: 'owner/name' });
    onTestFinished(() => fake.close());
    const config = forgeConfig('kind = "github"', `api_url = "${fake.apiUrl}/"`, 'token_env = "MY_FORGE_TOKEN"');
    const settings: ForgeSettings = forgeSettings(config, { MY_FORGE_TOKEN: TOKEN }, GITHUB_REMOTE, '0.1.0');
    const pull = await createForge(settings).open({ head: 'story/a', base: 'main', title: 'a', body: '', draft: false });
    expect(pull).toEqual({ url: 'https://github.com/owner/name/pull/1', number: 1, state: 'open' });
    expect(fake.requests[0]).toMatchObject({ path: '/repos/owner/name/pulls', headers: { 'user-agent': 'agent-pool/0.1.0' } });
  });
});
