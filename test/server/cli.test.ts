import { statSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { printSdl } from '../../src/schema/index.js';
import { runCli, serverUrl, userEnv, wsClientOf } from '../support/cli.js';
import { isAlive } from '../support/events.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { AGENT_EVENTS, type EventResult } from '../support/server.js';
import { git, tempDir, tempRepo } from '../support/temp.js';

async function query(url: URL, body: string, token?: string | null) {
  const endpoint = `${url.origin}${url.pathname}`;
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query: body }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('agent-pool serve', () => {
  it('prints the URL with the real port and the generated token, kept in .agent-pool/token (0600) and reused', async () => {
    const root = tempRepo();
    const first = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    const url = await serverUrl(first);
    const token = url.searchParams.get('token')!;
    expect(url.hostname).toBe('127.0.0.1');
    expect(Number(url.port)).toBeGreaterThan(0);
    expect(first.stdout()).toBe(`agent-pool is serving ${root} at ${url.href}\nthe dashboard: ${url.origin}/?token=${token}\n`);
    const file = path.join(root, '.agent-pool', 'token');
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);

    expect((await query(url, '{ agents { storyId } }', token)).body).toEqual({ data: { agents: [] } });
    expect((await query(url, '{ agents { storyId } }')).status).toBe(401);
    expect(first.stderr()).not.toContain(token);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.stderr()).not.toContain(token);

    const second = runCli(['serve', '--port', '0', '--project', root], { env: userEnv() });
    expect((await serverUrl(second)).searchParams.get('token')).toBe(token);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
    expect(git(root, 'status', '--porcelain', '--untracked-files=all')).toBe('');
  });

  it('takes the token from --token, else from AGENT_POOL_TOKEN', async () => {
    const root = tempRepo();
    const flagged = runCli(['serve', '--port', '0', '--token', 'from-flag'], {
      cwd: root,
      env: { ...userEnv(), AGENT_POOL_TOKEN: 'from-env' },
    });
    expect((await serverUrl(flagged)).searchParams.get('token')).toBe('from-flag');
    flagged.child.kill('SIGTERM');
    await flagged.exited;

    const fromEnv = runCli(['serve', '--port', '0'], { cwd: root, env: { ...userEnv(), AGENT_POOL_TOKEN: 'from-env' } });
    const url = await serverUrl(fromEnv);
    expect(url.searchParams.get('token')).toBe('from-env');
    expect((await query(url, '{ agents { storyId } }', 'from-env')).status).toBe(200);
  });

  it('serves without a token with --no-auth on loopback, and refuses --no-auth elsewhere (exit 2)', async () => {
    const root = tempRepo();
    const open = runCli(['serve', '--port', '0', '--no-auth'], { cwd: root, env: userEnv() });
    const url = await serverUrl(open);
    expect(url.search).toBe('');
    expect((await query(url, '{ agents { storyId } }')).body).toEqual({ data: { agents: [] } });
    open.child.kill('SIGTERM');
    await open.exited;

    const refused = runCli(['serve', '--port', '0', '--no-auth', '--host', '0.0.0.0'], { cwd: root, env: userEnv() });
    expect(await refused.exited).toBe(2);
    expect(refused.stderr().trim().split('\n')).toHaveLength(1);
    expect(refused.stderr()).toContain('--no-auth is refused on 0.0.0.0');
  });

  it('exits 2 with one clear line outside a git repository', async () => {
    const dir = tempDir();
    const cli = runCli(['serve', '--port', '0'], { cwd: dir, env: userEnv() });
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toBe(
      `agent-pool: ${dir} is not inside a git work tree: run agent-pool in a clone of your project, or pass --project <dir>\n`,
    );
  });

  it('exits 2 with one line naming the file, key and line of an invalid config', async () => {
    const root = tempRepo();
    writeFileSync(path.join(root, 'agent-pool.toml'), '[agent]\ncommand = "claude"\nformat = "yaml"\n');
    const cli = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toBe(
      `agent-pool: ${root}/agent-pool.toml: agent.format: must be one of "claude-stream-json", "text", got "yaml"\n`,
    );

    writeFileSync(path.join(root, 'agent-pool.toml'), '[agent\ncommand = "claude"\n');
    const syntax = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    expect(await syntax.exited).toBe(2);
    expect(syntax.stderr()).toMatch(new RegExp(`^agent-pool: ${root}/agent-pool.toml:1:\\d+: TOML syntax error: .+\\n$`));
  });

  it('refuses a second server on the same project (exit 2), and takes over the lock of one that crashed', async () => {
    const root = tempRepo();
    const first = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    await serverUrl(first);
    const second = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    expect(await second.exited).toBe(2);
    expect(second.stderr()).toBe(
      `agent-pool: another agent-pool server (pid ${first.child.pid}) is already running for ${root}: use that one, or stop it first\n`,
    );
    first.child.kill('SIGKILL');
    await first.exited;
    const third = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    await serverUrl(third);
  });

  it('says which port is taken', async () => {
    const root = tempRepo();
    const first = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    const port = (await serverUrl(first)).port;
    const other = tempRepo();
    const second = runCli(['serve', '--port', port], { cwd: other, env: userEnv() });
    expect(await second.exited).toBe(2);
    expect(second.stderr()).toBe(
      `agent-pool: port ${port} on 127.0.0.1 is already in use: pass --port <another port> (0 picks a free one)\n`,
    );
  });

  it('on SIGTERM stops every agent, leaves no agent process behind, and exits 0', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root);
    const cli = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv() });
    const url = await serverUrl(cli);
    const token = url.searchParams.get('token')!;
    const client = wsClientOf(url);
    const events = client.iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    await query(url, 'mutation { startAgent(storyId: "S-1", prompt: "grandchildren; wait") { status } }', token);
    await query(url, 'mutation { startAgent(storyId: "S-2", prompt: "ignore-signals; wait") { status } }', token);
    let pids: number[] = [];
    for await (const result of events) {
      const event = (result.data as { agentEvents: EventResult }).agentEvents;
      const data = event.data as { subtype?: string; pids?: number[] } | undefined;
      if (data?.subtype === 'pids') {
        pids = data.pids!;
        break;
      }
    }
    expect(pids.every(isAlive)).toBe(true);

    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(cli.stderr()).toContain('SIGTERM: stopping 2 agent(s) and shutting down');
  });
});

describe('npm start', () => {
  it('serves the directory npm was run from (INIT_CWD)', async () => {
    const root = tempRepo();
    const packageDir = fileURLToPath(new URL('../..', import.meta.url));
    const child = spawn('npm', ['--prefix', packageDir, 'start', '--', '--port', '0'], {
      cwd: root,
      env: userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const exited = new Promise((resolve) => child.on('close', resolve));
    onTestFinished(async () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('/graphql?token=')) resolve();
      });
      void exited.then(() => reject(new Error(`npm start exited: ${out}`)));
    });
    expect(out).toContain(`agent-pool is serving ${root} at http://127.0.0.1:`);
    process.kill(-child.pid!, 'SIGTERM');
    await exited;
  });
});

describe('agent-pool schema', () => {
  it('prints the SDL, writes it, and checks a file against it (exit 1 when stale)', async () => {
    const dir = tempDir();
    const printed = runCli(['schema']);
    expect(await printed.exited).toBe(0);
    expect(printed.stdout()).toBe(printSdl());

    const file = path.join(dir, 'schema.graphql');
    expect(await runCli(['schema', '--write', file]).exited).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(printSdl());
    expect(await runCli(['schema', '--check', file]).exited).toBe(0);

    writeFileSync(file, `${printSdl()}\ntype Stale { x: Int }\n`);
    const stale = runCli(['schema', '--check', file]);
    expect(await stale.exited).toBe(1);
    expect(stale.stderr()).toContain('is stale: run `npm run schema`');
  });
});

describe('agent-pool init', () => {
  it('writes a commented agent-pool.toml with the defaults, and refuses to overwrite it without --force', async () => {
    const root = tempRepo();
    expect(await runCli(['init'], { cwd: root }).exited).toBe(0);
    const file = path.join(root, 'agent-pool.toml');
    const written = readFileSync(file, 'utf8');
    expect(written).toContain('command = "claude"');
    writeFileSync(file, '# mine\n');
    const refused = runCli(['init'], { cwd: root });
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toBe(`${file} already exists; pass --force to overwrite it with the defaults\n`);
    expect(readFileSync(file, 'utf8')).toBe('# mine\n');
    expect(await runCli(['init', '--force'], { cwd: root }).exited).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(written);
  });

  it('rejects unknown options with the usage (exit 2)', async () => {
    const cli = runCli(['serve', '--bogus']);
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toContain("Unknown option '--bogus'");
    expect(cli.stderr()).toContain('Usage:');
  });
});
