// The StateStore's semantics, run against both implementations: SQLite (the default) and
// Postgres (`[store] url`), the latter on a private Postgres of this file's own.
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { SCHEMA_VERSION } from '../../src/store/migrations.js';
import { POSTGRES_SCHEMA_VERSION, PostgresStore } from '../../src/store/postgres-store.js';
import { type DeliveryRecord, type EventRecord, type RunRecord, type StateStore } from '../../src/store/state-store.js';
import { Store } from '../../src/store/store.js';
import { RunTakenError } from '../../src/store/rows.js';
import { StoreError } from '../../src/store/store-error.js';
import { type PrivatePostgres, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { tempDir } from '../support/temp.js';

const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`CI runs the Postgres store's tests: ${unavailable}`);

let postgres: PrivatePostgres | undefined;
beforeAll(() => {
  if (!unavailable) postgres = startPostgres();
});
afterAll(() => postgres?.stop());

/** How each implementation opens a store, and opens the same one again. */
interface Kind {
  name: string;
  skip: string | undefined;
  /** A new, empty store, and how to open it again. */
  fresh(): Promise<{ store: StateStore; reopen: () => Promise<StateStore> }>;
}

function closing<T extends StateStore>(store: T): T {
  onTestFinished(() => store.close());
  return store;
}

const KINDS: Kind[] = [
  {
    name: 'SQLite',
    skip: undefined,
    async fresh() {
      const file = path.join(tempDir(), 'state.db');
      const store = closing(Store.open(file));
      return { store, reopen: async () => closing(Store.open(file)) };
    },
  },
  {
    name: 'Postgres',
    skip: unavailable,
    async fresh() {
      const url = await postgres!.database();
      const store = closing(await PostgresStore.open(url));
      return { store, reopen: async () => closing(await PostgresStore.open(url)) };
    },
  },
];

const run = (overrides: Partial<RunRecord> = {}): RunRecord => ({
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
  startedAt: new Date(1_700_000_000_000),
  finishedAt: undefined,
  firstSeq: 1,
  lastSeq: 2,
  worktreePath: '/w',
  branch: 'story/S-1',
  marker: 'm-1',
  ...overrides,
});

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

const events = (storyId: string, from: number, count: number): EventRecord[] =>
  Array.from({ length: count }, (_, i) => ({
    storyId,
    seq: from + i,
    run: 1,
    at: new Date(1_700_000_000_000 + from + i),
    type: 'output',
    payload: JSON.stringify({ text: `line ${from + i}` }),
  }));

describe.each(KINDS)('the $name store', (kind) => {
  it.skipIf(kind.skip)('keeps stories in the order they were first started, with every field, and runs with every field', async () => {
    const { store, reopen } = await kind.fresh();
    await store.addStory('B', new Date(2), 'fast', 'A title', 'LEAD');
    await store.addStory('A', new Date(1));
    await store.addStory('B', new Date(3), 'other');
    await store.setStoryTitle('A', 'Its title');
    await store.setStoryAgent('A', 'slow');
    await store.saveLanding('B', {
      baseBranch: 'main',
      landedCommit: 'c1',
      landedAs: 'c2',
      mergedAt: new Date(4),
      archived: true,
      branchDeleted: false,
      pushedCommit: 'c3',
      pullRequest: { url: 'https://forge/pr/1', number: 1, state: 'merged' },
    });
    const finished = run({ storyId: 'B', status: 'COMPLETED', usage: { inputTokens: 10, outputTokens: 5, cachedInputTokens: undefined, costUsd: 0.5 }, finishedAt: new Date(1_700_000_002_000), exitCode: 0, pid: undefined });
    await store.saveRun(run({ storyId: 'B' }));
    await store.saveRun(finished);
    await store.close();

    const again = await reopen();
    const stories = await again.stories();
    expect(stories.map((story) => story.storyId)).toEqual(['B', 'A']);
    expect(stories[0]).toEqual({
      storyId: 'B',
      createdAt: new Date(2),
      agent: 'fast',
      title: 'A title',
      startedBy: 'LEAD',
      landing: {
        baseBranch: 'main',
        landedCommit: 'c1',
        landedAs: 'c2',
        mergedAt: new Date(4),
        archived: true,
        branchDeleted: false,
        pushedCommit: 'c3',
        pullRequest: { url: 'https://forge/pr/1', number: 1, state: 'merged' },
      },
    });
    expect(stories[1]).toMatchObject({ agent: 'slow', title: 'Its title', startedBy: undefined });
    expect(await again.runs()).toEqual([finished]);
  });

  it.skipIf(kind.skip)('stores events in batches, reads them by seq, bounds and drops them', async () => {
    const { store } = await kind.fresh();
    const written = events('S-1', 1, 10);
    await store.appendEvents(written.slice(0, 4));
    await store.appendEvents(written.slice(4));
    await store.appendEvents(events('S-2', 1, 3));
    expect(await store.readEvents('S-1', 4, 3)).toEqual(written.slice(3, 6));
    expect(await store.readEvents('S-1', 9, 100)).toEqual(written.slice(8));
    expect(await store.eventBounds('S-1')).toEqual({ firstSeq: 1, lastSeq: 10, lastAt: written[9]!.at });
    await store.deleteEventsBefore('S-1', 8);
    expect(await store.eventBounds('S-1')).toEqual({ firstSeq: 8, lastSeq: 10, lastAt: written[9]!.at });
    expect((await store.eventBounds('S-2'))!.lastSeq).toBe(3);
    expect(await store.eventBounds('other')).toBeUndefined();
  });

  it.skipIf(kind.skip)('refuses a second writer of the same seq, and keeps none of its batch', async () => {
    const { store } = await kind.fresh();
    await store.appendEvents(events('S-1', 1, 5));
    await expect(store.appendEvents([...events('S-1', 6, 2), ...events('S-1', 5, 1)])).rejects.toThrow();
    expect((await store.eventBounds('S-1'))!.lastSeq).toBe(5);
    expect(await store.readEvents('S-1', 1, 100)).toHaveLength(5);
  });

  it.skipIf(kind.skip)('writes a run and the deliveries that report it in one transaction: both, or neither', async () => {
    const { store } = await kind.fresh();
    await store.addStory('S-1', new Date(1));
    await store.saveRun(run({ status: 'COMPLETED' }), [delivery('d-1'), delivery('d-2', { event: 'waiting' })]);
    expect(await store.pendingDeliveries()).toEqual([delivery('d-1'), delivery('d-2', { event: 'waiting' })]);
    await expect(store.saveRun(run({ status: 'FAILED' }), [delivery('d-3'), delivery('d-1')])).rejects.toThrow();
    expect((await store.runs())[0]!.status).toBe('COMPLETED');
    expect((await store.pendingDeliveries()).map((each) => each.id)).toEqual(['d-1', 'd-2']);

    const delivered = delivery('d-1', { status: 'DELIVERED', attempts: 2, lastStatus: 200, deliveredAt: new Date(9_000) });
    await store.updateDelivery(delivered);
    expect((await store.deliveries(10)).map((each) => each.id)).toEqual(['d-2', 'd-1']);
    expect(await store.deliveries(10, 'DELIVERED')).toEqual([delivered]);
    expect(await store.deliveries(1)).toHaveLength(1);
    await store.deleteDeliveriesBefore(new Date(10_000));
    expect((await store.deliveries(10)).map((each) => each.id)).toEqual(['d-2']);
  });

  it.skipIf(kind.skip)('keeps each service\'s port, unique in the project, until its story gives them up', async () => {
    const { store } = await kind.fresh();
    const service = { storyId: 'S-1', name: 'web', port: 4100, status: 'READY', pid: 7, marker: 'svc-1', error: undefined };
    await store.saveService(service);
    await store.saveService({ ...service, status: 'STOPPED', pid: undefined });
    await expect(store.saveService({ ...service, storyId: 'S-2' })).rejects.toThrow();
    expect(await store.services()).toEqual([{ ...service, status: 'STOPPED', pid: undefined }]);
    await store.deleteServices('S-1');
    expect(await store.services()).toEqual([]);
  });
});

describe.each(KINDS)('the $name store, for a cluster', (kind) => {
  it.skipIf(kind.skip)('reads one story with its runs; a run another server recorded first is not overwritten; the cluster has one id', async () => {
    const { store, reopen } = await kind.fresh();
    await store.addStory('S-1', new Date(1), 'fast', 'Title');
    await store.saveRun(run({ runner: 'alpha' }));
    await store.saveRun(run({ runner: 'alpha', status: 'COMPLETED', pid: undefined }));
    const taken = store.saveRun(run({ runner: 'beta', status: 'FAILED', error: 'mine' }));
    await expect(taken).rejects.toBeInstanceOf(RunTakenError);
    await expect(taken).rejects.toMatchObject({ runner: 'alpha', storyId: 'S-1', number: 1 });
    await expect(taken).rejects.toThrow('run 1 of story S-1 was started on server alpha at the same moment: it runs there');
    // A server without a name (one alone) writes its runs as ever; the next number is anyone's.
    await store.saveRun(run({ number: 2, runner: 'beta' }));
    await store.addStory('S-2', new Date(2));
    await store.saveRun(run({ storyId: 'S-2', runner: undefined }));
    await store.saveRun(run({ storyId: 'S-2', runner: undefined, status: 'STOPPED' }));
    const one = await store.story('S-1');
    expect(one?.story).toMatchObject({ storyId: 'S-1', agent: 'fast', title: 'Title' });
    expect(one?.runs.map((each) => [each.number, each.status, each.runner])).toEqual([
      [1, 'COMPLETED', 'alpha'],
      [2, 'RUNNING', 'beta'],
    ]);
    expect(await store.story('S-9')).toBeUndefined();
    const id = await store.clusterId();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    await store.close();
    expect(await (await reopen()).clusterId()).toBe(id);
  });
});

describe.skipIf(unavailable)('the Postgres store', () => {
  it('ends with the same tables and columns as SQLite\'s, at the same schema version', async () => {
    expect(POSTGRES_SCHEMA_VERSION).toBe(SCHEMA_VERSION);
    const url = await postgres!.database();
    closing(await PostgresStore.open(url));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ table_name: string; column_name: string }>(
      "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name != 'agent_pool_schema'",
    );
    await client.end();
    const postgresColumns = rows.map((row) => `${row.table_name}.${row.column_name}`).sort();

    const file = path.join(tempDir(), 'state.db');
    Store.open(file).close();
    const db = new Database(file, { readonly: true });
    const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all();
    const sqliteColumns = tables.flatMap(({ name }) => db.prepare<[], { name: string }>(`PRAGMA table_info(${name})`).all().map((column) => `${name}.${column.name}`)).sort();
    db.close();
    expect(postgresColumns).toEqual(sqliteColumns);
  });

  it('migrates once when two servers start on it at the same time, and serves one of them; a newer schema is refused', async () => {
    const url = await postgres!.database();
    const opened = await Promise.allSettled([PostgresStore.open(url), PostgresStore.open(url)]);
    const stores = opened.flatMap((each) => (each.status === 'fulfilled' ? [closing(each.value)] : []));
    const refused = opened.flatMap((each) => (each.status === 'rejected' ? [(each.reason as Error).message] : []));
    expect(stores).toHaveLength(1);
    expect(refused).toEqual([expect.stringMatching(/is in use by another agent-pool server: stop it, set \[store\] url to another database, or give every server of it the same \[bus\] \(a cluster\)$/)]);
    await stores[0]!.addStory('S-1', new Date(1));
    await stores[0]!.close();
    // Closed, it gives the database up.
    const again = closing(await PostgresStore.open(url));
    expect((await again.stories()).map((story) => story.storyId)).toEqual(['S-1']);
    await again.close();

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    expect((await client.query('SELECT version FROM agent_pool_schema')).rows).toEqual([{ version: SCHEMA_VERSION }]);
    await client.query('UPDATE agent_pool_schema SET version = $1', [SCHEMA_VERSION + 5]);
    await client.end();
    await expect(PostgresStore.open(url)).rejects.toThrow(
      `was written by a newer agent-pool (schema version ${SCHEMA_VERSION + 5}; this one knows up to ${SCHEMA_VERSION}): upgrade agent-pool, or set [store] url to another database`,
    );
  });

  it('refuses a second server before it touches the schema', async () => {
    const url = await postgres!.database();
    const first = closing(await PostgresStore.open(url));
    await first.close();
    const running = closing(await PostgresStore.open(url));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    onTestFinished(() => client.end());
    await client.query('UPDATE agent_pool_schema SET version = $1', [SCHEMA_VERSION - 1]);
    await expect(PostgresStore.open(url)).rejects.toThrow(/is in use by another agent-pool server/);
    expect((await client.query('SELECT version FROM agent_pool_schema')).rows).toEqual([{ version: SCHEMA_VERSION - 1 }]);
    await running.close();
  });

  it('lets the servers of a cluster in, each name once, and keeps a server alone and a cluster apart', async () => {
    const url = await postgres!.database();
    // Started together on a new database: one migrates, the other waits for it.
    const [alpha, beta] = await Promise.all([PostgresStore.open(url, { runner: 'alpha' }).then(closing), PostgresStore.open(url, { runner: 'beta' }).then(closing)]);
    await expect(PostgresStore.open(url, { runner: 'alpha' })).rejects.toThrow(
      /^a server named alpha already serves the database at postgresql:\/\/postgres@\/\S+: give this one another name with --runner-name$/,
    );
    await expect(PostgresStore.open(url)).rejects.toThrow(/is in use by another agent-pool server/);
    await alpha.close();
    await beta.close();
    const alone = closing(await PostgresStore.open(url));
    await expect(PostgresStore.open(url, { runner: 'gamma' })).rejects.toThrow(/is in use by an agent-pool server without a \[bus\]: stop it, or give it this cluster's \[bus\] too$/);
    await alone.close();
    // Its name is free again once it is closed.
    closing(await PostgresStore.open(url, { runner: 'alpha' }));
  });

  it('in a cluster, stores events only for a run of its own server (or of no server\'s name)', async () => {
    const url = await postgres!.database();
    const alpha = closing(await PostgresStore.open(url, { runner: 'alpha' }));
    const beta = closing(await PostgresStore.open(url, { runner: 'beta' }));
    const events = (storyId: string, first: number, runNumber = 1): EventRecord[] =>
      [first, first + 1].map((seq) => ({ storyId, seq, run: runNumber, at: new Date(seq), type: 'output', payload: '{"text":"x"}' }));
    await beta.addStory('S-1', new Date(1));
    await alpha.addStory('S-1', new Date(1));
    await beta.saveRun(run({ runner: 'beta' }));
    await expect(alpha.saveRun(run({ runner: 'alpha' }))).rejects.toBeInstanceOf(RunTakenError);
    await expect(alpha.appendEvents(events('S-1', 1))).rejects.toThrow('run 1 of story S-1 was started on server beta at the same moment');
    await beta.appendEvents(events('S-1', 1));
    expect((await alpha.readEvents('S-1', 1, 10)).map((event) => event.seq)).toEqual([1, 2]);
    // A run of a server without a name (before the cluster) is anyone's to end.
    await alpha.addStory('S-2', new Date(2));
    await alpha.saveRun(run({ storyId: 'S-2', runner: undefined }));
    await beta.appendEvents(events('S-2', 1));
    expect(await alpha.eventBounds('S-2')).toMatchObject({ firstSeq: 1, lastSeq: 2 });
  });

  it('runs every call in order on its connection, however long one waits, and says so when the connection is lost', async () => {
    const url = await postgres!.database();
    const store = closing(await PostgresStore.open(url));
    await store.addStory('S-1', new Date(1));
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    onTestFinished(() => admin.end());
    // Another session holds the table: the calls queue behind the first, none is dropped.
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE stories');
    const calls = [store.setStoryTitle('S-1', 'first'), store.setStoryAgent('S-1', 'fast'), store.setStoryTitle('S-1', 'second')];
    await admin.query('COMMIT');
    await Promise.all(calls);
    expect((await store.stories())[0]).toMatchObject({ title: 'second', agent: 'fast' });

    // The connection (and with it the server's lock) is ended from outside.
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
    await expect.poll(() => store.stories().then(() => 'answered', (error: Error) => error.message)).toMatch(
      /^the connection to the database at postgresql:\/\/postgres@\/agent_pool_\S+ was lost \(.*\), and with it this server's hold on the database: restart agent-pool$/,
    );
    // Another server may have it now.
    closing(await PostgresStore.open(url));
  });

  it('stores what an agent printed that Postgres\'s types would refuse: a NUL in a text, a token count that is no integer', async () => {
    const { store } = await KINDS[1]!.fresh();
    await store.addStory('S-1', new Date(1));
    await store.saveRun(run({ error: 'bad\u0000byte', usage: { inputTokens: 1.5, outputTokens: 1e308, cachedInputTokens: undefined, costUsd: 1e308 } }), [delivery('d-1')]);
    const [stored] = await store.runs();
    expect(stored).toMatchObject({ error: 'bad\uFFFDbyte', usage: { inputTokens: 1, outputTokens: Number.MAX_SAFE_INTEGER, costUsd: 1e308 } });
    expect(await store.pendingDeliveries()).toHaveLength(1);
  });

  it('says which database it cannot reach, without its password', async () => {
    const url = `postgresql://agent:s3cret-pass@/nowhere?host=${encodeURIComponent(tempDir())}`;
    const refusal = await PostgresStore.open(url).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(StoreError);
    expect((refusal as Error).message).toMatch(/^the database at postgresql:\/\/agent:\*\*\*@\/nowhere\?host=.* cannot be used \(.*\): check \[store\] url \(or url_env\)/);
    expect((refusal as Error).message).not.toContain('s3cret-pass');
  });

  it('keeps a password out of its messages, however the URL holds it', async () => {
    const socket = encodeURIComponent(tempDir());
    for (const url of [`postgresql://agent:p@ss-s3cret@/nowhere?host=${socket}`, `postgresql://agent@/nowhere?host=${socket}&password=s3cret&sslpassword=s3cret2`]) {
      const message = await PostgresStore.open(url).then(
        () => '',
        (error: Error) => error.message,
      );
      expect(message).toMatch(/cannot be used/);
      expect(message).not.toMatch(/s3cret|ss-/);
    }
  });
});
