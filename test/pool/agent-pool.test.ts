import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '../../src/config/config-error.js';
import { AgentPool } from '../../src/pool/agent-pool.js';
import type { AgentEvent } from '../../src/pool/events.js';
import { AgentAlreadyRunningError, AgentNotFoundError } from '../../src/pool/pool-errors.js';
import { InvalidStoryIdError } from '../../src/worktree/story-id.js';
import { isAlive, isTerminal, readUntil } from '../support/events.js';
import { SHORT_AGENT, writeFakeAgentConfig } from '../support/fake-agent.js';
import { fakeAgentPool } from '../support/pool.js';
import { git, tempDir, tempRepo } from '../support/temp.js';

const poolFor = fakeAgentPool;

/** Runs a story to its terminal event and returns the run's events. */
async function runToEnd(pool: AgentPool, storyId: string, prompt?: string): Promise<AgentEvent[]> {
  const afterSeq = pool.get(storyId)?.lastSeq ?? 0;
  const events = pool.events(storyId, afterSeq);
  pool.start(storyId, prompt);
  try {
    return await readUntil(events, isTerminal);
  } finally {
    await events.return!();
  }
}

const types = (events: AgentEvent[]) => events.map((event) => (event.type === 'status' ? event.status : event.type));
const outputs = (events: AgentEvent[]) =>
  events.flatMap((event) => (event.type === 'output' ? [event.text] : []));

describe('a run', () => {
  it('goes PENDING → RUNNING → COMPLETED with every line as an event, one terminal event, and seq contiguous', async () => {
    const pool = poolFor();
    const reader = pool.events('S-1');
    const started = pool.start('S-1', 'say hello; say world');
    expect(started).toMatchObject({ storyId: 'S-1', status: 'PENDING', lastSeq: 1 });

    const events = await readUntil(reader, isTerminal);
    await reader.return!();
    const all = await pool.eventPage('S-1', 0, 1000);
    expect(types(all)).toEqual(['PENDING', 'RUNNING', 'json', 'json', 'output', 'json', 'output', 'json', 'usage', 'COMPLETED', 'done']);
    expect(all.map((event) => event.seq)).toEqual(all.map((_, i) => i + 1));
    expect(all.every((event) => event.run === 1 && event.storyId === 'S-1')).toBe(true);
    expect(outputs(all)).toEqual(['hello', 'world']);
    expect(events.filter(isTerminal)).toHaveLength(1);

    const init = all.find((event) => event.type === 'json')!;
    const sessionId = (init as { data: { session_id: string } }).data.session_id;
    expect(all.at(-1)).toMatchObject({ type: 'done', sessionId, exitCode: 0 });
    expect(pool.get('S-1')).toMatchObject({
      status: 'COMPLETED',
      sessionId,
      exitCode: 0,
      costUsd: 0.0123,
      pid: undefined,
      error: undefined,
      branch: 'story/S-1',
      worktreePath: path.join(pool.projectRoot, '.agent-pool', 'worktrees', 'S-1'),
      lastSeq: all.length,
    });
    expect(pool.get('S-1')!.finishedAt!.getTime()).toBeGreaterThanOrEqual(pool.get('S-1')!.startedAt!.getTime());
  });

  it('spawns the contract\'s argv in the worktree with a 200x50 terminal, NO_COLOR, PWD and [agent] env, never a shell', async () => {
    const pool = poolFor({
      agent: 'args = ["--model", "m-{{story_id}}", "--dir={{worktree_path}}"]\nenv = { EXTRA = "from config" }',
    });
    const record = path.join(tempDir(), 'record.json');
    const prompt = `record ${record}; say $(touch /tmp/pwned) "quoted" --flag`;
    await runToEnd(pool, 'S-2', prompt);
    const seen = JSON.parse(readFileSync(record, 'utf8'));
    const worktree = pool.get('S-2')!.worktreePath!;
    expect(seen.argv).toEqual([
      '-p',
      '--model',
      'm-S-2',
      `--dir=${worktree}`,
      '--output-format',
      'stream-json',
      '--verbose',
      '--permission-mode',
      'bypassPermissions',
      '--',
      prompt,
    ]);
    expect(seen.cwd).toBe(worktree);
    expect(seen.env).toMatchObject({ PWD: worktree, NO_COLOR: '1', EXTRA: 'from config' });
    expect(seen.env.AGENT_POOL_RUN).toMatch(/^[0-9a-f-]{36}$/);
    expect(outputs(await pool.eventPage('S-2', 0, 100))).toContain('$(touch /tmp/pwned) "quoted" --flag');
  });

  it('gives the agent a terminal of 200 columns and 50 rows', async () => {
    const root = tempRepo();
    const script = path.join(tempDir(), 'size.sh');
    writeFileSync(script, '#!/bin/sh\nstty size\n', { mode: 0o755 });
    writeFileSync(path.join(root, 'agent-pool.toml'), `[agent]\ncommand = ${JSON.stringify(script)}\nformat = "text"\n`);
    const pool = new AgentPool({ projectRoot: root });
    onTestFinished(() => pool.dispose());
    const events = await runToEnd(pool, 'S-1');
    expect(outputs(events)).toEqual(['50 200']);
  });

  it('uses the configured prompt, with placeholders, when start gets none', async () => {
    const pool = poolFor({ agent: 'prompt = "say story {{story_id}} on {{branch}}"' });
    expect(outputs(await runToEnd(pool, 'S-3'))).toEqual(['story S-3 on story/S-3']);
  });

  it('does not pass the server token, npm\'s script variables or FORCE_COLOR to the agent', async () => {
    const record = path.join(tempDir(), 'record.json');
    const pool = poolFor(
      {},
      {
        env: {
          ...process.env,
          AGENT_POOL_TOKEN: 'secret-token',
          npm_lifecycle_event: 'start',
          INIT_CWD: '/somewhere',
          FORCE_COLOR: '1',
          KEPT: 'yes',
        },
      },
    );
    await runToEnd(pool, 'S-1', `record ${record}`);
    const { env } = JSON.parse(readFileSync(record, 'utf8'));
    expect(env.KEPT).toBe('yes');
    expect(JSON.stringify(env)).not.toContain('secret-token');
    expect(env).not.toHaveProperty('npm_lifecycle_event');
    expect(env).not.toHaveProperty('INIT_CWD');
    expect(env).not.toHaveProperty('FORCE_COLOR');
  });

  it('fails with the result text when the result has is_error', async () => {
    const pool = poolFor();
    const events = await runToEnd(pool, 'S-1', 'result-error the model refused; exit 1');
    expect(types(events).slice(-2)).toEqual(['FAILED', 'error']);
    expect(events.at(-1)).toMatchObject({ type: 'error', message: 'the model refused' });
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', error: 'the model refused', exitCode: 1 });
  });

  it('fails with the exit code and the last lines of output on a non-zero exit', async () => {
    const pool = poolFor();
    const events = await runToEnd(pool, 'S-1', 'plain something went wrong; noresult; exit 3');
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      message: 'agent exited with code 3; its last output:\nsomething went wrong',
    });
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', exitCode: 3 });
  });

  it('fails when the agent exits 0 without a result', async () => {
    const pool = poolFor();
    const events = await runToEnd(pool, 'S-1', 'say hi; noresult');
    expect(events.at(-1)).toMatchObject({ type: 'error', message: 'agent exited without printing a result' });
  });

  it('turns non-JSON lines into output without escape codes and makes no event of a line of terminal resets', async () => {
    const pool = poolFor();
    const events = await runToEnd(pool, 'S-1', 'plain not json at all; ansi alert');
    expect(outputs(events)).toEqual(['not json at all', 'red alert']);
    expect(events.some((event) => event.type === 'output' && event.text.includes('\u001b'))).toBe(false);
  });

  it('reads lines written one byte at a time and lines of several megabytes', async () => {
    const pool = poolFor();
    const events = await runToEnd(pool, 'S-1', 'bytewise héllo — 日本語 🎉; bigline 5');
    const texts = outputs(events);
    expect(texts[0]).toBe('héllo — 日本語 🎉');
    expect(texts[1]).toHaveLength(5 * 1024 * 1024);
    expect(pool.get('S-1')!.status).toBe('COMPLETED');
  });

  it('loses no byte at the end of many short runs: each ends COMPLETED with its result', async () => {
    const root = tempRepo();
    writeFileSync(
      path.join(root, 'agent-pool.toml'),
      `[agent]\ncommand = ${JSON.stringify(SHORT_AGENT)}\n[pool]\nmax_concurrent = 8\n`,
    );
    const pool = new AgentPool({ projectRoot: root });
    onTestFinished(() => pool.dispose());
    const expected = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`);
    // 25 stories, 4 runs each: 100 short runs, each read to its last byte. (node-pty reports
    // the exit before the last bytes in about 1 short run of 8 when they are not drained
    // first: 100 runs would all pass that way with a chance of (7/8)^100, about 1 in 600,000.)
    const stories = Array.from({ length: 25 }, (_, i) => `short-${i}`);
    for (let round = 0; round < 4; round++) {
      const ends = await Promise.all(stories.map((storyId) => runToEnd(pool, storyId)));
      for (const events of ends) {
        expect(events.at(-1), JSON.stringify(events.at(-1))).toMatchObject({ type: 'done', exitCode: 0 });
        expect(outputs(events)).toEqual(expected);
        expect(types(events).slice(-5)).toEqual(['output', 'json', 'usage', 'COMPLETED', 'done']);
      }
    }
  }, 180_000);

  it('fails with a clear message when the agent command is not found', async () => {
    const root = tempRepo();
    writeFileSync(path.join(root, 'agent-pool.toml'), '[agent]\ncommand = "no-such-agent-cli"\n');
    const pool = new AgentPool({ projectRoot: root });
    onTestFinished(() => pool.dispose());
    const events = await runToEnd(pool, 'S-1');
    expect(types(events)).toEqual(['PENDING', 'FAILED', 'error']);
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      message: expect.stringContaining("agent command 'no-such-agent-cli' not found"),
    });
  });

  it('fails with the setup command\'s error, and runs setup again on the next start', async () => {
    const flag = path.join(tempDir(), 'ok');
    const pool = poolFor({ worktree: `setup = ["echo setting up; test -e ${flag}"]` });
    const failed = await runToEnd(pool, 'S-1');
    expect(types(failed)).toEqual(['PENDING', 'FAILED', 'error']);
    expect(failed.at(-1)).toMatchObject({
      message: `setup command "echo setting up; test -e ${flag}" exited with code 1; its last output:\nsetting up`,
    });
    writeFileSync(flag, '');
    expect(types(await runToEnd(pool, 'S-1')).slice(-2)).toEqual(['COMPLETED', 'done']);
  });

  it('starts a finished story again as run 2 in the same worktree, continuing seq', async () => {
    const pool = poolFor();
    const first = await runToEnd(pool, 'S-1', 'say one');
    writeFileSync(path.join(pool.get('S-1')!.worktreePath!, 'work.txt'), 'kept\n');
    const second = await runToEnd(pool, 'S-1', 'say two');
    expect(second[0]!.seq).toBe(first.at(-1)!.seq + 1);
    expect(second.every((event) => event.run === 2)).toBe(true);
    expect(readFileSync(path.join(pool.get('S-1')!.worktreePath!, 'work.txt'), 'utf8')).toBe('kept\n');
    expect(pool.get('S-1')!.runs.map((run) => [run.number, run.prompt, run.status])).toEqual([
      [1, 'say one', 'COMPLETED'],
      [2, 'say two', 'COMPLETED'],
    ]);
    expect(pool.get('S-1')!.costUsd).toBeCloseTo(0.0246);
  });
});

describe('start', () => {
  it('refuses a story that is PENDING or RUNNING', async () => {
    const pool = poolFor();
    pool.start('S-1', 'wait');
    expect(() => pool.start('S-1')).toThrow(AgentAlreadyRunningError);
    expect(() => pool.start('S-1')).toThrow('story S-1 is already PENDING');
  });

  it('refuses an invalid story id before anything happens', () => {
    const pool = poolFor();
    expect(() => pool.start('../etc')).toThrow(InvalidStoryIdError);
    expect(pool.list()).toEqual([]);
    expect(existsSync(path.join(pool.projectRoot, '.agent-pool'))).toBe(false);
  });

  it('reads agent-pool.toml again at each start: an invalid file fails that start and changes nothing', async () => {
    const pool = poolFor();
    await runToEnd(pool, 'S-1', 'say first');
    const before = pool.get('S-1');
    writeFileSync(path.join(pool.projectRoot, 'agent-pool.toml'), '[agent]\ncomand = "typo"\n');
    expect(() => pool.start('S-1')).toThrow(ConfigError);
    expect(() => pool.start('S-2')).toThrow('agent.comand: unknown key');
    expect(pool.get('S-1')).toEqual(before);
    expect(pool.get('S-2')).toBeUndefined();

    writeFakeAgentConfig(pool.projectRoot, { agent: 'prompt = "say edited"' });
    expect(outputs(await runToEnd(pool, 'S-1'))).toEqual(['edited']);
  });

  it('queues starts beyond max_concurrent and runs them first come, first served', async () => {
    const pool = poolFor({ pool: 'max_concurrent = 2\nstop_grace_seconds = 0.5' });
    const reader = pool.events('C');
    pool.start('A', 'wait');
    pool.start('B', 'wait');
    pool.start('C', 'say third');
    pool.start('D', 'say fourth');
    await expect.poll(() => pool.get('A')!.status).toBe('RUNNING');
    await expect.poll(() => pool.get('B')!.status).toBe('RUNNING');
    expect(pool.get('C')!.status).toBe('PENDING');
    expect(pool.get('D')!.status).toBe('PENDING');

    await pool.stop('A');
    await readUntil(reader, isTerminal);
    await reader.return!();
    expect(pool.get('C')!.status).toBe('COMPLETED');
    await expect.poll(() => pool.get('D')!.status).toBe('COMPLETED');
    expect(pool.get('D')!.startedAt!.getTime()).toBeGreaterThanOrEqual(pool.get('C')!.startedAt!.getTime());
    expect(pool.get('B')!.status).toBe('RUNNING');
    expect(pool.list('RUNNING').map((agent) => agent.storyId)).toEqual(['B']);
  });
});

describe('stop', () => {
  it('ends the whole run, grandchildren too, even one in its own session, and returns once they are gone', async () => {
    const pool = poolFor();
    const events = pool.events('S-1');
    pool.start('S-1', 'grandchildren; wait');
    const seen = await readUntil(events, (event) => event.type === 'json' && (event.data as { subtype?: string }).subtype === 'pids');
    const pids: number[] = (seen.at(-1) as { data: { pids: number[] } }).data.pids;
    const agentPid = pool.get('S-1')!.pid!;
    expect([agentPid, ...pids].every(isAlive)).toBe(true);

    const stopped = await pool.stop('S-1');
    expect(stopped).toMatchObject({ status: 'STOPPED', pid: undefined });
    expect([agentPid, ...pids].filter(isAlive)).toEqual([]);
    const rest = await readUntil(events, isTerminal);
    await events.return!();
    expect(types(rest).slice(-2)).toEqual(['STOPPED', 'error']);
    expect(rest.at(-1)).toMatchObject({ message: 'stopped by request' });
  });

  it('escalates to SIGKILL for an agent that ignores SIGINT and SIGTERM', async () => {
    const pool = poolFor({ pool: 'stop_grace_seconds = 0.3' });
    const events = pool.events('S-1');
    pool.start('S-1', 'ignore-signals; grandchildren; wait');
    const seen = await readUntil(events, (event) => event.type === 'json' && (event.data as { subtype?: string }).subtype === 'pids');
    await events.return!();
    const pids: number[] = (seen.at(-1) as { data: { pids: number[] } }).data.pids;
    const began = Date.now();
    expect(await pool.stop('S-1')).toMatchObject({ status: 'STOPPED' });
    expect(Date.now() - began).toBeGreaterThanOrEqual(500);
    expect(pids.filter(isAlive)).toEqual([]);
  });

  it('lets the agent interrupt itself first (SIGINT), as Claude prints its result and exits', async () => {
    const pool = poolFor();
    const events = pool.events('S-1');
    pool.start('S-1', 'wait');
    await expect.poll(() => pool.get('S-1')!.status).toBe('RUNNING');
    await readUntil(events, (event) => event.type === 'json');
    await pool.stop('S-1');
    const rest = await readUntil(events, isTerminal);
    await events.return!();
    // The interrupted result the agent printed on SIGINT is read before the run ends.
    expect(rest.some((event) => event.type === 'json' && (event.data as { subtype?: string }).subtype === 'error_during_execution')).toBe(true);
    expect(pool.get('S-1')).toMatchObject({ status: 'STOPPED', exitCode: 130 });
  });

  it('takes a PENDING story out of the queue and ends it STOPPED', async () => {
    const pool = poolFor({ pool: 'max_concurrent = 1' });
    pool.start('A', 'wait');
    pool.start('B', 'say never');
    expect(await pool.stop('B')).toMatchObject({ status: 'STOPPED' });
    expect(types(await pool.eventPage('B', 0, 10))).toEqual(['PENDING', 'STOPPED', 'error']);
    await pool.stop('A');
    expect(pool.get('B')!.status).toBe('STOPPED');
    expect(pool.get('B')!.worktreePath).toBeUndefined();
  });

  it('interrupts a running setup command', async () => {
    const started = path.join(tempDir(), 'started');
    const pool = poolFor({ worktree: `setup = ["touch ${started}; sleep 60"]` });
    pool.start('S-1');
    await expect.poll(() => existsSync(started)).toBe(true);
    expect(await pool.stop('S-1')).toMatchObject({ status: 'STOPPED' });
    expect(types(await pool.eventPage('S-1', 0, 10))).toEqual(['PENDING', 'STOPPED', 'error']);
  });

  it('returns a story that is not running unchanged, and refuses one that never existed', async () => {
    const pool = poolFor();
    await runToEnd(pool, 'S-1', 'say hi');
    const before = pool.get('S-1');
    expect(await pool.stop('S-1')).toEqual(before);
    await expect(pool.stop('never')).rejects.toThrow(AgentNotFoundError);
    await expect(pool.stop('bad id')).rejects.toThrow(InvalidStoryIdError);
  });

  it('removes the worktree with remove_on_stop, saving uncommitted work on the branch', async () => {
    const pool = poolFor({ worktree: 'remove_on_stop = true' });
    pool.start('S-1', 'wait');
    await expect.poll(() => pool.get('S-1')!.status).toBe('RUNNING');
    const worktree = pool.get('S-1')!.worktreePath!;
    writeFileSync(path.join(worktree, 'unsaved.txt'), 'agent work\n');
    await pool.stop('S-1');
    expect(existsSync(worktree)).toBe(false);
    expect(git(pool.projectRoot, 'show', 'story/S-1:unsaved.txt')).toBe('agent work');
  });
});

describe('events', () => {
  it('gives a late subscriber with afterSeq a contiguous sequence during a flood', async () => {
    const pool = poolFor({ store: 'max_events_per_story = 1000000' });
    const early = pool.events('S-1');
    pool.start('S-1', 'flood 100000');
    await readUntil(early, (event) => event.seq >= 5000);
    await early.return!();

    // Subscribed while the flood goes on: everything after seq 3000, then live.
    const late = pool.events('S-1', 3000);
    const seen = await readUntil(late, isTerminal);
    await late.return!();
    expect(seen.map((event) => event.seq)).toEqual(seen.map((_, i) => 3001 + i));
    expect(seen.at(-1)!.type).toBe('done');
    const lines = outputs(await pool.eventPage('S-1', 0, 1_000_000));
    expect(lines).toEqual(Array.from({ length: 100_000 }, (_, i) => `line ${i + 1}`));
  }, 120_000);

  it('can be read before the story starts and stays open across runs', async () => {
    const pool = poolFor();
    const events = pool.events('S-1');
    const first = runToEnd(pool, 'S-1', 'say one');
    const run1 = await readUntil(events, isTerminal);
    await first;
    await runToEnd(pool, 'S-1', 'say two');
    const run2 = await readUntil(events, isTerminal);
    await events.return!();
    expect(outputs([...run1, ...run2])).toEqual(['one', 'two']);
    expect([...run1, ...run2].map((event) => event.seq)).toEqual([...run1, ...run2].map((_, i) => i + 1));
  });

  it('refuses an invalid story id', () => {
    const pool = poolFor();
    expect(() => pool.events('a/b')).toThrow(InvalidStoryIdError);
  });
});

describe('dispose', () => {
  it('stops every agent (STOPPED, processes gone) and ends every reader', async () => {
    const pool = poolFor({ pool: 'max_concurrent = 1\nstop_grace_seconds = 0.5' });
    const events = pool.events('A');
    pool.start('A', 'grandchildren; wait');
    pool.start('B', 'wait');
    const seen = await readUntil(events, (event) => event.type === 'json' && (event.data as { subtype?: string }).subtype === 'pids');
    const pids: number[] = (seen.at(-1) as { data: { pids: number[] } }).data.pids;
    await pool.dispose();
    expect(pool.get('A')!.status).toBe('STOPPED');
    expect(pool.get('B')!.status).toBe('STOPPED');
    expect(pids.filter(isAlive)).toEqual([]);
    expect(pool.eventLog.openReaders).toBe(0);
    expect(() => pool.start('C')).toThrow('shutting down');
  });
});
