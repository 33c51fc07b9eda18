// The real Claude Code CLI from npm (a devDependency), run by the pool offline. Without a
// login it prints its init line, says it is not logged in, prints an error result and
// exits 1; as root without IS_SANDBOX=1 it refuses bypassPermissions with one plain line.
// Both must end FAILED with Claude's own words, followed by what fixes it.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { isTerminal, readUntil } from '../support/events.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { tempDir, tempRepo } from '../support/temp.js';

const CLAUDE_VERSION: string = JSON.parse(
  readFileSync(new URL('../../node_modules/@anthropic-ai/claude-code/package.json', import.meta.url), 'utf8'),
).version;

/** A pool whose agent is the `claude` that agent-pool resolves itself (its own node_modules/.bin). */
function claudePool(env: Record<string, string>): AgentPool {
  const root = tempRepo();
  const home = tempDir('claude-home-');
  const toml = Object.entries({
    HOME: home,
    CLAUDE_CONFIG_DIR: path.join(home, '.claude'),
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    ...env,
  })
    .map(([name, value]) => `${name} = ${JSON.stringify(value)}`)
    .join(', ');
  writeFileSync(path.join(root, 'agent-pool.toml'), `[agent]\ncommand = "claude"\nenv = { ${toml} }\n`);
  const inherited: NodeJS.ProcessEnv = { ...process.env, PATH: '/usr/local/bin:/usr/bin:/bin' };
  delete inherited.IS_SANDBOX;
  delete inherited.ANTHROPIC_API_KEY;
  const pool = new AgentPool({ projectRoot: root, env: inherited });
  onTestFinished(() => pool.dispose());
  return pool;
}

async function run(pool: AgentPool) {
  const events = pool.events('S-1');
  pool.start('S-1', 'Say hello.');
  const seen = await readUntil(events, isTerminal);
  await events.return!();
  return seen;
}

describe('the real claude CLI', () => {
  it('without a login ends FAILED with Claude\'s message and the session id of its init line', async () => {
    const pool = claudePool({ IS_SANDBOX: '1' });
    const events = await run(pool);
    const init = events.find((event) => event.type === 'json' && (event.data as { subtype?: string }).subtype === 'init');
    const data = (init as { data: { session_id: string; claude_code_version: string; cwd: string } }).data;
    expect(data.claude_code_version).toBe(CLAUDE_VERSION);
    expect(data.cwd).toBe(pool.get('S-1')!.worktreePath);
    expect(events.some((event) => event.type === 'output' && event.text === 'Not logged in · Please run /login')).toBe(true);
    // Claude's words, then what to do about them.
    const error =
      'Not logged in · Please run /login\nClaude Code needs a login or an API key: run `claude` once as the user that runs ' +
      'agent-pool and log in with /login, or set ANTHROPIC_API_KEY in agent-pool\'s environment or in the profile\'s env.';
    expect(events.at(-1)).toEqual(expect.objectContaining({ type: 'error', message: error }));
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', error, sessionId: data.session_id, exitCode: 1 });
    // With IS_SANDBOX=1 there is no refusal as root to explain.
    expect(error).not.toContain('IS_SANDBOX');
  });

  it('gives a follow-up the --resume of the session id its init line reported', async () => {
    const pool = claudePool({ IS_SANDBOX: '1' });
    await run(pool);
    const sessionId = pool.get('S-1')!.sessionId!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);

    // The follow-up's argv, recorded by the fake agent standing in for the CLI.
    const record = path.join(tempDir(), 'argv.json');
    writeFileSync(path.join(pool.projectRoot, 'agent-pool.toml'), `[agent]\ncommand = ${JSON.stringify(FAKE_AGENT)}\n`);
    const events = pool.events('S-1', pool.get('S-1')!.lastSeq);
    pool.continue('S-1', `record ${record}`);
    await readUntil(events, isTerminal);
    await events.return!();
    const { argv } = JSON.parse(readFileSync(record, 'utf8'));
    expect(argv.slice(-4)).toEqual(['--resume', sessionId, '--', `record ${record}`]);
    expect(argv[0]).toBe('-p');
  });

  it.skipIf(process.getuid?.() !== 0)('as root without IS_SANDBOX=1 ends FAILED with Claude\'s refusal and its fix', async () => {
    const pool = claudePool({});
    const events = await run(pool);
    const agent = pool.get('S-1')!;
    expect(agent.status).toBe('FAILED');
    expect(agent.error).toContain('--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons');
    expect(agent.error).toMatch(/^agent exited with code 1/);
    expect(agent.error).toMatch(
      /\nagent-pool runs as root, where Claude Code takes permission_mode "bypassPermissions" only in a sandbox\. If this machine is one \(a container or a VM\), set IS_SANDBOX=1 in agent-pool's environment or in the profile's env \(env = \{ IS_SANDBOX = "1" \}\); otherwise run agent-pool as another user, or set permission_mode = "default"/,
    );
    expect(events.at(-1)).toMatchObject({ type: 'error', message: agent.error });
  });
});
