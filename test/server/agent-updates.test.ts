import { describe, expect, it } from 'vitest';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { startTestServer, type TestServer } from '../support/server.js';

interface Update {
  storyId: string;
  status: string;
  lastSeq: number;
  lastEventAt: string | null;
  interactive: boolean;
  runs: Array<{ number: number; status: string }>;
}

const AGENT_UPDATES = 'subscription { agentUpdates { storyId status lastSeq lastEventAt interactive runs { number status } } }';

/** Subscribes to agentUpdates, starts `prompt` as `storyId`, and collects the updates until it COMPLETED. */
async function updatesOfRun(server: TestServer, storyId: string, prompt: string): Promise<Update[]> {
  const updates: Update[] = [];
  const client = server.wsClient();
  const iterator = client.iterate<{ agentUpdates: Update }>({ query: AGENT_UPDATES });
  // The server takes a connection's messages in order: once a later operation on it has
  // completed, the subscription is registered.
  await new Promise<void>((resolve, reject) => {
    client.subscribe({ query: '{ agents { storyId } }' }, { next: () => {}, error: reject, complete: resolve });
  });
  const started = await server.request('mutation ($storyId: ID!, $prompt: String) { startAgent(storyId: $storyId, prompt: $prompt) { status } }', {
    storyId,
    prompt,
  });
  expect(started.errors).toBeUndefined();
  for await (const result of iterator) {
    expect(result.errors).toBeUndefined();
    updates.push(result.data!.agentUpdates);
    if (result.data!.agentUpdates.status === 'COMPLETED') break;
  }
  return updates;
}

describe('agentUpdates and agentProfiles', () => {
  it('pushes a story through its lifecycle to its true final state, not once per event', async () => {
    const server = await startTestServer();
    const updates = await updatesOfRun(server, 'FLOOD-1', 'flood 5000; result');

    const final = updates.at(-1)!;
    const agent = server.pool.get('FLOOD-1')!;
    expect(final).toMatchObject({ storyId: 'FLOOD-1', status: 'COMPLETED', lastSeq: agent.lastSeq, interactive: false });
    expect(final.runs).toEqual([{ number: 1, status: 'COMPLETED' }]);
    expect(Date.parse(final.lastEventAt!)).toBe(agent.lastEventAt!.getTime());
    expect(agent.lastSeq).toBeGreaterThan(5000);
    // Every state change, plus at most one activity update a second: a handful, not 5000.
    expect(updates.length).toBeLessThan(20);
    const order = ['PENDING', 'RUNNING', 'COMPLETED'];
    const seen = updates.map((update) => order.indexOf(update.status));
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen).not.toContain(-1);
    expect(updates.map((update) => update.lastSeq)).toEqual(updates.map((update) => update.lastSeq).sort((a, b) => a - b));
  });

  it('pushes a running story\'s activity (lastSeq, lastEventAt) while its events flow, about once a second', async () => {
    const server = await startTestServer();
    // 30 lines over about 3 seconds, then the result.
    const updates = await updatesOfRun(server, 'TICKS-1', 'ticks 30 10; result');
    const running = updates.filter((update) => update.status === 'RUNNING');
    // Besides the state changes (RUNNING, the session, the result's cost), activity in the
    // middle of the ticks: none of those changes falls there.
    const seqs = running.map((update) => update.lastSeq);
    const result = updates.at(-1)!.lastSeq;
    expect(seqs.filter((seq) => seq > 8 && seq < result - 8).length).toBeGreaterThanOrEqual(1);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(Date.parse(running.at(-1)!.lastEventAt!)).toBeGreaterThan(Date.parse(running[0]!.lastEventAt!));
    // Throttled: a handful for 30 lines, not one per line.
    expect(running.length).toBeLessThanOrEqual(6);
  });

  it('lists the profiles of agent-pool.toml, the default marked', async () => {
    const server = await startTestServer({
      pool: 'default_agent = "reviewer"',
      tables: `[agents.reviewer]\ncommand = ${JSON.stringify(FAKE_AGENT)}\n\n[agents.asker]\nkind = "claude"\ncommand = ${JSON.stringify(FAKE_AGENT)}\npermission_mode = "default"`,
    });
    const { data, errors } = await server.request('{ agentProfiles { name kind permissionMode isDefault } }');
    expect(errors).toBeUndefined();
    expect(data!.agentProfiles).toEqual([
      { name: 'default', kind: 'claude', permissionMode: 'bypassPermissions', isDefault: false },
      { name: 'reviewer', kind: 'claude', permissionMode: 'bypassPermissions', isDefault: true },
      { name: 'asker', kind: 'claude', permissionMode: 'default', isDefault: false },
    ]);
  });
});
