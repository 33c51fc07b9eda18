// `agent-pool serve` as a local attacker or a curious agent meets it: the token on the
// command line, files other users could read, secrets in the environment, git that goes on
// after a stop.
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, serverUrl, userEnv } from '../support/cli.js';
import { gitProcessesIn } from '../support/git-processes.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { tempDir, tempRepo } from '../support/temp.js';

async function post(url: URL, token: string, query: string): Promise<Record<string, unknown>> {
  const response = await fetch(`${url.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as Record<string, unknown>;
}

describe('the token', () => {
  it('comes from --token-file (no warning), and --token warns that ps shows it', async () => {
    const root = tempRepo();
    const file = path.join(tempDir(), 'token');
    writeFileSync(file, 'from-a-file-0123456789\n', { mode: 0o600 });
    const fromFile = runCli(['serve', '--port', '0', '--token-file', file], { cwd: root, env: userEnv() });
    const url = await serverUrl(fromFile);
    expect(url.searchParams.get('token')).toBe('from-a-file-0123456789');
    expect(await post(url, 'from-a-file-0123456789', '{ agents { storyId } }')).toEqual({ data: { agents: [] } });
    expect(fromFile.stderr()).not.toContain('--token is visible');
    fromFile.child.kill('SIGTERM');
    expect(await fromFile.exited).toBe(0);

    const flagged = runCli(['serve', '--port', '0', '--token', 'on-the-command-line'], { cwd: root, env: userEnv() });
    await serverUrl(flagged);
    expect(flagged.stderr()).toContain('--token is visible to every user of this machine in ps');
    expect(flagged.stderr()).not.toContain('on-the-command-line');
  });

  it('refuses an empty or missing --token-file, and both --token and --token-file (exit 2, one line)', async () => {
    const root = tempRepo();
    const empty = path.join(tempDir(), 'empty');
    writeFileSync(empty, '\n');
    for (const [args, message] of [
      [['--token-file', empty], 'is empty'],
      [['--token-file', path.join(root, 'missing')], 'cannot be read (ENOENT)'],
      [['--token-file', empty, '--token', 'x'], 'not both'],
    ] as const) {
      const cli = runCli(['serve', '--port', '0', ...args], { cwd: root, env: userEnv() });
      expect(await cli.exited).toBe(2);
      expect(cli.stderr()).toContain(message);
    }
  });
});

describe('what other users of the machine can read', () => {
  it('makes .agent-pool 0700 and the token and the database 0600, tightening what an older version left open', async () => {
    const root = tempRepo();
    mkdirSync(path.join(root, '.agent-pool'), { mode: 0o755 });
    chmodSync(path.join(root, '.agent-pool'), 0o755);
    writeFileSync(path.join(root, '.agent-pool', 'state.db'), '', { mode: 0o644 });
    chmodSync(path.join(root, '.agent-pool', 'state.db'), 0o644);
    const cli = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    const url = await serverUrl(cli);
    await post(url, url.searchParams.get('token')!, '{ agents { storyId } }');
    const mode = (file: string) => statSync(path.join(root, '.agent-pool', file)).mode & 0o777;
    expect(mode('.')).toBe(0o700);
    expect(mode('token')).toBe(0o600);
    for (const file of readdirSync(path.join(root, '.agent-pool')).filter((name) => name.startsWith('state.db'))) {
      expect(mode(file), file).toBe(0o600);
    }
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
  });
});

describe('secrets and agents', () => {
  it('gives agents and setup commands no variable that holds the token, whatever its name', async () => {
    const root = tempRepo();
    const records = tempDir();
    writeFakeAgentConfig(root, { worktree: `setup = ["env > ${path.join(records, 'setup-env.txt')}"]` });
    const token = 'a-token-kept-from-agents-7f3a';
    const cli = runCli(['serve', '--port', '0'], {
      cwd: root,
      env: userEnv({ AGENT_POOL_TOKEN: token, MY_COPY_OF_THE_TOKEN: token, DEPLOY_URL: `https://ci:${token}@example.com`, HARMLESS: 'kept' }),
    });
    const url = await serverUrl(cli);
    await post(url, token, `mutation { startAgent(storyId: "S-1", prompt: "record ${path.join(records, 'agent.json')}") { status } }`);
    await expect.poll(async () => JSON.stringify(await post(url, token, '{ agent(storyId: "S-1") { status } }')), { timeout: 15_000 }).toContain('COMPLETED');
    const agentEnv = JSON.parse(readFileSync(path.join(records, 'agent.json'), 'utf8')).env as Record<string, string>;
    const setupEnv = readFileSync(path.join(records, 'setup-env.txt'), 'utf8');
    for (const environment of [JSON.stringify(agentEnv), setupEnv]) {
      expect(environment).not.toContain(token);
      expect(environment).not.toContain('AGENT_POOL_TOKEN');
      expect(environment).not.toContain('MY_COPY_OF_THE_TOKEN');
    }
    // The honest twin: the rest of the environment is there.
    expect(agentEnv.HARMLESS).toBe('kept');
    expect(setupEnv).toContain('HARMLESS=kept');
  });
});

describe('git after a stop', () => {
  it('ends a read of git work on SIGTERM before it lets go of the project: no git of it outlives the server', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root);
    const cli = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    const url = await serverUrl(cli);
    const token = url.searchParams.get('token')!;
    await post(url, token, 'mutation { startAgent(storyId: "S-1", prompt: "say hi") { status } }');
    await expect.poll(async () => JSON.stringify(await post(url, token, '{ agent(storyId: "S-1") { status } }')), { timeout: 15_000 }).toContain('COMPLETED');
    const worktree = path.join(root, '.agent-pool', 'worktrees', 'S-1');
    // 3 GB of zeros (sparse: no disk) that git must hash: seconds of work.
    writeFileSync(path.join(worktree, 'huge.bin'), '');
    truncateSync(path.join(worktree, 'huge.bin'), 3 * 1024 * 1024 * 1024);
    const reading = post(url, token, '{ agent(storyId: "S-1") { changes { filesChanged } } }').catch(() => 'cut');
    await expect.poll(() => gitProcessesIn(worktree).length, { interval: 20, timeout: 10_000 }).toBeGreaterThan(0);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    // The lock is released only now; and no git of it is left.
    expect(gitProcessesIn(worktree)).toEqual([]);
    await reading;
  }, 60_000);
});

