import { describe, expect, it } from 'vitest';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { startTestServer } from '../support/server.js';

interface Update {
  storyId: string;
  status: string;
  lastSeq: number;
  lastEventAt: string | null;
  interactive: boolean;
  runs: Array<{ number: number; status: string }>;
}

const AGENT_UPDATES = 'subscription { agentUpdates { storyId status lastSeq lastEventAt interactive runs { number status } } }';

describe('agentUpdates and agentProfiles', () => {
  it('pushes a story through its lifecycle to its true final state, not once per event', async () => {
    const server = await startTestServer();
    const updates: Update[] = [];
    const client = server.wsClient();
    const iterator = client.iterate<{ agentUpdates: Update }>({ query: AGENT_UPDATES });
    // The server takes a connection's messages in order: once a later operation on it has
    // completed, the subscription is registered.
    await new Promise<void>((resolve, reject) => {
      client.subscribe({ query: '{ agents { storyId } }' }, { next: () => {}, error: reject, complete: resolve });
    });

    const started = await server.request('mutation { startAgent(storyId: "FLOOD-1", prompt: "flood 5000; result") { status } }');
    expect(started.errors).toBeUndefined();
    for await (const result of iterator) {
      expect(result.errors).toBeUndefined();
      updates.push(result.data!.agentUpdates);
      if (result.data!.agentUpdates.status === 'COMPLETED') break;
    }

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
