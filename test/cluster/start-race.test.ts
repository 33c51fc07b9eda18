// Two pools of a cluster in one process, over one private Postgres and no bus (what the bus
// would say is said by hand): two servers asked to start the same new story at the same
// moment, and a server that has not heard the latest bells.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { type PrivatePostgres, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { tempRepo } from '../support/temp.js';

const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`CI runs the cluster tests: ${unavailable}`);

let postgres: PrivatePostgres | undefined;
beforeAll(() => {
  if (!unavailable) postgres = startPostgres();
});
afterAll(() => postgres?.stop());

async function server(url: string, runner: string, storeLines = ''): Promise<{ pool: AgentPool; store: PostgresStore }> {
  const root = tempRepo();
  writeFakeAgentConfig(root, { store: storeLines });
  const store = await PostgresStore.open(url, { runner });
  const pool = await AgentPool.open({ projectRoot: root, store, runner });
  onTestFinished(async () => {
    await pool.dispose();
    await store.close();
  });
  return { pool, store };
}

describe.skipIf(unavailable)('two servers starting one story at once', () => {
  it('keep one run, store only its events, and the other gives way', async () => {
    const url = await postgres!.database();
    const alpha = await server(url, 'alpha');
    const beta = await server(url, 'beta');
    const stories = ['R-1', 'R-2', 'R-3', 'R-4'];
    for (const storyId of stories) {
      // The same tick: neither has heard of the other's.
      alpha.pool.start(storyId, 'say hello; result');
      beta.pool.start(storyId, 'say hello; result');
    }
    for (const storyId of stories) {
      await expect.poll(async () => (await alpha.store.story(storyId))?.runs.map((run) => [run.number, run.status])).toEqual([[1, 'COMPLETED']]);
      const record = (await alpha.store.story(storyId))!;
      const winner = record.runs[0]!.runner!;
      expect(['alpha', 'beta']).toContain(winner);
      // Only the winner's events: whole, in order, one run's PENDING to COMPLETED (the last
      // batch may follow the record by a moment).
      const statusesOf = async () =>
        (await alpha.store.readEvents(storyId, 1, 100)).filter((event) => event.type === 'status').map((event) => JSON.parse(event.payload).status);
      await expect.poll(statusesOf).toContain('COMPLETED');
      const events = await alpha.store.readEvents(storyId, 1, 100);
      expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
      const statuses = events.filter((event) => event.type === 'status').map((event) => JSON.parse(event.payload).status);
      expect(statuses).toEqual(['PENDING', 'RUNNING', 'COMPLETED']);
      expect(events.filter((event) => event.type === 'output')).toHaveLength(1);
      // Each server knows the story as the winner ran it.
      const loser = winner === 'alpha' ? beta.pool : alpha.pool;
      await expect.poll(() => loser.get(storyId)?.runner).toBe(winner);
      expect((winner === 'alpha' ? alpha.pool : beta.pool).get(storyId)?.status).toBe('COMPLETED');
    }
  });
});

describe.skipIf(unavailable)('a server that has not heard the latest bells', () => {
  it('says EVENTS_TRUNCATED for events another server\'s retention dropped, never a gap', async () => {
    const url = await postgres!.database();
    const alpha = await server(url, 'alpha', 'max_events_per_story = 100');
    const beta = await server(url, 'beta');
    alpha.pool.start('T-1', 'flood 400; result');
    await expect.poll(() => alpha.pool.get('T-1')?.status).toBe('COMPLETED');
    await alpha.pool.eventLog.settled();
    // Beta last heard of the story when it had 50 events.
    beta.pool.observeEvents('T-1', { firstSeq: 1, lastSeq: 50, lastAt: new Date() });
    const truncated = await beta.pool.eventPage('T-1', 0, 10).catch((error: unknown) => error as { code: string; extensions: { firstSeq: number } });
    expect(truncated).toMatchObject({ code: 'EVENTS_TRUNCATED' });
    const reader = beta.pool.events('T-1', 0);
    await expect(reader.next()).rejects.toMatchObject({ code: 'EVENTS_TRUNCATED' });
    expect(beta.pool.eventLog.openReaders).toBe(0);
    // From the oldest kept, as the error says, it reads on.
    const { firstSeq } = (truncated as { extensions: { firstSeq: number } }).extensions;
    expect(firstSeq).toBeGreaterThan(300);
    // Once the next bell comes.
    beta.pool.observeEvents('T-1', (await beta.store.eventBounds('T-1'))!);
    expect((await beta.pool.eventPage('T-1', firstSeq - 1, 5)).map((event) => event.seq)).toEqual([0, 1, 2, 3, 4].map((i) => firstSeq + i));
  });

  it('forgets what a finished run waited for, whatever the last bell it heard said', async () => {
    const url = await postgres!.database();
    const alpha = await server(url, 'alpha');
    const beta = await server(url, 'beta');
    alpha.pool.start('W-1', 'say done; result');
    await expect.poll(() => alpha.pool.get('W-1')?.status).toBe('COMPLETED');
    await alpha.pool.writesSettled();
    const stale = { pendingApprovals: [{ requestId: 'r1', tool: 'Write', input: {}, suggestions: [], options: [], requestedAt: new Date() }], waitingFor: 'APPROVAL' as const, interactive: true };
    await beta.pool.reloadStory('W-1', stale);
    expect(beta.pool.get('W-1')).toMatchObject({ status: 'COMPLETED', waitingFor: undefined, pendingApprovals: [] });
  });
});
