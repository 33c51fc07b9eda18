import { describe, expect, it } from 'vitest';
import { secretVariables } from '../../src/config/secret-variables.js';
import { inheritedEnvironment } from '../../src/pool/agent-environment.js';

describe('the secrets a configuration names', () => {
  it('are the variables of every key that ends in _env, at any depth and in lists of tables', () => {
    const config = {
      agent: { command: 'claude', env: { VISIBLE: 'yes' } },
      forge: { kind: 'github', token_env: 'GITHUB_TOKEN' },
      notify: { webhook: [{ url_env: 'SLACK_URL', secret_env: 'HOOK_SECRET' }, { url: 'https://example.com' }] },
      store: { url_env: '' },
    };
    expect(secretVariables(config).sort()).toEqual(['GITHUB_TOKEN', 'HOOK_SECRET', 'SLACK_URL']);
  });

  it('leave out [forge] token_env while no forge is configured: the variable is then the agent\'s own', () => {
    const none = { forge: { kind: 'none', token_env: 'GITHUB_TOKEN' }, notify: { webhook: [{ secret_env: 'HOOK_SECRET' }] } };
    expect(secretVariables(none)).toEqual(['HOOK_SECRET']);
    expect(secretVariables({ ...none, forge: { kind: 'gitlab', token_env: 'GITLAB_TOKEN' } }).sort()).toEqual(['GITLAB_TOKEN', 'HOOK_SECRET']);
  });

  it('are kept from the environment agents inherit, with any variable that holds the token; the rest stays', () => {
    const token = 'tok-0123456789abcdef';
    const env = inheritedEnvironment(
      { GITHUB_TOKEN: 'ghp_x', SLACK_URL: 'https://hooks', AGENT_POOL_TOKEN: token, COPY: `Bearer ${token}`, PORT: '8080', HOME: '/home/me' },
      { names: ['GITHUB_TOKEN', 'SLACK_URL'], values: [token, '80'] },
    );
    // A value shorter than 8 characters ('80') is not looked for: PORT stays.
    expect(env).toEqual({ PORT: '8080', HOME: '/home/me' });
  });
});
