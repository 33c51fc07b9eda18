// Long histories: Agent.firstSeq and events(before, last), pages backwards from the end of
// a story whose oldest events retention has dropped, checked against forward pages.
import { describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../support/server.js';

interface Page {
  agent: { firstSeq: number; lastSeq: number; events: Array<{ seq: number; text?: string }> };
}

const PAGE = `query ($before: Int, $last: Int, $afterSeq: Int, $first: Int) {
  agent(storyId: "S-1") { firstSeq lastSeq events(before: $before, last: $last, afterSeq: $afterSeq, first: $first) { seq ... on AgentOutputEvent { text } } }
}`;

async function page(server: TestServer, variables: Record<string, number>) {
  const result = await server.request<Page>(PAGE, variables);
  expect(result.errors).toBeUndefined();
  return result.data!.agent;
}

const seqs = (events: Array<{ seq: number }>) => events.map((event) => event.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A story whose first run completed, then 2,500 more events, of which retention keeps the newest 1,000. */
async function longStory() {
  const server = await startTestServer({ store: 'max_events_per_story = 1000' });
  expect((await server.request<Page>(PAGE, { last: 10 })).data).toEqual({ agent: null });
  await server.request('mutation { startAgent(storyId: "S-1", prompt: "say hi") { status } }');
  await expect.poll(() => server.pool.get('S-1')?.status).toBe('COMPLETED');
  const first = await page(server, {});
  expect(first.firstSeq).toBe(1);
  for (let batch = 0; batch < 5; batch++) {
    await server.pool.eventLog.append('S-1', 1, Array.from({ length: 500 }, (_, i) => ({ type: 'output' as const, text: `line ${batch * 500 + i}` })));
  }
  const { firstSeq, lastSeq } = await page(server, { last: 0 });
  expect(lastSeq).toBe(first.lastSeq + 2500);
  expect(firstSeq).toBeGreaterThan(1);
  expect(lastSeq - firstSeq + 1).toBeLessThanOrEqual(1000);
  return { server, firstSeq, lastSeq };
}

describe('events backwards', () => {
  it('pages from the end, the middle and the retention edge, in seq order, never EVENTS_TRUNCATED', async () => {
    const { server, firstSeq, lastSeq } = await longStory();
    // The end: the newest, 100 by default.
    expect(seqs((await page(server, { last: 100 })).events)).toEqual(range(lastSeq - 99, lastSeq));
    expect(seqs((await page(server, { last: 10 })).events)).toEqual(range(lastSeq - 9, lastSeq));
    // The middle.
    expect(seqs((await page(server, { before: lastSeq - 300, last: 25 })).events)).toEqual(range(lastSeq - 325, lastSeq - 301));
    // At the retention edge: what is kept, without an error.
    expect(seqs((await page(server, { before: firstSeq + 5, last: 50 })).events)).toEqual(range(firstSeq, firstSeq + 4));
    expect((await page(server, { before: firstSeq, last: 50 })).events).toEqual([]);
    expect((await page(server, { before: 1, last: 50 })).events).toEqual([]);
    // Past the end is the end; at most 1000 however many are asked for.
    expect(seqs((await page(server, { before: lastSeq + 100, last: 3 })).events)).toEqual(range(lastSeq - 2, lastSeq));
    expect((await page(server, { last: 5000 })).events).toHaveLength(Math.min(1000, lastSeq - firstSeq + 1));
    // Forwards, the same place raises EVENTS_TRUNCATED, as it always did.
    const truncated = await server.request(PAGE, { afterSeq: 0, first: 10 });
    expect(truncated.errors?.[0]?.extensions).toEqual({ code: 'EVENTS_TRUNCATED', firstSeq });
  });

  it('walked to firstSeq gives exactly the events that forward pages give', async () => {
    const { server, firstSeq } = await longStory();
    const backwards: Array<{ seq: number; text?: string }> = [];
    for (let before: number | undefined; ; ) {
      const { events } = await page(server, before === undefined ? { last: 137 } : { before, last: 137 });
      if (events.length === 0) break;
      backwards.unshift(...events);
      before = events[0]!.seq;
    }
    const forwards: Array<{ seq: number; text?: string }> = [];
    for (let afterSeq = firstSeq - 1; ; ) {
      const { events } = await page(server, { afterSeq, first: 211 });
      if (events.length === 0) break;
      forwards.push(...events);
      afterSeq = events.at(-1)!.seq;
    }
    expect(backwards.length).toBeGreaterThan(900);
    expect(backwards).toEqual(forwards);
  });

  it('refuses afterSeq or first mixed with before or last (INVALID_ARGUMENT); each direction alone works', async () => {
    const { server, lastSeq } = await longStory();
    for (const variables of [{ afterSeq: lastSeq - 10, last: 5 }, { first: 5, before: lastSeq }, { afterSeq: 1, before: 5 }, { first: 1, last: 1 }]) {
      const refused = await server.request(PAGE, variables);
      expect(refused.errors?.[0]?.extensions?.code, JSON.stringify(variables)).toBe('INVALID_ARGUMENT');
      expect(refused.errors?.[0]?.message).toMatch(/afterSeq\/first .*before\/last/);
    }
    expect(seqs((await page(server, { afterSeq: lastSeq - 10, first: 5 })).events)).toEqual(range(lastSeq - 9, lastSeq - 5));
    expect(seqs((await page(server, { before: lastSeq, last: 5 })).events)).toEqual(range(lastSeq - 5, lastSeq - 1));
  });

  it('counts last in the cost limit as first is counted', async () => {
    const { server } = await longStory();
    const aliases = Array.from({ length: 30 }, (_, i) => `a${i}: agent(storyId: "S-1") { events(last: 1000) { seq at ... on AgentOutputEvent { text } } }`);
    const refused = await server.request(`query { ${aliases.join(' ')} }`);
    expect(refused.errors?.[0]?.extensions?.code).toBe('OPERATION_TOO_COSTLY');
    expect((await server.request(`query { ${aliases.slice(0, 1).join(' ')} }`)).errors).toBeUndefined();
  });

  it('firstSeq is 0 for a story with no event yet', async () => {
    const server = await startTestServer();
    await server.request('mutation { startAgent(storyId: "S-1", prompt: "wait") { status } }');
    // Whatever it has by now, firstSeq is 1 once it has any, and the page backwards holds it.
    const agent = await page(server, { last: 5 });
    expect(agent.firstSeq).toBe(agent.lastSeq > 0 ? 1 : 0);
    expect(server.pool.firstSeq('NEVER-1')).toBe(0);
    await server.request('mutation { stopAgent(storyId: "S-1") { status } }');
  });
});
