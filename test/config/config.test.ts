import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/config-error.js';
import { defaultConfig, loadConfig, parseConfig } from '../../src/config/config.js';
import { renderInitFile } from '../../src/config/init-file.js';
import { tempDir } from '../support/temp.js';

const FILE = '/project/agent-pool.toml';

function configError(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('gives every default of the contract when there is no file', () => {
    const agent = {
      kind: 'claude',
      command: 'claude',
      args: [],
      prompt: 'Work on story {{story_id}}.',
      env: {},
      idle_timeout_seconds: 1800,
      permission_mode: 'bypassPermissions',
      max_budget_usd: 0,
      max_turns: 0,
      keep_open_seconds: 0,
      mcp: false,
    };
    expect(loadConfig(tempDir())).toEqual({
      agent,
      agents: { default: agent },
      worktree: {
        dir: '.agent-pool/worktrees',
        branch_prefix: 'story/',
        base: 'HEAD',
        setup: [],
        remove_on_stop: false,
      },
      pool: { default_agent: 'default', max_concurrent: 4, stop_grace_seconds: 5 },
      store: { path: '.agent-pool/state.db', url: '', url_env: '', max_events_per_story: 100_000 },
      bus: { url: '', url_env: '' },
      cluster: { heartbeat_seconds: 5, lost_after_seconds: 30 },
      forge: { kind: 'none', api_url: '', repo: '', token_env: 'GITHUB_TOKEN', remote: 'origin' },
      notify: {
        public_url: '',
        webhook: [],
        retry_seconds: [1, 5, 30, 120, 600],
        retry_every_seconds: 1800,
        give_up_after_seconds: 86_400,
        timeout_seconds: 10,
      },
      services: { ports: '4800-4999', first: 4800, last: 4999, defined: {} },
    });
  });

  it('reads agent-pool.toml at the project root and keeps defaults for keys it omits', () => {
    const root = tempDir();
    writeFileSync(
      path.join(root, 'agent-pool.toml'),
      [
        '[agent]',
        'command = "my-agent"',
        'args = ["--model", "{{story_id}}"]',
        'format = "text"',
        'env = { FOO = "bar" }',
        '[worktree]',
        'setup = ["npm ci"]',
        'remove_on_stop = true',
        '[pool]',
        'max_concurrent = 2',
        'stop_grace_seconds = 0.5',
      ].join('\n'),
    );
    const config = loadConfig(root);
    expect(config.agent).toEqual({
      kind: 'text',
      command: 'my-agent',
      args: ['--model', '{{story_id}}'],
      prompt: 'Work on story {{story_id}}.',
      env: { FOO: 'bar' },
      idle_timeout_seconds: 1800,
      permission_mode: 'bypassPermissions',
      max_budget_usd: 0,
      max_turns: 0,
      keep_open_seconds: 0,
      mcp: false,
    });
    expect(config.agents).toEqual({ default: config.agent });
    expect(config.worktree.setup).toEqual(['npm ci']);
    expect(config.worktree.remove_on_stop).toBe(true);
    expect(config.worktree.branch_prefix).toBe('story/');
    expect(config.pool).toEqual({ default_agent: 'default', max_concurrent: 2, stop_grace_seconds: 0.5 });
  });

  it('reports a file it cannot read with its path', () => {
    const root = tempDir();
    // A directory where the file should be cannot be read as text.
    const file = path.join(root, 'agent-pool.toml');
    mkdirSync(file);
    expect(() => loadConfig(root)).toThrow(`${file}: cannot be read`);
  });

  it('gives a fresh copy of the defaults each time', () => {
    const first = defaultConfig();
    first.agent.args.push('changed');
    expect(defaultConfig().agent.args).toEqual([]);
  });
});

describe('config validation', () => {
  it('names the file, the line and the column of a TOML syntax error', () => {
    const error = configError('[agent]\ncommand = "claude\n');
    expect(error.message).toMatch(/^\/project\/agent-pool\.toml:2:\d+: TOML syntax error: /);
    expect(error.line).toBe(2);
    expect(error.code).toBe('CONFIG_ERROR');
  });

  it('rejects an unknown key and lists the keys of its section', () => {
    const error = configError('[agent]\ncomand = "claude"\n');
    expect(error.message).toBe(
      '/project/agent-pool.toml: agent.comand: unknown key; the keys of [agent] are kind, command, args, prompt, format, env, idle_timeout_seconds, permission_mode, max_budget_usd, max_turns, keep_open_seconds, mcp',
    );
    expect(error.key).toBe('agent.comand');
  });

  it('rejects an unknown section and lists the sections', () => {
    expect(configError('[agnet]\ncommand = "x"\n').message).toBe(
      '/project/agent-pool.toml: agnet: unknown section; the sections are [agent], [worktree], [pool], [store], [bus], [cluster], [forge], [notify], [agents.NAME], [services]',
    );
  });

  it('rejects a top-level key that is not a section', () => {
    expect(configError('command = "claude"\n').message).toBe(
      '/project/agent-pool.toml: command: unknown section; the sections are [agent], [worktree], [pool], [store], [bus], [cluster], [forge], [notify], [agents.NAME], [services]',
    );
    expect(configError('agent = "claude"\n').message).toBe(
      '/project/agent-pool.toml: agent: must be a table ([agent])',
    );
  });

  it.each([
    ['[agent]\ncommand = 3', 'agent.command: must be a string, got number 3'],
    ['[agent]\ncommand = ""', 'agent.command: must not be empty'],
    ['[agent]\nargs = "--fast"', 'agent.args: must be an array of strings, got string "--fast"'],
    ['[agent]\nargs = ["a", 1]', 'agent.args: must be an array of strings, but item 1 is number 1'],
    ['[agent]\nformat = "json"', 'agent.format: must be one of "claude-stream-json", "text", got "json"'],
    ['[agent]\nkind = "copilot"', 'agent.kind: must be one of "claude", "codex", "gemini", "opencode", "acp", "text", got "copilot"'],
    ['[agent]\nkind = "claude"\nformat = "text"', 'agent.format: set kind or its old name format, not both'],
    ['[agents.fast]\nkind = "codex"\ncomand = "x"', 'agents.fast.comand: unknown key; the keys of [agents.fast] are kind, command, args, prompt, format, env, idle_timeout_seconds, permission_mode, max_budget_usd, max_turns, keep_open_seconds, mcp'],
    ['[agents."bad name"]\nkind = "codex"', 'agents.bad name: a profile name is 1 to 32 of A-Z a-z 0-9 _ - (starting with a letter or digit), and "default" is [agent]'],
    ['[agents.default]\nkind = "codex"', 'agents.default: a profile name is 1 to 32 of A-Z a-z 0-9 _ - (starting with a letter or digit), and "default" is [agent]'],
    ['[pool]\ndefault_agent = "codex"', 'pool.default_agent: names no profile; the profiles are default'],
    ['[agent]\nidle_timeout_seconds = -1', 'agent.idle_timeout_seconds: must be at least 0, got -1'],
    ['[agent]\npermission_mode = "ask"', 'agent.permission_mode: must be one of "bypassPermissions", "default", "acceptEdits", "plan", got "ask"'],
    ['[agent]\nmax_budget_usd = -0.5', 'agent.max_budget_usd: must be at least 0, got -0.5'],
    ['[agent]\nmax_turns = 2.5', 'agent.max_turns: must be a whole number, got number 2.5'],
    ['[agent]\nkeep_open_seconds = "1h"', 'agent.keep_open_seconds: must be a number, got string "1h"'],
    ['[agent]\nkind = "acp"\nargs = ["--acp"]', 'agent.command: kind "acp" needs the command that speaks ACP on stdio, e.g. command = "gemini" with args = ["--acp"], or command = "opencode" with args = ["acp"]'],
    ['[agents.fast]\nkind = "acp"\ncommand = "gemini"\nmax_turns = 3', 'agents.fast.max_turns: is for kind "claude"; this profile is kind "acp"'],
    ['[agents.fast]\nkind = "codex"\npermission_mode = "default"', 'agents.fast.permission_mode: is for kind "claude" and "acp"; this profile is kind "codex"'],
    ['[agent]\nenv = ["A=1"]', 'agent.env: must be a table of strings, got an array'],
    ['[agent]\nenv = { A = 1 }', 'agent.env: must be a table of strings, but "A" is number 1'],
    ['[worktree]\nremove_on_stop = "yes"', 'worktree.remove_on_stop: must be true or false, got string "yes"'],
    ['[worktree]\nsetup = [["npm", "ci"]]', 'worktree.setup: must be an array of strings, but item 0 is an array'],
    [
      '[worktree]\nsetup = ["npm ci", "cp \'{{project_root}}/.env\' ."]',
      'worktree.setup: item 1 has {{project_root}} inside quotes: agent-pool quotes a placeholder itself (it becomes "$AGENT_POOL_PROJECT_ROOT"), so that any path works; write it without quotes (for example cd {{project_root}}/sub), or write $AGENT_POOL_PROJECT_ROOT inside your quotes',
    ],
    [
      '[worktree]\nsetup = ["cd \\"{{worktree_path}}\\""]',
      'worktree.setup: item 0 has {{worktree_path}} inside quotes: agent-pool quotes a placeholder itself (it becomes "$AGENT_POOL_WORKTREE_PATH"), so that any path works; write it without quotes (for example cd {{worktree_path}}/sub), or write $AGENT_POOL_WORKTREE_PATH inside your quotes',
    ],
    [
      // The apostrophe of a comment opens no quote; the one after it does.
      '[worktree]\nsetup = ["# it\'s the root\\necho \'{{project_root}}\'"]',
      'worktree.setup: item 0 has {{project_root}} inside quotes: agent-pool quotes a placeholder itself (it becomes "$AGENT_POOL_PROJECT_ROOT"), so that any path works; write it without quotes (for example cd {{project_root}}/sub), or write $AGENT_POOL_PROJECT_ROOT inside your quotes',
    ],
    [
      '[worktree]\nsetup = ["cat > .env <<EOF\\nROOT={{project_root}}\\nEOF"]',
      'worktree.setup: item 0 has {{project_root}} in a here-document, where sh takes quotes as text; write $AGENT_POOL_PROJECT_ROOT there',
    ],
    [
      '[worktree]\nsetup = ["echo \\\\{{story_id}}"]',
      'worktree.setup: item 0 has {{story_id}} after a backslash, which would escape the quote agent-pool puts around it; remove the backslash, or write $AGENT_POOL_STORY_ID',
    ],
    ['[pool]\nmax_concurrent = 0', 'pool.max_concurrent: must be between 1 and 1000, got 0'],
    ['[pool]\nmax_concurrent = 1.5', 'pool.max_concurrent: must be a whole number, got number 1.5'],
    ['[pool]\nstop_grace_seconds = -1', 'pool.stop_grace_seconds: must be at least 0, got -1'],
    ['[pool]\nstop_grace_seconds = "5"', 'pool.stop_grace_seconds: must be a number, got string "5"'],
    ['[store]\nmax_events_per_story = 10', 'store.max_events_per_story: must be between 100 and 9007199254740991, got 10'],
    ['[store]\nurl = "mysql://db/agent"', 'store.url: must be a postgresql:// URL, or "" for the SQLite file of path'],
    [
      '[store]\nurl = "postgresql://agent:hunter2@db/agent"',
      'store.url: holds a password: put the URL in an environment variable and name it with url_env; the file must not hold secrets',
    ],
    [
      '[store]\nurl = "postgresql://agent@db/agent?sslmode=require&password=hunter2"',
      'store.url: holds a password: put the URL in an environment variable and name it with url_env; the file must not hold secrets',
    ],
    ['[store]\nurl_env = "DATABASE-URL"', 'store.url_env: must be the name of an environment variable (letters, digits and _, not starting with a digit)'],
    ['[bus]\nurl = "http://cache:6379"', 'bus.url: must be a redis:// or rediss:// URL, or "" for one server without a bus'],
    [
      '[bus]\nurl = "redis://:hunter2@cache:6379"',
      'bus.url: holds a password: put the URL in an environment variable and name it with url_env; the file must not hold secrets',
    ],
    ['[bus]\nurl_env = "2REDIS"', 'bus.url_env: must be the name of an environment variable (letters, digits and _, not starting with a digit)'],
  ])('rejects a wrong type or value: %s', (text, expected) => {
    expect(configError(text).message).toBe(`/project/agent-pool.toml: ${expected}`);
  });

  it.each([
    ['[agent]\nprompt = "Do {{story}}"', 'agent.prompt', '{{story}}'],
    ['[agent]\nargs = ["--dir", "{{worktree}}"]', 'agent.args', '{{worktree}}'],
    ['[worktree]\nsetup = ["cp {{root}}/.env ."]', 'worktree.setup', '{{root}}'],
  ])('rejects an unknown placeholder: %s', (text, key, placeholder) => {
    expect(configError(text).message).toBe(
      `/project/agent-pool.toml: ${key}: unknown placeholder ${placeholder}; the placeholders are ` +
        "{{story_id}}, {{worktree_path}}, {{branch}}, {{project_root}}, {{port:NAME}} (a service's port) and, in a service, {{port}}",
    );
  });
});

describe('agent profiles', () => {
  it('takes setup placeholders outside quotes, beside quoted text of the command\'s own', () => {
    const setup = [
      'cp {{project_root}}/.env "$HOME/.env {{not a placeholder"',
      "echo 'done:' {{story_id}}",
      "# don't quote it\ncd {{worktree_path}}",
      "echo '<<'; cd {{worktree_path}}",
    ];
    const config = parseConfig(`[worktree]\nsetup = ${JSON.stringify(setup)}`, FILE);
    expect(config.worktree.setup).toEqual(setup);
  });

  it('reads kind, its old name format, and a command that defaults to the kind\'s own CLI', () => {
    const config = parseConfig(
      [
        '[agent]',
        'format = "text"',
        'command = "./run.sh"',
        '[agents.codex]',
        'kind = "codex"',
        'args = ["-m", "gpt-5.5"]',
        '[agents.gemini]',
        'kind = "gemini"',
        'env = { GEMINI_API_KEY = "k" }',
        '[agents.legacy]',
        'format = "claude-stream-json"',
        '[pool]',
        'default_agent = "codex"',
      ].join('\n'),
      FILE,
    );
    expect(Object.keys(config.agents)).toEqual(['default', 'codex', 'gemini', 'legacy']);
    expect(config.agent).toMatchObject({ kind: 'text', command: './run.sh' });
    expect(config.agents.default).toBe(config.agent);
    expect(config.agents.codex).toMatchObject({ kind: 'codex', command: 'codex', args: ['-m', 'gpt-5.5'], env: {} });
    expect(config.agents.gemini).toMatchObject({ kind: 'gemini', command: 'gemini', env: { GEMINI_API_KEY: 'k' } });
    expect(config.agents.legacy).toMatchObject({ kind: 'claude', command: 'claude' });
    // No inheritance: a profile has the defaults of [agent]'s keys, not [agent]'s values.
    expect(config.agents.codex!.prompt).toBe('Work on story {{story_id}}.');
    expect(config.pool.default_agent).toBe('codex');
  });
});

describe('[store] url', () => {
  it('takes a Postgres URL without a password, or the name of the variable that holds one (the honest twins)', () => {
    expect(parseConfig('[store]\nurl = "postgresql://agent@db.example:5432/agent"', FILE).store.url).toBe('postgresql://agent@db.example:5432/agent');
    expect(parseConfig('[store]\nurl_env = "DATABASE_URL"', FILE).store.url_env).toBe('DATABASE_URL');
  });
});

describe('agent-pool init file', () => {
  it('loads to exactly the defaults and documents every key', () => {
    const text = renderInitFile();
    expect(parseConfig(text, FILE)).toEqual(defaultConfig());
    for (const key of ['kind', 'command', 'args', 'prompt', 'env', 'idle_timeout_seconds', 'permission_mode', 'max_budget_usd', 'max_turns', 'keep_open_seconds', 'mcp', 'dir', 'branch_prefix', 'base', 'setup', 'remove_on_stop', 'default_agent', 'max_concurrent', 'stop_grace_seconds', 'path', 'url', 'url_env', 'max_events_per_story', 'api_url', 'repo', 'token_env', 'remote']) {
      expect(text).toMatch(new RegExp(`# .+\\n${key} = `));
    }
  });
});

describe('the [services] section', () => {
  it('reads ports and each [services.NAME], with {{port}} in a service and {{port:NAME}} anywhere', () => {
    const config = parseConfig(
      [
        '[agent]',
        'args = ["--api={{port:api}}"]',
        '[worktree]',
        'setup = ["echo {{port:web}} > port.txt"]',
        '[services]',
        'ports = "5000-5009"',
        '[services.web]',
        'command = "npm run dev -- --port {{port}}"',
        'ready = "ready in \\\\d+ ms"',
        'env = { API_URL = "http://127.0.0.1:{{port:api}}" }',
        '[services.api]',
        'command = "node server.js"',
      ].join('\n'),
      FILE,
    );
    expect(config.services).toEqual({
      ports: '5000-5009',
      first: 5000,
      last: 5009,
      defined: {
        web: { command: 'npm run dev -- --port {{port}}', ready: 'ready in \\d+ ms', env: { API_URL: 'http://127.0.0.1:{{port:api}}' } },
        api: { command: 'node server.js', ready: '', env: {} },
      },
    });
  });

  it.each([
    ['[services]\nports = "80-90"', 'services.ports: must be a range of ports "FIRST-LAST" within 1024-65535, e.g. "4800-4999", got string "80-90"'],
    ['[services]\nports = "5000-4000"', 'services.ports: must be a range of ports "FIRST-LAST" within 1024-65535, e.g. "4800-4999", got string "5000-4000"'],
    ['[services]\nports = 5000', 'services.ports: must be a range of ports "FIRST-LAST" within 1024-65535, e.g. "4800-4999", got number 5000'],
    ['[services]\nweb = "npm run dev"', 'services.web: unknown key; [services] has ports, and a table [services.NAME] for each service'],
    ['[services.Web]\ncommand = "x"', 'services.Web: a service\'s name is 1 to 32 of a-z 0-9 _ -, starting with a letter (it goes into {{port:NAME}})'],
    ['[services.web]\nready = "x"', 'services.web.command: is required: the command that runs the service (sh -c, in the story\'s worktree)'],
    ['[services.web]\ncommand = ""', 'services.web.command: must not be empty'],
    ['[services.web]\ncommand = "x"\nready = "("', 'services.web.ready: must be a regular expression (JavaScript\'s): Invalid regular expression: /(/: Unterminated group'],
    ['[services.web]\ncommand = "x"\nport = 3000', 'services.web.port: unknown key; the keys of [services.NAME] are command, ready, env'],
    ['[services.web]\ncommand = "serve --port \'{{port}}\'"', 'services.web.command: has {{port}} inside quotes: agent-pool quotes a placeholder itself (it becomes "$PORT"), so that any path works; write it without quotes (for example cd {{port}}/sub), or write $PORT inside your quotes'],
    ['[services.web]\ncommand = "x"\n[services.my_web]\ncommand = "y"\n[services.my-web]\ncommand = "z"', 'services.my-web: has the same port variable as [services.my_web] (- and _ are one in a variable\'s name): rename one'],
    ['[services.web]\ncommand = "x"\nenv = { URL = "{{nope}}" }', 'services.web.env: URL: unknown placeholder {{nope}}; the placeholders are {{story_id}}, {{worktree_path}}, {{branch}}, {{project_root}}, {{port:NAME}} (a service\'s port) and, in a service, {{port}}'],
    ['[agent]\nargs = ["--port={{port}}"]', 'agent.args: {{port}} is a service\'s own port, in its command and env; here, name the service: {{port:NAME}}'],
    ['[worktree]\nsetup = ["echo {{port:web}}"]', 'worktree.setup: {{port:web}} names no service of [services]; none is configured'],
    ['[agent]\nprompt = "{{port:db}}"\n[services.web]\ncommand = "x"', 'agent.prompt: {{port:db}} names no service of [services]; the services are web'],
  ])('rejects a wrong service: %s', (text, expected) => {
    expect(configError(text).message).toBe(`/project/agent-pool.toml: ${expected}`);
  });
});

describe('the [notify] section', () => {
  it('reads any number of [[notify.webhook]], each with its defaults', () => {
    const config = parseConfig(
      [
        '[notify]',
        'public_url = "https://pool.example.com/agents"',
        'retry_seconds = [0.5, 2]',
        '[[notify.webhook]]',
        'url = "https://hooks.example.com/agent-pool?team=1"',
        '[[notify.webhook]]',
        'url_env = "SLACK_WEBHOOK_URL"',
        'on = ["failed", "waiting", "failed"]',
        'secret_env = "HOOK_SECRET"',
        'format = "slack"',
      ].join('\n'),
      FILE,
    );
    expect(config.notify).toMatchObject({ public_url: 'https://pool.example.com/agents', retry_seconds: [0.5, 2], retry_every_seconds: 1800 });
    expect(config.notify.webhook).toEqual([
      { url: 'https://hooks.example.com/agent-pool?team=1', url_env: '', on: ['waiting', 'completed', 'failed', 'stopped'], secret_env: '', format: 'json' },
      { url: '', url_env: 'SLACK_WEBHOOK_URL', on: ['waiting', 'failed'], secret_env: 'HOOK_SECRET', format: 'slack' },
    ]);
  });

  const hook = (...lines: string[]) => ['[[notify.webhook]]', ...lines].join('\n');
  it.each([
    [hook('on = ["completed"]'), 'notify.webhook: [[notify.webhook]] number 1 needs url (the receiver\'s address) or url_env (the variable that holds it), one of the two'],
    [hook('url = "https://a.example"', 'url_env = "A"'), 'notify.webhook: [[notify.webhook]] number 1 needs url (the receiver\'s address) or url_env (the variable that holds it), one of the two'],
    [hook('url = "hooks.example.com"'), 'notify.webhook: [[notify.webhook]] number 1: url is not a URL: write the receiver\'s whole address, e.g. "https://hooks.example.com/agent-pool"'],
    [hook('url = "ftp://hooks.example.com"'), 'notify.webhook: [[notify.webhook]] number 1: url must be an http or https URL, not ftp:'],
    [hook('url = "https://a.example/#x"'), 'notify.webhook: [[notify.webhook]] number 1: url must have no #fragment: it is never sent'],
    [hook('url = "https://a.example"', 'on = []'), 'notify.webhook: [[notify.webhook]] number 1: on must be a non-empty array of "waiting", "completed", "failed", "stopped" (leave it out for all four), got an array'],
    [hook('url = "https://a.example"', 'on = ["done"]'), 'notify.webhook: [[notify.webhook]] number 1: on must hold only "waiting", "completed", "failed", "stopped", got string "done"'],
    [hook('url = "https://a.example"', 'format = "teams"'), 'notify.webhook: [[notify.webhook]] number 1: format must be one of "json", "slack", got "teams"'],
    [hook('url = "https://a.example"', 'secret_env = "MY-SECRET"'), 'notify.webhook: [[notify.webhook]] number 1: secret_env must be the name of an environment variable (letters, digits and _, not starting with a digit)'],
    [hook('url = "https://a.example"', 'secret = "x"'), 'notify.webhook: [[notify.webhook]] number 1: secret is an unknown key; the keys of [[notify.webhook]] are url, url_env, on, secret_env, format'],
    [`${hook('url = "https://a.example/x"')}\n${hook('url = "https://a.example/x"', 'on = ["failed"]')}`, 'notify.webhook: [[notify.webhook]] number 2 has the same url as number 1: one webhook per receiver, with every event it wants in its on'],
    ['[notify]\nwebhook = "https://a.example"', 'notify.webhook: must be written as [[notify.webhook]] tables, got string "https://a.example"'],
    ['[notify]\npublic_url = "pool.example.com"', 'notify.public_url: must be an http or https URL with no user, query or fragment (or "" for no link), got "pool.example.com"'],
    ['[notify]\nretry_seconds = []', 'notify.retry_seconds: must be a non-empty array of numbers, got an array'],
    ['[notify]\nretry_seconds = [1, -1]', 'notify.retry_seconds: item 1 must be at least 0, got -1'],
    ['[notify]\nretry_seconds = [1, inf]', 'notify.retry_seconds: must be an array of numbers, but item 1 is number Infinity'],
    ['[notify]\ntimeout_seconds = inf', 'notify.timeout_seconds: must be a number, got number Infinity'],
    ['[notify]\ntimeout_seconds = 3600', 'notify.timeout_seconds: must be at most 600, got 3600'],
    [`${hook('url = "https://a.example"')}\n${hook('url = "https://a.example/"')}`, 'notify.webhook: [[notify.webhook]] number 2 has the same url as number 1: one webhook per receiver, with every event it wants in its on'],
    ['[notify]\nhooks = []', 'notify.hooks: unknown key; the keys of [notify] are public_url, webhook, retry_seconds, retry_every_seconds, give_up_after_seconds, timeout_seconds'],
  ])('rejects a wrong webhook: %s', (text, expected) => {
    expect(configError(text).message).toBe(`/project/agent-pool.toml: ${expected}`);
  });

  it('never repeats a URL with a password, nor a secret written where its variable\'s name goes', () => {
    const withPassword = configError(hook('url = "https://user:hunter2@hooks.example.com/x"')).message;
    expect(withPassword).toContain('must not hold a user name or password: put such a URL in an environment variable and name it with url_env');
    expect(withPassword).not.toContain('hunter2');
    const token = 'ghp_0123456789abcdefABCDEF0123456789abcd';
    const tokenError = configError(hook('url = "https://a.example"', `secret_env = "${token}"`)).message;
    expect(tokenError).toContain('looks like a token, not the name of a variable');
    expect(tokenError).not.toContain(token);
  });
});

describe('the [forge] section', () => {
  it('reads every key, and keeps the defaults of those it omits', () => {
    expect(parseConfig('[forge]\nkind = "github"\n', FILE).forge).toEqual({
      kind: 'github',
      api_url: '',
      repo: '',
      token_env: 'GITHUB_TOKEN',
      remote: 'origin',
    });
    const config = parseConfig(
      [
        '[forge]',
        'kind = "gitlab"',
        'api_url = "https://gitlab.example.com/api/v4/"',
        'repo = "group/subgroup/name"',
        'token_env = "GITLAB_TOKEN"',
        'remote = "upstream"',
      ].join('\n'),
      FILE,
    );
    expect(config.forge).toEqual({
      kind: 'gitlab',
      api_url: 'https://gitlab.example.com/api/v4/',
      repo: 'group/subgroup/name',
      token_env: 'GITLAB_TOKEN',
      remote: 'upstream',
    });
  });

  it.each([
    ['kind = "bitbucket"', 'forge.kind: must be one of "none", "github", "gitlab", got "bitbucket"'],
    ['api_url = "api.github.com"', 'forge.api_url: must be an http or https URL (or "" for the default), got "api.github.com"'],
    ['api_url = "ftp://example.com"', 'forge.api_url: must be an http or https URL (or "" for the default), got "ftp://example.com"'],
    ['api_url = "https://example.com/api?x=1"', 'forge.api_url: must have no query or fragment, got "https://example.com/api?x=1"'],
    ['repo = "name"', 'forge.repo: must be "owner/name" (on GitLab "group/subgroup/name"), or "" to take it from the remote\'s URL, got "name"'],
    ['repo = "owner/"', 'forge.repo: must be "owner/name" (on GitLab "group/subgroup/name"), or "" to take it from the remote\'s URL, got "owner/"'],
    ['repo = "owner/../name"', 'forge.repo: must be "owner/name" (on GitLab "group/subgroup/name"), or "" to take it from the remote\'s URL, got "owner/../name"'],
    ['token_env = ""', 'forge.token_env: must not be empty'],
    ['token_env = "MY-TOKEN"', 'forge.token_env: must be the name of an environment variable (letters, digits and _, not starting with a digit)'],
    ['remote = ""', 'forge.remote: must not be empty'],
    ['token = "x"', 'forge.token: unknown key; the keys of [forge] are kind, api_url, repo, token_env, remote'],
  ])('rejects a wrong value: %s', (line, expected) => {
    expect(configError(`[forge]\n${line}`).message).toBe(`/project/agent-pool.toml: ${expected}`);
  });

  it('refuses a token where its variable\'s name goes, and a password in api_url, without repeating either', () => {
    const token = 'ghp_0123456789abcdefABCDEF0123456789abcd';
    const tokenError = configError(`[forge]\ntoken_env = "${token}"`);
    expect(tokenError.message).toBe(
      "/project/agent-pool.toml: forge.token_env: looks like a token, not the name of a variable: put the token in an environment variable and write that variable's name here; the file must never hold the token",
    );
    const urlError = configError('[forge]\napi_url = "https://me:hunter2secret@ghe.example.com/api/v3"');
    expect(urlError.message).toBe(
      '/project/agent-pool.toml: forge.api_url: must not hold a user name or password: the token comes from the variable token_env names',
    );
    expect(urlError.message).not.toContain('hunter2secret');
    // Their honest twins.
    expect(parseConfig('[forge]\ntoken_env = "GH_TOKEN"\napi_url = "https://ghe.example.com/api/v3"', FILE).forge).toMatchObject({
      token_env: 'GH_TOKEN',
      api_url: 'https://ghe.example.com/api/v3',
    });
  });
});
