import { describe, expect, it } from 'vitest';
import { AgentUpdates } from '../../src/pool/agent-updates.js';

interface State {
  storyId: string;
  status: string;
}

describe('AgentUpdates', () => {
  it('keeps the newest state per story, stories in the order of their latest change', async () => {
    const updates = new AgentUpdates<State>(() => {});
    updates.push({ storyId: 'A', status: 'PENDING' });
    updates.push({ storyId: 'B', status: 'PENDING' });
    updates.push({ storyId: 'A', status: 'RUNNING' });
    expect((await updates.next()).value).toEqual({ storyId: 'B', status: 'PENDING' });
    expect((await updates.next()).value).toEqual({ storyId: 'A', status: 'RUNNING' });
  });

  it('wakes a reader parked in next() on a push', async () => {
    const updates = new AgentUpdates<State>(() => {});
    const next = updates.next();
    updates.push({ storyId: 'A', status: 'COMPLETED' });
    expect(await next).toEqual({ done: false, value: { storyId: 'A', status: 'COMPLETED' } });
  });

  it('ends a parked reader at return(), releases once, and takes no more pushes', async () => {
    let released = 0;
    const updates = new AgentUpdates<State>(() => released++);
    const next = updates.next();
    await updates.return();
    await updates.return();
    expect(await next).toEqual({ done: true, value: undefined });
    updates.push({ storyId: 'A', status: 'RUNNING' });
    expect(await updates.next()).toEqual({ done: true, value: undefined });
    expect(released).toBe(1);
  });
});
