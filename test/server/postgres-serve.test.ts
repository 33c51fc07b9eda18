// `agent-pool serve` over Postgres (`[store] url_env`), on a private Postgres of this file's own.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, serverUrl, userEnv } from '../support/cli.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { type PrivatePostgres, postgresUnavailable, startPostgres } from '../support/postgres.js';
import { tempDir, tempRepo } from '../support/temp.js';

const unavailable = postgresUnavailable();
if (unavailable && process.env.CI === 'true') throw new Error(`CI runs the Postgres tests: ${unavailable}`);

let postgres: PrivatePostgres | undefined;
beforeAll(() => {
  if (!unavailable) postgres = startPostgres();
});
afterAll(() => postgres?.stop());

async function query(url: URL, body: string) {
  const response = await fetch(`${url.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${url.searchParams.get('token')}` },
    body: JSON.stringify({ query: body }),
  });
  return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
}

describe.skipIf(unavailable)('agent-pool serve over Postgres', () => {
  it('keeps stories, runs and events there across restarts; keeps its URL from agents; refuses a second server', async () => {
    const databaseUrl = await postgres!.database();
    const root = tempRepo();
    writeFakeAgentConfig(root, { store: 'url_env = "AGENT_POOL_TEST_DATABASE"' });
    const env = userEnv({ AGENT_POOL_TEST_DATABASE: databaseUrl });
    const record = path.join(tempDir(), 'env.json');

    const first = runCli(['serve', '--port', '0'], { cwd: root, env });
    const url = await serverUrl(first);
    const started = await query(url, `mutation { startAgent(storyId: "PG-1", prompt: "say stored in postgres; record ${record}; result") { status } }`);
    expect(started.errors).toBeUndefined();
    await expect.poll(async () => (await query(url, '{ agent(storyId: "PG-1") { status } }')).data).toEqual({ agent: { status: 'COMPLETED' } });
    // The variable that holds the database's URL is the server's, never the agent's.
    expect(JSON.parse(readFileSync(record, 'utf8')).env.AGENT_POOL_TEST_DATABASE).toBeUndefined();

    // A second server on the same database (another clone) is refused, saying why.
    const otherClone = tempRepo();
    writeFakeAgentConfig(otherClone, { store: 'url_env = "AGENT_POOL_TEST_DATABASE"' });
    const second = runCli(['serve', '--port', '0'], { cwd: otherClone, env });
    expect(await second.exited).toBe(2);
    expect(second.stderr()).toMatch(/the database at postgresql:\/\/postgres@\/agent_pool_\S+ is in use by another agent-pool server/);

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    // The SQLite file was never made.
    expect(() => readFileSync(path.join(root, '.agent-pool', 'state.db'))).toThrow(/ENOENT/);

    const again = runCli(['serve', '--port', '0'], { cwd: root, env });
    const url2 = await serverUrl(again);
    const agent = await query(url2, '{ agent(storyId: "PG-1") { status lastSeq events(first: 1000) { __typename ... on AgentOutputEvent { text } } } }');
    const kept = (agent.data as { agent: { status: string; events: Array<{ text?: string }> } }).agent;
    expect(kept.status).toBe('COMPLETED');
    expect(kept.events.map((event) => event.text)).toContain('stored in postgres');
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  it('exits 2 naming the key when url_env names no variable, or the database cannot be reached', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root, { store: 'url_env = "AGENT_POOL_TEST_UNSET"' });
    const unset = runCli(['serve', '--port', '0'], { cwd: root, env: userEnv({}) });
    expect(await unset.exited).toBe(2);
    expect(unset.stderr()).toMatch(/\[store\] url_env names AGENT_POOL_TEST_UNSET, which is not set/);

    const env = userEnv({ AGENT_POOL_TEST_UNSET: `postgresql://agent:hunter2-secret@/nowhere?host=${encodeURIComponent(tempDir())}` });
    const unreachable = runCli(['serve', '--port', '0'], { cwd: root, env });
    expect(await unreachable.exited).toBe(2);
    expect(unreachable.stderr()).toMatch(/the database at postgresql:\/\/agent:\*\*\*@\/nowhere.* cannot be used/);
    expect(unreachable.stderr()).not.toContain('hunter2-secret');
  });
});
