import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool } from '../../src/pool/agent-pool.js';
import type { AgentEvent } from '../../src/pool/events.js';
import { UnknownAgentError } from '../../src/pool/pool-errors.js';
import { Store } from '../../src/store/store.js';
import { isTerminal, readUntil } from '../support/events.js';
import { FAKE_AGENT, writeFakeAgentConfig } from '../support/fake-agent.js';
import { tempDir, tempRepo } from '../support/temp.js';

/** A project whose [agent] and [agents.alt] both run the fake agent, told apart by their env. */
function project(extra = '') {
  const root = tempRepo();
  writeFakeAgentConfig(root, {
    agent: 'env = { PROFILE = "default" }',
    tables: `[agents.alt]\ncommand = ${JSON.stringify(FAKE_AGENT)}\nenv = { PROFILE = "alt" }\n${extra}`,
  });
  return root;
}

async function open(root: string) {
  const store = Store.open(path.join(root, '.agent-pool', 'state.db'));
  const pool = await AgentPool.open({ projectRoot: root, store });
  const close = async () => {
    await pool.dispose();
    store.close();
  };
  onTestFinished(close);
  return { pool, close };
}

async function run(pool: AgentPool, start: () => void, storyId: string): Promise<AgentEvent[]> {
  const events = pool.events(storyId, pool.get(storyId)?.lastSeq ?? 0);
  start();
  const seen = await readUntil(events, isTerminal);
  await events.return!();
  return seen;
}

const profileOf = (file: string) => JSON.parse(readFileSync(file, 'utf8')).env.PROFILE as string;

describe('agent profiles', () => {
  it('start a story with the profile it names; the story keeps it for later starts, follow-ups and restarts', async () => {
    const root = project();
    const record = path.join(tempDir(), 'env.json');
    const first = await open(root);
    await run(first.pool, () => first.pool.start('S-1', `record ${record}`, 'alt'), 'S-1');
    expect(profileOf(record)).toBe('alt');
    expect(first.pool.get('S-1')!.agent).toBe('alt');
    await run(first.pool, () => first.pool.start('S-1', `record ${record}`), 'S-1');
    expect(profileOf(record)).toBe('alt');
    await run(first.pool, () => first.pool.start('S-2', `record ${record}`), 'S-2');
    expect(profileOf(record)).toBe('default');
    await first.close();

    const second = await open(root);
    expect(second.pool.get('S-1')!.agent).toBe('alt');
    await run(second.pool, () => second.pool.continue('S-1', `record ${record}`), 'S-1');
    expect(profileOf(record)).toBe('alt');
    expect(second.pool.get('S-1')!.runs.map((r) => r.agent)).toEqual(['alt', 'alt', 'alt']);
  });

  it('uses [pool] default_agent when a new story names none, and refuses an unknown profile listing the configured ones', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root, {
      agent: 'env = { PROFILE = "default" }',
      pool: 'default_agent = "alt"',
      tables: `[agents.alt]\ncommand = ${JSON.stringify(FAKE_AGENT)}\nenv = { PROFILE = "alt" }`,
    });
    const { pool } = await open(root);
    const record = path.join(tempDir(), 'env.json');
    await run(pool, () => pool.start('S-1', `record ${record}`), 'S-1');
    expect(profileOf(record)).toBe('alt');
    expect(() => pool.start('S-2', 'x', 'copilot')).toThrow(UnknownAgentError);
    expect(() => pool.start('S-2', 'x', 'copilot')).toThrow(
      'there is no agent profile "copilot": the profiles in agent-pool.toml are default, alt',
    );
    expect(pool.get('S-2')).toBeUndefined();
  });
});

describe('typed events', () => {
  it('follow the json event of their line (lineSeq): tool calls, tool results and usage, summed on the agent', async () => {
    const root = project();
    const { pool } = await open(root);
    const events = await run(pool, () => pool.start('S-1', 'tool; tool-result; say done; result'), 'S-1');
    const call = events.find((event) => event.type === 'tool_call')!;
    const result = events.find((event) => event.type === 'tool_result')!;
    const usage = events.find((event) => event.type === 'usage')!;
    for (const typed of [call, result, usage]) {
      const line = events.find((event) => event.seq === (typed as { lineSeq: number }).lineSeq)!;
      expect(line.type).toBe('json');
      expect(typed.seq).toBe(line.seq + 1);
    }
    expect(call).toMatchObject({ callId: 'toolu_fake1', tool: 'Bash', kind: 'COMMAND', input: { command: 'ls' } });
    expect(result).toMatchObject({ callId: 'toolu_fake1', isError: false, output: 'README.md' });
    expect(usage).toMatchObject({ inputTokens: 10, outputTokens: 5, cachedInputTokens: 0, costUsd: 0.0123 });

    await run(pool, () => pool.start('S-1', 'say again'), 'S-1');
    expect(pool.get('S-1')!.usage).toEqual({ inputTokens: 20, outputTokens: 10, cachedInputTokens: 0, costUsd: 0.0246 });
    expect(pool.get('S-1')!.runs.map((r) => r.usage?.inputTokens)).toEqual([10, 10]);
  });
});

describe('idle timeout', () => {
  it('ends FAILED a run whose agent prints nothing for idle_timeout_seconds, with every process gone', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root, { agent: 'idle_timeout_seconds = 0.5' });
    const { pool } = await open(root);
    const began = Date.now();
    const events = await run(pool, () => pool.start('S-1', 'grandchildren; wait'), 'S-1');
    expect(Date.now() - began).toBeGreaterThanOrEqual(500);
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      message: 'agent printed nothing for 0.5 seconds (idle_timeout_seconds): it was stopped',
    });
    expect(pool.get('S-1')!.status).toBe('FAILED');
  });
});
