// Two servers of a cluster asked to start the same new story at the same moment: one run
// is recorded, its events alone are stored, and the other server's start gives way.
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

async function server(url: string, runner: string): Promise<{ pool: AgentPool; store: PostgresStore }> {
  const root = tempRepo();
  writeFakeAgentConfig(root);
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
      // Only the winner's events: whole, in order, one run's PENDING to COMPLETED.
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
