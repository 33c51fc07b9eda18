// Stories people can tell apart: a title as last given, and the prompt each run's agent got.
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgentPool, MAX_TITLE_LENGTH } from '../../src/pool/agent-pool.js';
import type { AgentEvent } from '../../src/pool/events.js';
import { InvalidArgumentError } from '../../src/pool/pool-errors.js';
import { Store } from '../../src/store/store.js';
import { isTerminal, readUntil } from '../support/events.js';
import { writeFakeAgentConfig } from '../support/fake-agent.js';
import { fakeAgentPool } from '../support/pool.js';
import { tempRepo } from '../support/temp.js';

/** Waits for the story's next run to end. */
async function ended(pool: AgentPool, storyId: string, start: () => void): Promise<AgentEvent[]> {
  const events = pool.events(storyId, pool.get(storyId)?.lastSeq ?? 0);
  start();
  try {
    return await readUntil(events, isTerminal);
  } finally {
    await events.return!();
  }
}

describe('a story\'s title', () => {
  it('is the one last given: kept when a start gives none, replaced by a new one, removed by ""', async () => {
    const pool = fakeAgentPool();
    expect(pool.start('S-1', 'say one', undefined, '  Fix the login form ').title).toBe('Fix the login form');
    await ended(pool, 'S-1', () => undefined);
    await ended(pool, 'S-1', () => pool.start('S-1', 'say two'));
    expect(pool.get('S-1')!.title).toBe('Fix the login form');
    await ended(pool, 'S-1', () => pool.start('S-1', 'say three', undefined, 'Login form, second try'));
    expect(pool.get('S-1')!.title).toBe('Login form, second try');
    await ended(pool, 'S-1', () => pool.start('S-1', 'say four', undefined, ''));
    expect(pool.get('S-1')!.title).toBeUndefined();
    expect(pool.start('S-2', 'say hi').title).toBeUndefined();
  });

  it('refuses a title too long or of more than one line, and nothing changes', async () => {
    const pool = fakeAgentPool();
    const long = 'x'.repeat(MAX_TITLE_LENGTH + 1);
    expect(() => pool.start('S-1', 'say hi', undefined, long)).toThrow(InvalidArgumentError);
    expect(() => pool.start('S-1', 'say hi', undefined, long)).toThrow(`a title is at most 200 characters; this one has 201`);
    expect(() => pool.start('S-1', 'say hi', undefined, 'one\ntwo')).toThrow(/one line of text/);
    expect(() => pool.start('S-1', 'say hi', undefined, 'bell\u0007')).toThrow(/control characters/);
    // No story was made by the refused starts.
    expect(pool.get('S-1')).toBeUndefined();
    expect(pool.list()).toEqual([]);

    // The honest twin: 200 characters, and a known story keeps its title when a new one is refused.
    const exact = 'y'.repeat(MAX_TITLE_LENGTH);
    await ended(pool, 'S-1', () => pool.start('S-1', 'say hi', undefined, exact));
    expect(pool.get('S-1')!.title).toBe(exact);
    expect(() => pool.start('S-1', 'say again', undefined, 'a\rb')).toThrow(InvalidArgumentError);
    expect(pool.get('S-1')).toMatchObject({ title: exact, status: 'COMPLETED' });
    expect(pool.get('S-1')!.runs).toHaveLength(1);
  });
});

describe('a story\'s prompt', () => {
  it('is the prompt given, at once, and each run keeps its own', async () => {
    const pool = fakeAgentPool();
    expect(pool.start('S-1', 'say first').prompt).toBe('say first');
    await ended(pool, 'S-1', () => undefined);
    await ended(pool, 'S-1', () => pool.start('S-1', 'say second'));
    const agent = pool.get('S-1')!;
    expect(agent.prompt).toBe('say first');
    expect(agent.runs.map((run) => [run.prompt, run.renderedPrompt])).toEqual([
      ['say first', 'say first'],
      ['say second', 'say second'],
    ]);
  });

  it('is the configured prompt with its placeholders rendered once the agent starts', async () => {
    const pool = fakeAgentPool({ agent: 'prompt = "say working on {{story_id}} in {{branch}}"' });
    const started = pool.start('S-7');
    // Rendered with the worktree's facts, which exist only once the run has made it.
    expect(started.prompt).toBeUndefined();
    expect(started.runs[0]).toMatchObject({ prompt: undefined, renderedPrompt: undefined });
    const events = await ended(pool, 'S-7', () => undefined);
    expect(events.some((event) => event.type === 'output' && event.text === 'working on S-7 in story/S-7')).toBe(true);
    const agent = pool.get('S-7')!;
    expect(agent.prompt).toBe('say working on S-7 in story/S-7');
    expect(agent.runs[0]).toMatchObject({ prompt: undefined, renderedPrompt: 'say working on S-7 in story/S-7' });
  });
});

describe('title and prompts in the database', () => {
  it('come back after a restart', async () => {
    const root = tempRepo();
    writeFakeAgentConfig(root, { agent: 'prompt = "say configured for {{story_id}}"' });
    const file = path.join(root, '.agent-pool', 'state.db');
    const open = async () => {
      const store = Store.open(file);
      const pool = await AgentPool.open({ projectRoot: root, store });
      onTestFinished(async () => {
        await pool.dispose();
        await store.close();
      });
      return { pool, store };
    };
    const first = await open();
    await ended(first.pool, 'S-1', () => first.pool.start('S-1', undefined, undefined, 'Configured'));
    await ended(first.pool, 'S-1', () => first.pool.start('S-1', 'say given'));
    await ended(first.pool, 'S-2', () => first.pool.start('S-2', 'say untitled'));
    const before = first.pool.list();
    await first.pool.dispose();
    await first.store.close();

    const second = await open();
    expect(second.pool.list()).toEqual(before);
    expect(second.pool.get('S-1')).toMatchObject({ title: 'Configured', prompt: 'say configured for S-1' });
    expect(second.pool.get('S-1')!.runs.map((run) => run.renderedPrompt)).toEqual(['say configured for S-1', 'say given']);
    expect(second.pool.get('S-2')).toMatchObject({ title: undefined, prompt: 'say untitled' });
    // A title given after the restart is stored too.
    await ended(second.pool, 'S-2', () => second.pool.start('S-2', 'say again', undefined, 'Now titled'));
    await second.pool.dispose();
    await second.store.close();
    const third = await open();
    expect(third.pool.get('S-2')!.title).toBe('Now titled');
  });
});
