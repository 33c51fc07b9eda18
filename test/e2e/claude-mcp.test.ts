// An agent that drives agents: the real Claude Code CLI from npm, run by agent-pool with
// `[agent] mcp = true`, gets agent-pool's tools through --mcp-config and a token scoped to
// its story, and starts a story of its own with start_story. The only fake is the model
// service, which speaks the real Messages API and scripts the tool call.
import { describe, expect, it } from 'vitest';
import type { ModelRequest } from '../fixtures/fake-anthropic.js';
import { claudeServer } from '../support/claude.js';
import { FAKE_AGENT } from '../support/fake-agent.js';
import { AGENT_EVENTS, isTerminalResult, readEvents } from '../support/server.js';

/** The text of the tool results the CLI sent back to the model. */
function toolResults(request: ModelRequest): string[] {
  return request.messages
    .flatMap((message) => (typeof message.content === 'string' ? [] : message.content))
    .filter((block) => (block as { type?: string }).type === 'tool_result')
    .map((block) => JSON.stringify(block));
}

describe('the real Claude Code with agent-pool\'s MCP tools', () => {
  it('starts a story of its own with start_story, which agent-pool records as started by its story', async () => {
    const { api, server } = await claudeServer(
      { agentLines: ['mcp = true', '', '[agents.fake]', `command = ${JSON.stringify(FAKE_AGENT)}`] },
      {
        tool: 'mcp__agent-pool__start_story',
        input: () => ({ storyId: 'CHILD-1', prompt: 'say hello from the child; result', agent: 'fake', title: 'Started by Claude' }),
      },
      { text: 'I started CHILD-1.' },
    );
    const events = server.wsClient().iterate({ query: AGENT_EVENTS, variables: { storyId: 'S-1' } });
    const started = await server.request('mutation { startAgent(storyId: "S-1", prompt: "Hand the work to another agent.") { status } }');
    expect(started.errors).toBeUndefined();
    const seen = await readEvents(events, isTerminalResult);
    expect(seen.filter(isTerminalResult).map((event) => event.__typename)).toEqual(['AgentDoneEvent']);

    // The CLI offered the model agent-pool's tools: it reached /mcp with the scoped token.
    const [first, second] = api.conversation();
    expect(first!.tools!.map((tool) => tool.name)).toEqual(expect.arrayContaining(['mcp__agent-pool__start_story', 'mcp__agent-pool__wait_story']));
    // The call went through: its result is the story, not an error.
    const [result] = toolResults(second!);
    expect(result).toContain('CHILD-1');
    expect(result).not.toMatch(/"is_error":true/);
    expect(seen.some((event) => JSON.stringify(event.data ?? null).includes('"name":"mcp__agent-pool__start_story"'))).toBe(true);

    await expect.poll(() => server.pool.get('CHILD-1')?.status).toBe('COMPLETED');
    expect(server.pool.get('CHILD-1')).toMatchObject({ startedBy: 'S-1', title: 'Started by Claude', agent: 'fake' });
    // The CLI says it connected to agent-pool's server (its token came from its environment: test/pool/claude-adapter.test.ts).
    const init = seen.map((event) => event.data as { subtype?: string; mcp_servers?: unknown } | undefined).find((data) => data?.subtype === 'init');
    expect(init!.mcp_servers).toEqual([{ name: 'agent-pool', status: 'connected' }]);
    expect(api.failures).toEqual([]);
  });
});
