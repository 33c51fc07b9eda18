import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { INTERRUPTED_RUN_ERROR } from '../../src/pool/recovery.js';
import { EventLog } from '../../src/pool/event-log.js';
import type { AgentEvent } from '../../src/pool/events.js';
import { StoredEventStorage, TAIL_EVENTS } from '../../src/pool/stored-event-storage.js';
import { Store } from '../../src/store/store.js';
import { isAlive, isTerminal, readUntil } from '../support/events.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { tempDir, tempRepo } from '../support/temp.js';

/** A project with the fake agent and a state database; `open()` gives a pool over it, closed at the end. */
function project(lines: Parameters<typeof writeFakeAgentConfig>[1] = {}) {
  const root = tempRepo();
  writeFakeAgentConfig(root, lines);
  const file = path.join(root, '.agent-pool', 'state.db');
  return {
    root,
    file,
    async open(): Promise<{ pool: AgentPool; store: Store; close(): Promise<void> }> {
      const store = Store.open(file);
      const pool = await AgentPool.open({ projectRoot: root, store });
      let closed = false;
      const close = async () => {
        if (closed) return;
        closed = true;
        await pool.dispose();
        store.close();
      };
      onTestFinished(close);
      return { pool, store, close };
    },
  };
}

/** Stores story S-1 with run 1 RUNNING, as a server that crashed under it left it. */
async function saveRunningRun(store: Store, run: { prompt: string; sessionId: string | undefined; lastSeq: number; marker: string; runner?: string }): Promise<void> {
  await store.addStory('S-1', new Date());
  await store.saveRun({
    storyId: 'S-1',
    number: 1,
    agent: 'default',
    renderedPrompt: run.prompt,
    status: 'RUNNING',
    pid: 999_999,
    exitCode: undefined,
    error: undefined,
    usage: undefined,
    startedAt: new Date(),
    finishedAt: undefined,
    firstSeq: 1,
    worktreePath: undefined,
    branch: undefined,
    ...run,
  });
}

async function runToEnd(pool: AgentPool, storyId: string, prompt: string): Promise<AgentEvent[]> {
  const events = pool.events(storyId, pool.get(storyId)?.lastSeq ?? 0);
  pool.start(storyId, prompt);
  const seen = await readUntil(events, isTerminal);
  await events.return!();
  return seen;
}

async function readAll(pool: AgentPool, storyId: string): Promise<AgentEvent[]> {
  const lastSeq = pool.get(storyId)!.lastSeq;
  const events = pool.events(storyId);
  const seen = await readUntil(events, (event) => event.seq === lastSeq);
  await events.return!();
  return seen;
}

describe('a pool over the state database', () => {
  it('brings back agents, runs and events after a restart, and seq goes on', async () => {
    const { open } = project();
    const first = await open();
    await runToEnd(first.pool, 'S-1', 'say one');
    await runToEnd(first.pool, 'S-2', 'say other; result-error broken; exit 1');
    const before = first.pool.list();
    const history = await readAll(first.pool, 'S-1');
    await first.close();

    const second = await open();
    expect(second.pool.list()).toEqual(before);
    expect(await readAll(second.pool, 'S-1')).toEqual(history);
    const next = await runToEnd(second.pool, 'S-1', 'say two');
    expect(next[0]!.seq).toBe(history.at(-1)!.seq + 1);
    expect(next.every((event) => event.run === 2)).toBe(true);
    expect(second.pool.get('S-1')!.runs.map((run) => [run.number, run.status, run.prompt])).toEqual([
      [1, 'COMPLETED', 'say one'],
      [2, 'COMPLETED', 'say two'],
    ]);
    expect(second.pool.get('S-1')!.costUsd).toBeCloseTo(0.0246);
  });

  it('ends FAILED the runs a crash left RUNNING, and kills their surviving processes by marker only', async () => {
    const { open, file } = project();
    const setup = Store.open(file);
    const marker = randomUUID();
    await saveRunningRun(setup, { prompt: 'wait', sessionId: 'sess-1', lastSeq: 2, marker });
    await setup.appendEvents([
      { storyId: 'S-1', seq: 1, run: 1, at: new Date(), type: 'status', payload: '{"status":"PENDING"}' },
      { storyId: 'S-1', seq: 2, run: 1, at: new Date(), type: 'status', payload: '{"status":"RUNNING"}' },
    ]);
    await setup.close();
    // A survivor of the run, in a session of its own, and a bystander without the marker.
    const survivor = spawn('sleep', ['1000'], { env: { ...process.env, AGENT_POOL_RUN: marker }, detached: true, stdio: 'ignore' });
    const bystander = spawn('sleep', ['1000'], { env: { ...process.env, AGENT_POOL_RUN: randomUUID() }, detached: true, stdio: 'ignore' });
    onTestFinished(() => {
      for (const child of [survivor, bystander]) if (isAlive(child.pid!)) process.kill(child.pid!, 'SIGKILL');
    });

    const { pool } = await open();
    expect(isAlive(survivor.pid!)).toBe(false);
    expect(isAlive(bystander.pid!)).toBe(true);
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', error: INTERRUPTED_RUN_ERROR, pid: undefined, sessionId: 'sess-1', lastSeq: 4 });
    expect((await readAll(pool, 'S-1')).map((event) => (event.type === 'status' ? event.status : event.type))).toEqual([
      'PENDING',
      'RUNNING',
      'FAILED',
      'error',
    ]);
  });

  it('ends, alone, a run that a server of a cluster left RUNNING (the database came back to one server)', async () => {
    const setup = project();
    const first = Store.open(setup.file);
    await saveRunningRun(first, { prompt: 'wait', sessionId: undefined, lastSeq: 0, marker: randomUUID(), runner: 'alpha' });
    first.close();
    const { pool } = await setup.open();
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', error: INTERRUPTED_RUN_ERROR, runner: 'alpha' });
    pool.start('S-1', 'result');
    await expect.poll(() => pool.get('S-1')?.status).toBe('COMPLETED');
  });

  it('refuses, with the reason, the approvals a crash left waiting; a late answer is told they were answered', async () => {
    const { open, file } = project();
    const setup = Store.open(file);
    await saveRunningRun(setup, { prompt: 'write', sessionId: undefined, lastSeq: 5, marker: randomUUID() });
    const event = (seq: number, type: string, payload: object) => ({ storyId: 'S-1', seq, run: 1, at: new Date(), type, payload: JSON.stringify(payload) });
    await setup.appendEvents([
      event(1, 'status', { status: 'PENDING' }),
      event(2, 'status', { status: 'RUNNING' }),
      event(3, 'approval_request', { requestId: 'answered', tool: 'Write', input: {}, suggestions: null }),
      event(4, 'approval_resolved', { requestId: 'answered', allowed: true, reason: null }),
      event(5, 'approval_request', { requestId: 'waiting', tool: 'Bash', input: { command: 'ls' }, suggestions: null }),
    ]);
    await setup.close();

    const { pool } = await open();
    const events = await readAll(pool, 'S-1');
    expect(events.slice(5).map((e) => (e.type === 'approval_resolved' ? [e.type, e.requestId, e.allowed, e.reason] : [e.type]))).toEqual([
      ['approval_resolved', 'waiting', false, INTERRUPTED_RUN_ERROR],
      ['status'],
      ['error'],
    ]);
    expect(pool.get('S-1')).toMatchObject({ status: 'FAILED', pendingApprovals: [], waitingFor: undefined });
    await expect(pool.respondToApproval('S-1', 'waiting', { allow: true })).rejects.toThrow(
      expect.objectContaining({ code: 'APPROVAL_ALREADY_ANSWERED' }),
    );
    await expect(pool.respondToApproval('S-1', 'never-asked', { allow: true })).rejects.toThrow(
      expect.objectContaining({ code: 'APPROVAL_NOT_FOUND' }),
    );
    // Bad input is refused before anything else, with what was wrong.
    await expect(pool.respondToApproval('S-1', 'waiting', { allow: true, updatedInput: 'ls' })).rejects.toThrow(
      'updatedInput must be a JSON object, the tool\'s whole input (as the request\'s input), got "ls"',
    );
    await expect(pool.respondToApproval('S-1', 'waiting', { allow: false, remember: true })).rejects.toThrow(
      'updatedInput and remember go with allow: true; a denial takes only a message',
    );
    expect(() => pool.sendMessage('S-1', '  ')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => pool.sendMessage('S-1', 'more')).toThrow(expect.objectContaining({ code: 'AGENT_NOT_RUNNING' }));
  });

  it('stores a flood of 200,000 lines completely and replays it contiguously after a restart', async () => {
    const { open } = project({ store: 'max_events_per_story = 1000000' });
    const first = await open();
    await runToEnd(first.pool, 'S-1', 'tools 200000');
    const lastSeq = first.pool.get('S-1')!.lastSeq;
    await first.close();

    const second = await open();
    const all = await readAll(second.pool, 'S-1');
    expect(all.length).toBe(lastSeq);
    expect(all.every((event, i) => event.seq === i + 1)).toBe(true);
    expect(all.filter((event) => event.type === 'json')).toHaveLength(200_002);
  }, 120_000);
});

describe('StoredEventStorage', () => {
  function log(max: number) {
    const store = Store.open(path.join(tempDir(), 'state.db'));
    onTestFinished(() => store.close());
    return { store, log: new EventLog(new StoredEventStorage(store, max)) };
  }
  const say = (count: number) => Array.from({ length: count }, (_, i) => ({ type: 'output' as const, text: `t${i}` }));

  it('reads events older than its memory tail from the database', async () => {
    const { log: events } = log(1_000_000);
    for (let i = 0; i < 10; i++) events.append('S-1', 1, say(TAIL_EVENTS));
    const reader = events.read('S-1');
    const seen = await readUntil(reader, (event) => event.seq === 10 * TAIL_EVENTS);
    await reader.return!();
    expect(seen.map((event) => event.seq)).toEqual(seen.map((_, i) => i + 1));
    expect((await events.page('S-1', 5, 2)).map((event) => [event.seq, event.type === 'output' && event.text])).toEqual([
      [6, 't5'],
      [7, 't6'],
    ]);
  });

  it('reads past the seqs of a batch the database refused, in memory and from the database, without spinning', async () => {
    const { store, log: events } = log(1_000_000);
    const appendEvents = store.appendEvents.bind(store);
    let refuse = false;
    store.appendEvents = async (records) => {
      // SQLite's own error for a full disk, as better-sqlite3 throws it.
      if (refuse) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      await appendEvents(records);
    };
    const refused: unknown[] = [];
    events.onError((_storyId, error) => refused.push(error));
    events.append('S-1', 1, say(5));
    refuse = true;
    events.append('S-1', 1, say(2));
    await events.settled();
    refuse = false;
    events.append('S-1', 1, say(4));
    await events.settled();
    expect(refused).toHaveLength(1);
    const seqs = (page: AgentEvent[]) => page.map((event) => event.seq);
    // From the memory tail, whatever the position of the hole.
    expect(seqs(await events.page('S-1', 0, 20))).toEqual([1, 2, 3, 4, 5, 8, 9, 10, 11]);
    expect(seqs(await events.page('S-1', 6, 20))).toEqual([8, 9, 10, 11]);
    expect(seqs(await events.page('S-1', 10, 20))).toEqual([11]);
    // From the database.
    expect((await store.readEvents('S-1', 6, 20)).map((record) => record.seq)).toEqual([8, 9, 10, 11]);
    // A reader inside the hole goes on past it, and one at the end waits for the next event.
    const reader = events.read('S-1', 5);
    expect(seqs(await readUntil(reader, (event) => event.seq === 11))).toEqual([8, 9, 10, 11]);
    const next = reader.next();
    events.append('S-1', 2, say(1));
    expect((await next).value).toMatchObject({ seq: 12, run: 2 });
    await reader.return!();
  });

  it('keeps the newest max events per story without renumbering, and says when a replay asks for dropped ones', async () => {
    const { store, log: events } = log(1000);
    events.append('S-1', 1, say(1200));
    await events.settled();
    expect(await store.eventBounds('S-1')).toMatchObject({ firstSeq: 201, lastSeq: 1200 });
    expect((await events.page('S-1', 200, 1))[0]!.seq).toBe(201);
    await expect(events.page('S-1', 10, 5)).rejects.toThrow(/before seq 201 are no longer kept/);
    const reader = events.read('S-1', 3);
    await expect(reader.next()).rejects.toMatchObject({ code: 'EVENTS_TRUNCATED', extensions: { firstSeq: 201 } });
  });
});
