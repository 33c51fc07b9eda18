// The cluster's coordination in Postgres (src/store/cluster-store.ts): the run queue and its
// claims, heartbeats and lost runners, stops of queued runs, and webhook claims, on a
// private Postgres of this file's own, with several connections racing as servers would.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ClusterStore, lostRunnerError } from '../../src/store/cluster-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { RunnerLostError, RunTakenError } from '../../src/store/rows.js';
import type { DeliveryRecord, RunRecord } from '../../src/store/state-store.js';
import { type PrivatePostgres, postgresUnavailable, startPostgres } from '../support/postgres.js';

const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`CI runs the cluster store's tests: ${unavailable}`);

let postgres: PrivatePostgres | undefined;
beforeAll(() => {
  if (!unavailable) postgres = startPostgres();
});
afterAll(() => postgres?.stop());

const run = (storyId: string, number: number, overrides: Partial<RunRecord> = {}): RunRecord => ({
  storyId,
  number,
  agent: 'default',
  prompt: 'do it',
  renderedPrompt: 'do it',
  status: 'PENDING',
  sessionId: undefined,
  pid: undefined,
  exitCode: undefined,
  error: undefined,
  usage: undefined,
  startedAt: new Date(1_700_000_000_000),
  finishedAt: undefined,
  firstSeq: 1,
  lastSeq: 1,
  worktreePath: undefined,
  branch: undefined,
  marker: `m-${storyId}-${number}`,
  runner: undefined,
  ...overrides,
});

const pendingEvent = (storyId: string, seq: number, number = 1) => ({
  storyId,
  seq,
  run: number,
  at: new Date(1_700_000_000_000),
  type: 'status',
  payload: JSON.stringify({ status: 'PENDING' }),
});

/** A new database with its schema, a store of a server without a name on it, and its URL. */
async function database(): Promise<{ url: string; store: PostgresStore }> {
  const url = await postgres!.database();
  const store = await PostgresStore.open(url, { runner: 'setup' });
  onTestFinished(() => store.close());
  return { url, store };
}

function coordination(url: string): ClusterStore {
  const cluster = new ClusterStore(url);
  onTestFinished(() => cluster.close());
  return cluster;
}

async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Runs `calls` at the same moment: a third connection holds `table` until every one of
 * them waits for it (as Postgres shows), then lets them all go. (Should one settle first,
 * failing, it goes no further: its error is the test's.)
 */
async function atOnce<T>(url: string, table: string, calls: Array<() => Promise<T>>): Promise<T[]> {
  const barrier = new pg.Client({ connectionString: url });
  await barrier.connect();
  try {
    await barrier.query('BEGIN');
    await barrier.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    let settledOne = false;
    const settled = calls.map((call) => call().finally(() => (settledOne = true)));
    for (;;) {
      const { rows } = await barrier.query<{ waiting: number }>(
        "SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
      );
      if (rows[0]!.waiting >= calls.length || settledOne) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
      // Within a transaction, Postgres shows the activity as it first read it, until told to read again.
      await barrier.query('SELECT pg_stat_clear_snapshot()');
    }
    await barrier.query('COMMIT');
    return await Promise.all(settled);
  } finally {
    await barrier.end();
  }
}

/** Queues `count` stories' first runs, as a server's start does: the record and its PENDING event, then the queue. */
async function queue(store: PostgresStore, cluster: ClusterStore, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `Q-${i + 1}`);
  for (const storyId of ids) {
    await store.addStory(storyId, new Date());
    await store.saveRun(run(storyId, 1));
    await store.appendEvents([pendingEvent(storyId, 1)]);
    await cluster.enqueue(storyId, 1, undefined);
  }
  return ids;
}

describe.skipIf(unavailable)('the cluster store', () => {
  it('gives each queued run to one runner, oldest first, as many as each asks for, three runners at the same moment', async () => {
    const { url, store } = await database();
    const ids = await queue(store, coordination(url), 9);
    const runners = await Promise.all(
      ['r-1', 'r-2', 'r-3'].map(async (name) => {
        const cluster = coordination(url);
        return { name, cluster, incarnation: (await cluster.register(name, 'runner')).incarnation };
      }),
    );
    // Each with room for three, at once: each gets three, and none a run another got.
    const claims = await atOnce(url, 'run_queue', runners.map(({ name, cluster, incarnation }) => () => cluster.claim(name, incarnation, 3)));
    expect(claims.map((each) => each.length)).toEqual([3, 3, 3]);
    const claimed = claims.flat().map((claim) => claim.storyId);
    expect([...claimed].sort()).toEqual([...ids].sort());
    const owners = await sql(url, 'SELECT story_id, runner FROM runs ORDER BY story_id');
    for (const [index, { name }] of runners.entries()) {
      for (const claim of claims[index]!) expect(owners.find((row) => row.story_id === claim.storyId)?.runner).toBe(name);
    }
    // Oldest first: one runner alone takes the queue in the order it was filled.
    const [first] = runners;
    await first!.cluster.releaseAll('r-2');
    await first!.cluster.releaseAll('r-3');
    const again = await first!.cluster.claim('r-1', first!.incarnation, 6);
    expect(again.slice(0, 3)).toEqual(claims[0]);
    expect(again.slice(3).map((claim) => claim.storyId)).toEqual(ids.filter((id) => !claims[0]!.some((claim) => claim.storyId === id)));
    // What it claimed and has not begun comes back to it (an answer lost with its connection), whatever room it has.
    expect(await first!.cluster.claim('r-1', first!.incarnation, 0)).toHaveLength(9);
    // Begun, a run leaves the queue; one of another runner's is not this one's to take out.
    await store.saveRun(run(again[0]!.storyId, 1, { status: 'RUNNING', runner: 'r-1' }));
    await first!.cluster.dequeue('r-1', again[0]!.storyId, 1);
    await first!.cluster.dequeue('r-2', again[1]!.storyId, 1);
    expect(await first!.cluster.queued()).toHaveLength(8);
  });

  it('declares a silent runner lost once: its runs end FAILED with their events, its claimed runs go back, and it writes nothing more', async () => {
    const { url, store } = await database();
    const cluster = coordination(url);
    await queue(store, cluster, 3);
    const lostOne = coordination(url);
    const { incarnation } = await lostOne.register('far', 'runner');
    // Far claims all three; starts Q-1 (it runs, with output); Q-2 waits for its worktree;
    // Q-3 began, and far fell silent before it took it out of the queue.
    expect((await lostOne.claim('far', incarnation, 3)).map((claim) => claim.storyId)).toEqual(['Q-1', 'Q-2', 'Q-3']);
    const far = await PostgresStore.open(url, { runner: 'far' });
    onTestFinished(() => far.close());
    far.fence(incarnation);
    await far.saveRun(run('Q-1', 1, { status: 'RUNNING', runner: 'far', pid: 4242 }));
    await far.appendEvents([{ ...pendingEvent('Q-1', 2), type: 'output', payload: JSON.stringify({ text: 'working' }) }]);
    await lostOne.dequeue('far', 'Q-1', 1);
    await far.saveRun(run('Q-3', 1, { status: 'RUNNING', runner: 'far', pid: 4243 }));

    // Silent for a minute, by the database's clock; two servers look at the same moment.
    await sql(url, "UPDATE runners SET heartbeat_at = heartbeat_at - 60000 WHERE name = 'far'");
    const [one, two] = [coordination(url), coordination(url)];
    const declared = await atOnce(url, 'runners', [() => one.declareLost(30_000), () => two.declareLost(30_000)]);
    expect(declared.flat()).toEqual([
      {
        name: 'far',
        ended: [
          { storyId: 'Q-1', number: 1 },
          { storyId: 'Q-3', number: 1 },
        ],
        requeued: [{ storyId: 'Q-2', number: 1 }],
      },
    ]);
    const story = await store.story('Q-1');
    expect(story!.runs[0]).toMatchObject({ status: 'FAILED', error: lostRunnerError('far'), runner: 'far', pid: undefined, firstSeq: 1, lastSeq: 4 });
    const tail = await store.readEvents('Q-1', 3, 10);
    expect(tail.map((event) => [event.seq, event.type, JSON.parse(event.payload)])).toEqual([
      [3, 'status', { status: 'FAILED' }],
      [4, 'error', { message: 'runner far lost' }],
    ]);
    expect((await store.story('Q-3'))!.runs[0]).toMatchObject({ status: 'FAILED', runner: 'far' });
    expect((await store.story('Q-2'))!.runs[0]).toMatchObject({ status: 'PENDING', runner: undefined });
    expect(await cluster.queued()).toEqual([{ storyId: 'Q-2', number: 1 }]);

    // Far, still alive somewhere, may write nothing of its runs, claim nothing, and learns it was lost.
    await expect(far.appendEvents([{ ...pendingEvent('Q-1', 5), type: 'output', payload: '{"text":"late"}' }])).rejects.toThrow(RunnerLostError);
    await expect(far.saveRun(run('Q-1', 1, { status: 'COMPLETED', runner: 'far' }))).rejects.toThrow(/was declared lost by the cluster/);
    expect(await lostOne.claim('far', incarnation, 5)).toEqual([]);
    expect(await lostOne.fail('far', 'Q-2', 1, 'late')).toBe(false);
    await lostOne.dequeue('far', 'Q-2', 1);
    expect(await lostOne.heartbeat('far', incarnation)).toBe(false);
    expect(await store.readEvents('Q-1', 5, 10)).toEqual([]);
    // Another runner takes the run far never started.
    const near = await cluster.register('near', 'runner');
    expect((await cluster.claim('near', near.incarnation, 5)).map((claim) => claim.storyId)).toEqual(['Q-2']);

    // Far joins again, as a new incarnation: it hears it was lost; the old one still writes nothing.
    const again = await lostOne.register('far', 'runner');
    expect(again).toEqual({ incarnation: incarnation + 1, wasLost: true });
    await expect(far.saveRun(run('Q-1', 1, { status: 'COMPLETED', runner: 'far' }))).rejects.toThrow(RunnerLostError);
    expect(await lostOne.heartbeat('far', again.incarnation)).toBe(true);
    // An honest twin: the new incarnation writes its own runs; a runner that beats is never declared lost.
    far.fence(again.incarnation);
    await store.addStory('F-1', new Date());
    await far.saveRun(run('F-1', 1, { status: 'RUNNING', runner: 'far' }));
    await far.appendEvents([pendingEvent('F-1', 1)]);
    expect(await one.declareLost(30_000)).toEqual([]);
    // Left, it is not watched, and writes nothing more.
    await lostOne.leave('far', again.incarnation);
    await sql(url, "UPDATE runners SET heartbeat_at = heartbeat_at - 60000 WHERE name = 'far'");
    expect(await one.declareLost(30_000)).toEqual([]);
    await expect(far.appendEvents([{ ...pendingEvent('F-1', 2), type: 'output', payload: '{}' }])).rejects.toThrow(RunnerLostError);
    expect((await one.runners()).map((runner) => [runner.name, runner.lost])).toEqual([
      ['far', false],
      ['near', false],
    ]);
  });

  it('stops a run that waits unclaimed, with its event; a claimed one is its runner\'s to stop; a released one waits again', async () => {
    const { url, store } = await database();
    const cluster = coordination(url);
    await queue(store, cluster, 3);
    // Queued again (two servers started the story at the same moment): it waits once.
    await cluster.enqueue('Q-3', 1, undefined);
    expect(await cluster.queued()).toHaveLength(3);
    expect(await cluster.cancel('Q-1', 1)).toBe(true);
    expect((await store.story('Q-1'))!.runs[0]).toMatchObject({ status: 'STOPPED', lastSeq: 2 });
    expect((await store.readEvents('Q-1', 2, 10)).map((event) => JSON.parse(event.payload))).toEqual([{ status: 'STOPPED' }]);

    const { incarnation } = await cluster.register('r-1', 'runner');
    expect((await cluster.claim('r-1', incarnation, 1)).map((claim) => claim.storyId)).toEqual(['Q-2']);
    expect(await cluster.cancel('Q-2', 1)).toBe(false);
    expect((await store.story('Q-2'))!.runs[0]!.status).toBe('PENDING');

    // R-1 stopped before it started Q-2: given back, with its marker for the orphans.
    expect(await cluster.releaseAll('r-1')).toEqual([{ storyId: 'Q-2', number: 1, marker: 'm-Q-2-1' }]);
    expect((await store.story('Q-2'))!.runs[0]!.runner).toBeUndefined();
    expect((await cluster.claim('r-1', incarnation, 5)).map((claim) => claim.storyId)).toEqual(['Q-2', 'Q-3']);
    // A run that could not start ends FAILED, saying why, and leaves the queue.
    expect(await cluster.fail('r-1', 'Q-3', 1, 'it could not start on runner r-1: no such agent profile')).toBe(true);
    expect((await store.story('Q-3'))!.runs[0]).toMatchObject({ status: 'FAILED', error: 'it could not start on runner r-1: no such agent profile' });
    expect(await cluster.queued()).toEqual([{ storyId: 'Q-2', number: 1 }]);
    // A run that began is not given back: the runner's own recovery ends it.
    await store.saveRun(run('Q-2', 1, { status: 'RUNNING', runner: 'r-1' }));
    expect(await cluster.releaseAll('r-1')).toEqual([]);
    expect(await cluster.queued()).toEqual([]);
    // A run of another server is never overwritten by a start of the same number here.
    const other = await PostgresStore.open(url, { runner: 'r-2' });
    onTestFinished(() => other.close());
    await expect(other.saveRun(run('Q-2', 1, { runner: 'r-2' }))).rejects.toThrow(RunTakenError);

    // Stopped between its record and the queue: it is not queued, and no runner starts it.
    await store.addStory('Q-4', new Date());
    await store.saveRun(run('Q-4', 1));
    await store.appendEvents([pendingEvent('Q-4', 1)]);
    expect(await cluster.cancel('Q-4', 1)).toBe(true);
    await cluster.enqueue('Q-4', 1, undefined);
    expect(await cluster.claim('r-1', incarnation, 5)).toEqual([]);
    expect((await store.story('Q-4'))!.runs[0]!.status).toBe('STOPPED');

    // A story's next run waits for the runner that ran it (its worktree is there) while that
    // runner is the cluster's; once it has left (or is lost), any runner takes it.
    await store.addStory('A-1', new Date());
    await store.saveRun(run('A-1', 1));
    await cluster.enqueue('A-1', 1, undefined, 'r-1');
    const r2 = await cluster.register('r-2', 'runner');
    expect(await cluster.claim('r-2', r2.incarnation, 5)).toEqual([]);
    await cluster.leave('r-1', incarnation);
    expect((await cluster.claim('r-2', r2.incarnation, 5)).map((claim) => claim.storyId)).toEqual(['A-1']);
  });

  it('makes its connection again when the database drops it: the call that met the drop fails, the next one works', async () => {
    const { url } = await database();
    const cluster = coordination(url);
    const { incarnation } = await cluster.register('r-1', 'runner');
    // The database ends every connection but this one (a restart, a proxy that resets).
    await sql(url, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    const met = await cluster.heartbeat('r-1', incarnation).then(
      (alive) => alive,
      (error: Error) => error,
    );
    if (met instanceof Error) expect(met.message).toMatch(/terminat|Connection|connection/);
    expect(await cluster.heartbeat('r-1', incarnation)).toBe(true);
    expect((await cluster.runners()).map((runner) => runner.name)).toEqual(['r-1']);
  });

  it('lets one server at a time hold a webhook delivery, until its hold runs out', async () => {
    const { url, store } = await database();
    await store.addStory('S-1', new Date());
    const delivery: DeliveryRecord = {
      id: 'd-1',
      hook: 'url:abc',
      url: 'https://hooks.example.com/…',
      event: 'completed',
      storyId: 'S-1',
      body: '{}',
      status: 'PENDING',
      attempts: 0,
      lastStatus: undefined,
      lastError: undefined,
      createdAt: new Date(5_000),
      nextAttemptAt: new Date(5_000),
      deliveredAt: undefined,
    };
    await store.saveRun(run('S-1', 1, { status: 'COMPLETED' }), [delivery]);
    const [a, b] = [coordination(url), coordination(url)];
    const raced = await atOnce(url, 'webhook_deliveries', [() => a.claimDelivery('d-1', 'a', 60_000), () => b.claimDelivery('d-1', 'b', 60_000)]);
    expect(raced.filter(Boolean)).toHaveLength(1);
    const holder = raced[0] ? 'a' : 'b';
    const [mine, theirs] = holder === 'a' ? [a, b] : [b, a];
    const other = holder === 'a' ? 'b' : 'a';
    // Its holder may attempt it again; the other may not, until the hold runs out.
    expect(await mine.claimDelivery('d-1', holder, 60_000)).toBe(true);
    expect(await theirs.claimDelivery('d-1', other, 60_000)).toBe(false);
    await sql(url, "UPDATE webhook_deliveries SET claimed_until = claimed_until - 120000 WHERE id = 'd-1'");
    expect(await theirs.claimDelivery('d-1', other, 60_000)).toBe(true);
    // Delivered, it is no one's to send.
    await store.updateDelivery({ ...delivery, status: 'DELIVERED', attempts: 1, deliveredAt: new Date() });
    expect(await mine.claimDelivery('d-1', holder, 60_000)).toBe(false);
  });
});
