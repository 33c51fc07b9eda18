import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/store/migrations.js';
import { Store } from '../../src/store/store.js';
import { newLanding } from '../../src/store/state-store.js';
import { StoreError } from '../../src/store/store-error.js';
import { tempDir } from '../support/temp.js';

const STORE_MODULE = fileURLToPath(new URL('../../dist/store/store.js', import.meta.url));

function openStore(file: string): Store {
  const store = Store.open(file);
  onTestFinished(() => store.close());
  return store;
}

// The semantics every store shares are tested against SQLite and Postgres alike in
// state-stores.test.ts; these are SQLite's own (its file, its lock, its migrations).
describe('Store', () => {
  it('creates the database in WAL mode with the current schema version', () => {
    const file = path.join(tempDir(), 'nested', 'state.db');
    openStore(file).close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
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
