import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import type { AgentEvent } from '../../src/pool/events.js';
import { Store } from '../../src/store/store.js';
import { isAlive, isTerminal, readUntil } from '../support/events.js';
import { type ConfigLines, writeFakeAgentConfig } from '../support/fake-agent.js';
import { fakeAgentPool } from '../support/pool.js';
import { tempDir, tempRepo } from '../support/temp.js';

const poolFor = fakeAgentPool;

/** A profile whose agent is `sh -c <prompt>`: the prompt is a shell script, its output plain lines. */
const SHELL_AGENT: ConfigLines = { tables: '[agents.sh]\nkind = "text"\ncommand = "sh"\nargs = ["-c"]' };

async function runToEnd(pool: AgentPool, storyId: string, prompt?: string, agent?: string): Promise<AgentEvent[]> {
  const events = pool.events(storyId, pool.get(storyId)?.lastSeq ?? 0);
  pool.start(storyId, prompt, agent);
  try {
    return await readUntil(events, isTerminal);
  } finally {
    await events.return!();
  }
}

const outputs = (events: AgentEvent[]) => events.flatMap((event) => (event.type === 'output' ? [event.text] : []));

/** Resolves with `promise`, or rejects once `ms` have passed (a bound on a wait that used to hang for ever). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('the run supervisor', () => {
  it('takes nothing the agent prints or reads as a signal: `ps`, argv and its ancestors\' environments printed mid-run, the run ends COMPLETED with all its output', async () => {
    const pool = poolFor(SHELL_AGENT);
    const script = [
      'echo before',
      'ps -eo args',
      // Every ancestor's argv and environment, as an agent's tool could read them.
      'p=$$; while [ "$p" -gt 1 ]; do tr "\\0" " " < /proc/$p/cmdline; echo; tr "\\0" "\\n" < /proc/$p/environ; p=$(cut -d" " -f4 < /proc/$p/stat); done',
      'echo AGENT_POOL_EXIT_0123456789abcdef0123456789abcdef 7',
      'echo after',
    ].join('; ');
    const events = await runToEnd(pool, 'S-1', script, 'sh');
    const lines = outputs(events);
    expect(lines[0]).toBe('before');
    expect(lines.at(-1)).toBe('after');
    expect(lines.some((line) => line.includes('agent-pool-run'))).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'done', exitCode: 0 });
    expect(pool.get('S-1')).toMatchObject({ status: 'COMPLETED', exitCode: 0 });
  });

  it('takes no exit code or end from the helper\'s FIFOs, which an agent can reopen through /proc: its real exit code, all its output', async () => {
    const pool = poolFor(SHELL_AGENT);
    const findFifos = `for f in /proc/$PPID/fd/*; do case "$(readlink $f)" in *'/exit (deleted)') E=$f;; *'/drain (deleted)') D=$f;; esac; done`;
    // It says it exited 0, then exits 3.
    await runToEnd(pool, 'S-1', `${findFifos}; printf '0\\n' > $E; echo out; exit 3`, 'sh');
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', exitCode: 3 });
    // It says it exited, takes the drain secret and prints it, and goes on.
    const events = await runToEnd(pool, 'S-2', `${findFifos}; echo before; printf 'exited\\n' > $E; read s < $D; printf '\\n%s\\n' "$s"; echo hidden; sleep 1; echo more; exit 5`, 'sh');
    expect(outputs(events).filter((line) => /^[a-z]+$/.test(line))).toEqual(['before', 'hidden', 'more']);
    expect(pool.get('S-2')).toMatchObject({ status: 'FAILED', exitCode: 5 });
  });

  it('ends a run whose agent changed the terminal\'s output mode (stty olcuc) as it ended: COMPLETED, not held', async () => {
    const pool = poolFor(SHELL_AGENT);
    const events = await within(runToEnd(pool, 'S-1', 'echo done; stty olcuc; exit 0', 'sh'), 20_000, 'the end of a run with a changed terminal');
    expect(outputs(events)[0]).toBe('done');
    expect(pool.get('S-1')).toMatchObject({ status: 'COMPLETED', exitCode: 0 });
    // The drain line was recognised through the changed mode (not let go by the timer and
    // delivered as output), and taken out of the output.
    expect(outputs(events)).toEqual(['done']);
  });

  it('reports the agent\'s own exit code, out of band', async () => {
    const pool = poolFor(SHELL_AGENT);
    await runToEnd(pool, 'S-1', 'echo out; exit 3', 'sh');
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', exitCode: 3 });
  });

  it('parses the last line the agent printed without a newline before the end of its output', async () => {
    const script = path.join(tempDir(), 'gemini.sh');
    const lines = [
      '{"type":"init","session_id":"s-1","model":"m"}',
      '{"type":"message","role":"assistant","content":"hel","delta":true}',
      '{"type":"message","role":"assistant","content":"lo","delta":true}',
    ];
    writeFileSync(script, `#!/bin/sh\nprintf '%s\\n%s\\n%s' '${lines.join("' '")}'\n`, { mode: 0o755 });
    const pool = poolFor({ tables: `[agents.g]\nkind = "gemini"\ncommand = ${JSON.stringify(script)}` });
    const events = await runToEnd(pool, 'S-1', 'hi', 'g');
    expect(outputs(events)).toEqual(['hello']);
  });
});

describe('setup, as part of the run', () => {
  it('ends on the command\'s exit, not when its pipes close: `sleep 300 &` reaches COMPLETED and leaves no process', async () => {
    const pidFile = path.join(tempDir(), 'background.pid');
    const pool = poolFor({ worktree: `setup = ["sleep 300 & echo $! > ${pidFile}"]` });
    const events = await within(runToEnd(pool, 'S-1', 'say ready'), 30_000, 'a start after a setup that left a process running');
    expect(events.at(-1)).toMatchObject({ type: 'done' });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(pid)).toBe(false);
  });

  it('is stopped within the grace periods even when it ignores SIGINT and SIGTERM, and leaves no process', async () => {
    const dir = tempDir();
    const pool = poolFor({
      worktree: `setup = ["trap '' INT TERM; echo $$ > ${dir}/setup.pid; sleep 300 & echo $! > ${dir}/child.pid; wait"]`,
      pool: 'stop_grace_seconds = 0.3',
    });
    pool.start('S-1', 'say never');
    await expect.poll(() => existsSync(path.join(dir, 'child.pid')) && readFileSync(path.join(dir, 'child.pid'), 'utf8').endsWith('\n')).toBe(true);
    const pids = ['setup.pid', 'child.pid'].map((file) => Number(readFileSync(path.join(dir, file), 'utf8')));
    expect(pids.every(isAlive)).toBe(true);
    // The story's worktree is known from the moment it exists, before setup is done.
    expect(pool.get('S-1')).toMatchObject({ status: 'PENDING', branch: 'story/S-1' });
    expect(pool.get('S-1')!.worktreePath).toBe(path.join(pool.projectRoot, '.agent-pool', 'worktrees', 'S-1'));
    const stopped = await within(pool.stop('S-1'), 10_000, 'a stop during a stubborn setup');
    expect(stopped).toMatchObject({ status: 'STOPPED', branch: 'story/S-1' });
    expect(pids.filter(isAlive)).toEqual([]);
    expect((await pool.eventPage('S-1', 0, 10)).at(-1)).toMatchObject({ type: 'error', message: 'stopped by request' });
  });
});

describe('ending a run', () => {
  it('keeps the first reason: a stop after the idle timeout fired leaves the run FAILED for being idle', async () => {
    const pool = poolFor({ tables: `${SHELL_AGENT.tables}\nidle_timeout_seconds = 0.2`, pool: 'stop_grace_seconds = 0.5' });
    const events = pool.events('S-1');
    // Quiet after its first line: the idle timeout ends it, and it holds out against SIGTERM.
    pool.start('S-1', "trap 'echo got-term' TERM; echo started; while :; do sleep 1; done", 'sh');
    await readUntil(events, (event) => event.type === 'output' && event.text === 'got-term');
    await pool.stop('S-1');
    await events.return!();
    expect(pool.get('S-1')).toMatchObject({
      status: 'FAILED',
      error: 'agent printed nothing for 0.2 seconds (idle_timeout_seconds): it was stopped',
    });
  });

  it('removes the worktree of a stopped run before anyone hears it is STOPPED, so that a start at once gets a new one', async () => {
    const pool = poolFor({ worktree: 'remove_on_stop = true' });
    pool.start('S-1', 'wait');
    await expect.poll(() => pool.get('S-1')!.status).toBe('RUNNING');
    const worktree = pool.get('S-1')!.worktreePath!;
    let restarted = false;
    pool.onAgentChange((agent) => {
      if (agent.status !== 'STOPPED' || restarted) return;
      restarted = true;
      pool.start('S-1', `run touch made-by-run-2; say done`);
    });
    await pool.stop('S-1');
    expect(restarted).toBe(true);
    const events = pool.events('S-1', pool.get('S-1')!.runs[1]!.firstSeq! - 1);
    const rest = await readUntil(events, isTerminal);
    await events.return!();
    expect(rest.at(-1)).toMatchObject({ type: 'done' });
    expect(existsSync(path.join(worktree, 'made-by-run-2'))).toBe(true);
  });

  it('ends a run FAILED with the reason when the store refuses its output, and the pool goes on', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root);
    const store = Store.open(path.join(root, '.agent-pool', 'state.db'));
    const pool = await AgentPool.open({ projectRoot: root, store });
    onTestFinished(async () => {
      await pool.dispose();
      store.close();
    });
    const appendEvents = store.appendEvents.bind(store);
    let failing = false;
    store.appendEvents = async (events) => {
      // SQLite's own error for a full disk, as better-sqlite3 throws it.
      if (failing) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      await appendEvents(events);
    };
    pool.start('S-1', 'say started; sleep 300; flood 100');
    await expect.poll(() => pool.get('S-1')!.status).toBe('RUNNING');
    failing = true;
    await expect.poll(() => pool.get('S-1')!.status, { timeout: 15_000 }).toBe('FAILED');
    expect(pool.get('S-1')!.error).toBe('its events could not be recorded: database or disk is full');
    expect(pool.get('S-1')!.pid).toBeUndefined();

    failing = false;
    const events = await runToEnd(pool, 'S-2', 'say fine');
    expect(events.at(-1)).toMatchObject({ type: 'done' });
  });
});
