import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/store/migrations.js';
import { Store } from '../../src/store/store.js';
import { type DeliveryRecord, newLanding } from '../../src/store/state-store.js';
import { StoreError } from '../../src/store/store-error.js';
import { tempDir } from '../support/temp.js';

const STORE_MODULE = fileURLToPath(new URL('../../dist/store/store.js', import.meta.url));

function openStore(file: string): Store {
  const store = Store.open(file);
  onTestFinished(() => store.close());
  return store;
}

const run = (overrides: Partial<Parameters<Store['saveRun']>[0]> = {}): Parameters<Store['saveRun']>[0] => ({
  storyId: 'S-1',
  number: 1,
  agent: 'default',
  prompt: 'do it',
  renderedPrompt: 'do it',
  status: 'RUNNING',
  sessionId: undefined,
  pid: 123,
  exitCode: undefined,
  error: undefined,
  usage: undefined,
  startedAt: new Date(1_000),
  finishedAt: undefined,
  firstSeq: 1,
  lastSeq: 2,
  worktreePath: '/w',
  branch: 'story/S-1',
  marker: 'm-1',
  ...overrides,
});

describe('Store', () => {
  it('creates the database in WAL mode with the current schema version', () => {
    const file = path.join(tempDir(), 'nested', 'state.db');
    openStore(file).close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it('keeps stories in the order they were first started, and runs with every field', async () => {
    const file = path.join(tempDir(), 'state.db');
    const store = openStore(file);
    await store.addStory('B', new Date(2));
    await store.addStory('A', new Date(1));
    await store.addStory('B', new Date(3));
    await store.saveRun(run({ storyId: 'B' }));
    await store.saveRun(run({ storyId: 'B', status: 'COMPLETED', usage: { inputTokens: 10, outputTokens: 5, cachedInputTokens: undefined, costUsd: 0.5 }, finishedAt: new Date(2_000), exitCode: 0, pid: undefined }));
    store.close();

    const again = openStore(file);
    expect((await again.stories()).map((story) => story.storyId)).toEqual(['B', 'A']);
    expect(await again.runs()).toEqual([
      run({ storyId: 'B', status: 'COMPLETED', usage: { inputTokens: 10, outputTokens: 5, cachedInputTokens: undefined, costUsd: 0.5 }, finishedAt: new Date(2_000), exitCode: 0, pid: undefined }),
    ]);
  });

  it('stores events in batches and reads them back by seq', async () => {
    const store = openStore(path.join(tempDir(), 'state.db'));
    const events = Array.from({ length: 10 }, (_, i) => ({
      storyId: 'S-1',
      seq: i + 1,
      run: 1,
      at: new Date(i),
      type: 'output',
      payload: JSON.stringify({ text: `line ${i + 1}` }),
    }));
    await store.appendEvents(events);
    expect(await store.readEvents('S-1', 4, 3)).toEqual(events.slice(3, 6));
    expect(await store.eventBounds('S-1')).toEqual({ firstSeq: 1, lastSeq: 10, lastAt: new Date(9) });
    await store.deleteEventsBefore('S-1', 8);
    expect(await store.eventBounds('S-1')).toEqual({ firstSeq: 8, lastSeq: 10, lastAt: new Date(9) });
    expect(await store.eventBounds('other')).toBeUndefined();
  });

  it('refuses a database that another process holds, saying so', async () => {
    const file = path.join(tempDir(), 'state.db');
    const holder = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const { Store } = await import(${JSON.stringify(STORE_MODULE)}); Store.open(${JSON.stringify(file)}); console.log('open'); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => holder.on('close', resolve));
    onTestFinished(async () => {
      holder.kill('SIGKILL');
      await exited;
    });
    await new Promise((resolve) => holder.stdout.once('data', resolve));

    expect(() => Store.open(file)).toThrow(StoreError);
    expect(() => Store.open(file)).toThrow(
      `${file} is in use by another process (another agent-pool server on this project?): stop it, or set [store] path in agent-pool.toml to another file`,
    );
    holder.kill('SIGKILL');
    await exited;
    // The operating system released the lock with the process.
    openStore(file);
  });

  it('refuses a file that is not a database it can read', () => {
    const file = path.join(tempDir(), 'state.db');
    writeFileSync(file, 'this is not sqlite'.repeat(100));
    expect(() => Store.open(file)).toThrow(
      new RegExp(`^${file} cannot be used as agent-pool's database \\(.+\\): move it away to start with an empty history`),
    );
  });

  it('brings a database of schema version 2 up to date: no titles, and each given prompt is what its agent got', async () => {
    const file = path.join(tempDir(), 'state.db');
    const old = new Database(file);
    for (const migration of MIGRATIONS.slice(0, 2)) old.exec(migration);
    old.pragma('user_version = 2');
    old.exec(`INSERT INTO stories (story_id, position, created_at, agent) VALUES ('old-1', 1, 1000, 'default')`);
    const insertRun = old.prepare(
      `INSERT INTO runs (story_id, number, agent, prompt, status, started_at, marker) VALUES ('old-1', ?, 'default', ?, 'COMPLETED', 1000, ?)`,
    );
    insertRun.run(1, 'old prompt', 'm-1');
    insertRun.run(2, null, 'm-2');
    old.close();

    const store = openStore(file);
    expect(await store.stories()).toEqual([{ storyId: 'old-1', createdAt: new Date(1000), agent: 'default', title: undefined, landing: newLanding() }]);
    expect((await store.runs()).map((run) => [run.number, run.prompt, run.renderedPrompt])).toEqual([
      [1, 'old prompt', 'old prompt'],
      // The configured prompt of an older run was rendered where nothing recorded it.
      [2, undefined, undefined],
    ]);
  });

  it('writes a run and the deliveries that report it in one transaction: both, or neither', async () => {
    const store = openStore(path.join(tempDir(), 'state.db'));
    await store.addStory('S-1', new Date(1));
    const delivery = (id: string, overrides: Partial<DeliveryRecord> = {}): DeliveryRecord => ({
      id,
      hook: 'url:abc',
      url: 'https://hooks.example.com/…',
      event: 'completed',
      storyId: 'S-1',
      body: `{"id":"${id}"}`,
      status: 'PENDING',
      attempts: 0,
      lastStatus: undefined,
      lastError: undefined,
      createdAt: new Date(5_000),
      nextAttemptAt: new Date(5_000),
      deliveredAt: undefined,
      ...overrides,
    });
    await store.saveRun(run({ status: 'COMPLETED' }), [delivery('d-1'), delivery('d-2', { event: 'waiting' })]);
    expect(await store.pendingDeliveries()).toEqual([delivery('d-1'), delivery('d-2', { event: 'waiting' })]);
    // A delivery that cannot be written takes the run's change with it.
    await expect(store.saveRun(run({ status: 'FAILED' }), [delivery('d-3'), delivery('d-1')])).rejects.toThrow(/UNIQUE/);
    expect((await store.runs())[0]!.status).toBe('COMPLETED');
    expect((await store.pendingDeliveries()).map((each) => each.id)).toEqual(['d-1', 'd-2']);

    const delivered = delivery('d-1', { status: 'DELIVERED', attempts: 2, lastStatus: 200, deliveredAt: new Date(9_000) });
    await store.updateDelivery(delivered);
    await store.updateDelivery(delivery('d-2', { event: 'waiting', attempts: 1, lastError: 'answered 503', lastStatus: 503, nextAttemptAt: new Date(6_000) }));
    expect(await store.pendingDeliveries()).toEqual([delivery('d-2', { event: 'waiting', attempts: 1, lastError: 'answered 503', lastStatus: 503, nextAttemptAt: new Date(6_000) })]);
    expect((await store.deliveries(10)).map((each) => each.id)).toEqual(['d-2', 'd-1']);
    expect(await store.deliveries(10, 'DELIVERED')).toEqual([delivered]);
    expect(await store.deliveries(1)).toHaveLength(1);
    // Finished ones go after their time; a PENDING one stays, however old.
    await store.deleteDeliveriesBefore(new Date(10_000));
    expect((await store.deliveries(10)).map((each) => each.id)).toEqual(['d-2']);
  });

  it('refuses a database from a newer schema version', () => {
    const file = path.join(tempDir(), 'state.db');
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 5}`);
    db.close();
    expect(() => Store.open(file)).toThrow(
      `${file} was written by a newer agent-pool (schema version ${SCHEMA_VERSION + 5}; this one knows up to ${SCHEMA_VERSION}): upgrade agent-pool, or set [store] path in agent-pool.toml to another file`,
    );
  });
});
