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
    expect(loadConfig(tempDir())).toEqual({
      agent: {
        command: 'claude',
        args: [],
        prompt: 'Work on story {{story_id}}.',
        format: 'claude-stream-json',
        env: {},
      },
      worktree: {
        dir: '.agent-pool/worktrees',
        branch_prefix: 'story/',
        base: 'HEAD',
        setup: [],
        remove_on_stop: false,
      },
      pool: { max_concurrent: 4, stop_grace_seconds: 5 },
      store: { path: '.agent-pool/state.db', max_events_per_story: 100_000 },
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
      command: 'my-agent',
      args: ['--model', '{{story_id}}'],
      prompt: 'Work on story {{story_id}}.',
      format: 'text',
      env: { FOO: 'bar' },
    });
    expect(config.worktree.setup).toEqual(['npm ci']);
    expect(config.worktree.remove_on_stop).toBe(true);
    expect(config.worktree.branch_prefix).toBe('story/');
    expect(config.pool).toEqual({ max_concurrent: 2, stop_grace_seconds: 0.5 });
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
      '/project/agent-pool.toml: agent.comand: unknown key; the keys of [agent] are command, args, prompt, format, env',
    );
    expect(error.key).toBe('agent.comand');
  });

  it('rejects an unknown section and lists the sections', () => {
    expect(configError('[agnet]\ncommand = "x"\n').message).toBe(
      '/project/agent-pool.toml: agnet: unknown section; the sections are [agent], [worktree], [pool], [store]',
    );
  });

  it('rejects a top-level key that is not a section', () => {
    expect(configError('command = "claude"\n').message).toBe(
      '/project/agent-pool.toml: command: unknown section; the sections are [agent], [worktree], [pool], [store]',
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
    ['[agent]\nenv = ["A=1"]', 'agent.env: must be a table of strings, got an array'],
    ['[agent]\nenv = { A = 1 }', 'agent.env: must be a table of strings, but "A" is number 1'],
    ['[worktree]\nremove_on_stop = "yes"', 'worktree.remove_on_stop: must be true or false, got string "yes"'],
    ['[worktree]\nsetup = [["npm", "ci"]]', 'worktree.setup: must be an array of strings, but item 0 is an array'],
    ['[pool]\nmax_concurrent = 0', 'pool.max_concurrent: must be between 1 and 1000, got 0'],
    ['[pool]\nmax_concurrent = 1.5', 'pool.max_concurrent: must be a whole number, got number 1.5'],
    ['[pool]\nstop_grace_seconds = -1', 'pool.stop_grace_seconds: must be at least 0, got -1'],
    ['[pool]\nstop_grace_seconds = "5"', 'pool.stop_grace_seconds: must be a number, got string "5"'],
    ['[store]\nmax_events_per_story = 10', 'store.max_events_per_story: must be between 100 and 9007199254740991, got 10'],
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
        '{{story_id}}, {{worktree_path}}, {{branch}}, {{project_root}}',
    );
  });
});

describe('agent-pool init file', () => {
  it('loads to exactly the defaults and documents every key', () => {
    const text = renderInitFile();
    expect(parseConfig(text, FILE)).toEqual(defaultConfig());
    for (const key of ['command', 'args', 'prompt', 'format', 'env', 'dir', 'branch_prefix', 'base', 'setup', 'remove_on_stop', 'max_concurrent', 'stop_grace_seconds', 'path', 'max_events_per_story']) {
      expect(text).toMatch(new RegExp(`# .+\\n${key} = `));
    }
  });
});
