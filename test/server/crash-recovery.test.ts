// The server is killed with SIGKILL in the middle of a run, then started again.
import { describe, expect, it } from 'vitest';
import { INTERRUPTED_RUN_ERROR } from '../../src/pool/recovery.js';
import { runCli, serverUrl, wsClientOf } from '../support/cli.js';
import { isAlive } from '../support/events.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { AGENT_EVENTS, type EventResult, isTerminalResult } from '../support/server.js';
import { tempRepo } from '../support/temp.js';

async function request(url: URL, query: string) {
  const response = await fetch(`${url.origin}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${url.searchParams.get('token')}` },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as { data?: Record<string, never>; errors?: unknown[] };
}

async function collect(url: URL, storyId: string, until: (event: EventResult) => boolean): Promise<EventResult[]> {
  const events: EventResult[] = [];
  for await (const result of wsClientOf(url).iterate({ query: AGENT_EVENTS, variables: { storyId } })) {
    const event = (result.data as { agentEvents: EventResult }).agentEvents;
    events.push(event);
    if (until(event)) break;
  }
  return events;
}

describe('restart after a crash', () => {
  it('keeps the history, ends interrupted runs FAILED, kills what survived, and goes on with seq', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root, { pool: 'max_concurrent = 1\nstop_grace_seconds = 0.5' });
    const first = runCli(['serve', '--port', '0'], { cwd: root });
    const url = await serverUrl(first);
    await request(url, 'mutation { startAgent(storyId: "S-1", prompt: "say before the crash; grandchildren; wait") { status } }');
    await request(url, 'mutation { startAgent(storyId: "S-2", prompt: "say queued") { status } }');
    const before = await collect(url, 'S-1', (event) => (event.data as { subtype?: string } | undefined)?.subtype === 'pids');
    const pids = (before.at(-1)!.data as { pids: number[] }).pids;

    first.child.kill('SIGKILL');
    await first.exited;
    // The grandchild in its own session outlives the server.
    expect(isAlive(pids[1]!)).toBe(true);

    const second = runCli(['serve', '--port', '0'], { cwd: root });
    const again = await serverUrl(second);
    expect(pids.filter(isAlive)).toEqual([]);
    expect(second.stderr()).toContain(`story S-1 run 1: ${INTERRUPTED_RUN_ERROR}`);

    const agents = await request(again, '{ agents { storyId status error pid runs { number status } } }');
    expect(agents.data).toEqual({
      agents: [
        { storyId: 'S-1', status: 'FAILED', error: INTERRUPTED_RUN_ERROR, pid: null, runs: [{ number: 1, status: 'FAILED' }] },
        { storyId: 'S-2', status: 'FAILED', error: INTERRUPTED_RUN_ERROR, pid: null, runs: [{ number: 1, status: 'FAILED' }] },
      ],
    });
    const history = await collect(again, 'S-1', isTerminalResult);
    expect(history.slice(0, before.length)).toEqual(before);
    expect(history.map((event) => event.seq)).toEqual(history.map((_, i) => i + 1));
    expect(history.slice(-2).map((event) => event.status ?? event.message)).toEqual(['FAILED', INTERRUPTED_RUN_ERROR]);

    await request(again, 'mutation { startAgent(storyId: "S-1", prompt: "say after the restart") { status } }');
    const next = await collect(again, 'S-1', (event) => event.__typename === 'AgentDoneEvent');
    const secondRun = next.filter((event) => event.run === 2);
    expect(secondRun[0]!.seq).toBe(history.at(-1)!.seq + 1);
    expect(secondRun.some((event) => event.text === 'after the restart')).toBe(true);

    const third = runCli(['serve', '--port', '0'], { cwd: root });
    expect(await third.exited).toBe(2);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
